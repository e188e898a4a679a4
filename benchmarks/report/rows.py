"""The rows a report is built from: a sweep's results file, validated into typed rows.

Only what the report uses is kept; other keys (``config``, ``versions``, ``command``, ...)
are left in the file. A row that cannot be used is skipped with a warning that counts it
(unknown kind, a required field missing, a malformed field, a duplicated config hash), so a
report never silently changes what it shows. No statistics here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS_FILE, read_results

IMITATION_FIELDS = ("env_id", "learner", "budget", "seed", "success")
RL_FIELDS = ("env_id", "learner", "seed", "curve", "success")
#: Written by sweeps before RL rows named their warm start; its rows are scratch by name.
LEGACY_SCRATCH = "rl-scratch"


class MalformedRow(ValueError):
    """A results row whose field has the wrong type or an impossible value."""


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str) or not value:
        raise MalformedRow(f"{name!r} is {value!r}, not a non-empty string")
    return value


def _number(row: Mapping[str, Any], name: str) -> float:
    value = row[name]
    # bool is an int in Python; a JSON true where a number belongs is a damaged row.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedRow(f"{name!r} is {value!r}, not a finite number")
    return float(value)


def _integer(row: Mapping[str, Any], name: str) -> int:
    value = _number(row, name)
    if value != int(value):
        raise MalformedRow(f"{name!r} is {row[name]!r}, not an integer")
    return int(value)


def _optional(row: Mapping[str, Any], name: str, parse: Any) -> Any:
    return None if row.get(name) is None else parse(row, name)


def _profile(row: Mapping[str, Any]) -> str | None:
    return None if row.get("profile") is None else str(row["profile"])


def _command(row: Mapping[str, Any]) -> str | None:
    # The reproducing shell command: kept for callers, never shown, never a reason to skip.
    value = row.get("command")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ImitationRow:
    """One finished imitation run: a learner trained on a budget of demos, then tested."""

    hash: str
    env_id: str
    learner: str
    budget: float  # fraction of the full demo budget
    seed: int
    success: float  # greedy test success rate
    profile: str | None = None
    episodes: int | None = None  # demos the budget came to
    valid_action_rate: float | None = None
    random_success: float | None = None  # the random policy on the same test instances
    expert_success: float | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ImitationRow:
        """The typed row of a results line; raises :class:`MalformedRow` saying which field."""
        return cls(
            hash=str(row["hash"]),
            env_id=_text(row, "env_id"),
            learner=_text(row, "learner"),
            budget=_number(row, "budget"),
            seed=_integer(row, "seed"),
            success=_number(row, "success"),
            profile=_profile(row),
            episodes=_optional(row, "episodes", _integer),
            valid_action_rate=_optional(row, "valid_action_rate", _number),
            random_success=_optional(row, "random_success", _number),
            expert_success=_optional(row, "expert_success", _number),
            command=_command(row),
        )


@dataclass(frozen=True)
class RLRow:
    """One finished RL run: its test-success curve over env steps and its final success."""

    hash: str
    env_id: str
    learner: str
    seed: int
    success: float  # final greedy test success
    curve: tuple[tuple[float, float], ...]  # (env step, test success), in step order
    scratch: bool  # no warm start
    init_learner: str | None = None  # whose checkpoint it warm-started from (None: scratch)
    init_budget: float | None = None  # that checkpoint's demo budget (None for scratch)
    profile: str | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> RLRow:
        """The typed row of a results line; raises :class:`MalformedRow` saying which field.

        A row with an ``init_learner`` key is scratch when it is null. Rows written before
        that key existed are scratch when the learner is ``rl-scratch`` or ``init_budget``
        is null (the old sweep's rule).
        """
        learner = _text(row, "learner")
        init_learner = _optional(row, "init_learner", _text)
        init_budget = _optional(row, "init_budget", _number)
        if "init_learner" in row:
            scratch = init_learner is None
        else:
            scratch = learner == LEGACY_SCRATCH or init_budget is None
        return cls(
            hash=str(row["hash"]),
            env_id=_text(row, "env_id"),
            learner=learner,
            seed=_integer(row, "seed"),
            success=_number(row, "success"),
            curve=_curve(row["curve"]),
            scratch=scratch,
            init_learner=init_learner,
            # Scratch has no pretraining, whatever the row says.
            init_budget=None if scratch else init_budget,
            profile=_profile(row),
            command=_command(row),
        )


def _curve(value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list | tuple):
        raise MalformedRow(f"'curve' is {value!r}, not a list of [env step, success] pairs")
    points = []
    for point in value:
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in point)
        ):
            raise MalformedRow(f"'curve' holds {point!r}, not an [env step, success] pair")
        points.append((float(point[0]), float(point[1])))
    return tuple(points)


@dataclass
class Rows:
    """The usable rows of one results file (one profile), and what was skipped and why."""

    path: Path
    imitation: list[ImitationRow] = field(default_factory=list)
    rl: list[RLRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.imitation) + len(self.rl)


_PARSERS: dict[str, tuple[tuple[str, ...], Any]] = {
    "imitation": (IMITATION_FIELDS, ImitationRow.from_dict),
    "rl": (RL_FIELDS, RLRow.from_dict),
}


def load_rows(results_dir: str | Path, *, profile: str | None = None) -> Rows:
    """The imitation and RL rows of ``results_dir/results.jsonl``, of one profile.

    Raises FileNotFoundError / ValueError, saying what to run, when there is nothing to
    report, and ValueError when the file mixes profiles and ``profile`` picks none.
    """
    results_dir = Path(results_dir)
    path = results_dir / RESULTS_FILE
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"{results_dir} does not exist: run a sweep into it first (benchmarks/sweep.py "
            "with this directory as its output), then build the report."
        )
    results = read_results(path)
    out = Rows(path=path, warnings=list(results.problems))
    if not results.rows:
        raise ValueError(
            f"{path} is missing or holds no finished runs: run a sweep into {results_dir} "
            "first (benchmarks/sweep.py), then build the report."
        )
    rows: list[ImitationRow | RLRow] = []
    seen: set[str] = set()
    unknown: Counter[str] = Counter()
    incomplete = duplicates = 0
    malformed: list[str] = []
    for row in results.rows:
        kind = row.get("kind")
        needed, parse = _PARSERS.get(kind, (None, None)) if isinstance(kind, str) else (None, None)
        if needed is None:
            unknown[str(kind)] += 1
            continue
        if any(row.get(name) is None for name in needed):
            incomplete += 1
            continue
        try:
            typed = parse(row)
        except MalformedRow as exc:
            malformed.append(f"{row['hash']}: {exc}")
            continue
        if typed.hash in seen:  # a duplicated line would count one run twice
            duplicates += 1
            continue
        seen.add(typed.hash)
        rows.append(typed)
    if unknown:
        kinds = ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items()))
        out.warnings.append(f"skipped rows of unknown kind: {kinds}")
    if incomplete:
        out.warnings.append(f"skipped {incomplete} rows missing a required field")
    if malformed:
        out.warnings.append(
            f"skipped {len(malformed)} rows with a malformed field (first: {malformed[0]})"
        )
    if duplicates:
        out.warnings.append(f"skipped {duplicates} duplicated rows (same config hash)")
    profiles = sorted({str(row.profile) for row in rows})
    if profile is not None:
        rows = [row for row in rows if str(row.profile) == profile]
    elif len(profiles) > 1:
        raise ValueError(
            f"{path} mixes profiles {profiles}; their numbers are not comparable. "
            "Choose one with --profile."
        )
    if not rows:
        raise ValueError(
            f"{path} has no imitation or RL rows"
            + (f" of profile {profile!r} (found {profiles})" if profile else "")
            + ": run a sweep into it first (benchmarks/sweep.py)."
        )
    out.imitation = [row for row in rows if isinstance(row, ImitationRow)]
    out.rl = [row for row in rows if isinstance(row, RLRow)]
    return out
