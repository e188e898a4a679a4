"""The results file of a sweep: one JSON line per finished run, appended, never rewritten.

A run is identified by the hash of its config, so a restarted sweep skips what is already
there. Lines are appended whole and fsynced; a kill mid-append can only leave a torn last
line, which :func:`read_results` reports and skips (the run it belonged to is simply run
again), and which :func:`append_result` cuts off before writing, so no line ever fuses
with a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"


def config_hash(config: dict[str, Any]) -> str:
    """A stable short hash of a run's config (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class Results:
    """What a results file holds: the finished rows, and what was wrong with it if anything."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    torn_tail: bool = False
    problems: list[str] = field(default_factory=list)

    def done(self) -> set[str]:
        """Config hashes of the finished runs."""
        return {row["hash"] for row in self.rows}


def read_results(path: str | os.PathLike) -> Results:
    """Read a results file; a torn last line is reported in ``problems``, not fatal.

    A malformed line anywhere but at the end means the file was edited or damaged; that
    is an error naming the line, since silently dropping finished runs would change a report.
    """
    path = Path(path)
    results = Results()
    if not path.exists():
        return results
    data = path.read_bytes()
    lines = data.split(b"\n")
    # A complete file ends with a newline, so the last piece is empty.
    tail = lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            row = json.loads(raw)
            if not isinstance(row, dict) or "hash" not in row:
                raise ValueError("not a result row (no 'hash')")
        except ValueError as exc:
            raise ValueError(
                f"{path}: line {number} is not a result row ({exc}); the file was edited or "
                "damaged. Fix or remove that line, then run again."
            ) from None
        results.rows.append(row)
    if tail:
        results.torn_tail = True
        results.problems.append(
            f"{path}: the last line is torn ({len(tail)} bytes without a newline, from a run "
            "killed while writing); it is ignored and that run will be redone"
        )
    return results


def append_result(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one finished run as one JSON line, fsynced; a torn tail is cut off first."""
    if "hash" not in row:
        raise ValueError("a result row needs its config 'hash'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, sort_keys=True) + "\n").encode()
    with path.open("a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def commit() -> str:
    """The checked-out commit (short), ``+modified`` when the tree has uncommitted changes;
    ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True, text=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+modified" if dirty else "")
