"""How many fuzz examples each built-in setting passes: the properties of
``tests/envs/test_fuzz.py`` (arbitrary and non-string commands, step/snapshot
interleavings, the expert from fuzzed states, observations in their space) at a larger
budget than CI's.

Usage (from the repository root, which holds ``tests``)::

    python -m tests.envs.fuzz_counts [--examples N] [--envs ID ...] [--properties NAME ...]
                                     [--seed S] [--shrink] [--cache-dir DIR]

Each property runs ``--examples`` hypothesis examples per id (derandomized, as in CI,
unless ``--seed`` is given), stopping at its first failure; without ``--shrink`` that
failure is reported as found, not minimised. TextWorld ids play the tests' tiny pool
(generated into a temporary directory unless ``--cache-dir`` holds it). Prints a
Markdown table (id, examples run, failures found, failing properties, seconds), then the
first line of each failure and its falsifying example. Examples run are those that
passed plus each failing one (hypothesis also starts examples it abandons for drawing
more than its data budget; those are not counted, as in its own ``max_examples``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import Phase

import envs
from envs.textworld_games import game_pool
from tests.envs.test_fuzz import BUILTIN_IDS, PROPERTIES, close_envs, fuzz, fuzz_env
from tests.envs.textworld_pools import CASES, GAMES

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)


@dataclass
class EnvCount:
    """The fuzzing of one id: examples run (passed, plus each property's failing one),
    failures (property -> report) and time."""

    env_id: str
    examples: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def textworld_pools(cache_dir: Path) -> Path:
    """Generate (or check) the tests' tiny TextWorld pools, both splits, in ``cache_dir``."""
    for challenge, difficulty in CASES.values():
        for split in envs.SPLITS:
            game_pool(challenge, split, GAMES, cache_dir, **difficulty)
    return cache_dir


def _report(error: BaseException) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    notes = [n for n in getattr(error, "__notes__", []) if n.strip()]
    return "\n".join([f"{type(error).__name__}: {lines[0]}", *notes])


def count_env(
    env_id: str,
    properties: list[str],
    examples: int,
    cache_dir: Path | None,
    seed: int | None = None,
    shrink: bool = False,
) -> EnvCount:
    """Fuzz ``env_id`` with each named property for ``examples`` examples."""
    count = EnvCount(env_id)

    def tally() -> None:
        count.examples += 1

    start = time.perf_counter()
    for name in properties:
        try:
            fuzz(
                PROPERTIES[name],
                lambda split: fuzz_env(env_id, split, cache_dir),
                examples,
                random_seed=seed,
                tally=tally,
                **({} if shrink else {"phases": NO_SHRINK}),
            )
        except Exception as error:  # a property failed: record it and go on
            count.examples += 1  # the failing example ran too
            count.failures[name] = _report(error)
    count.seconds = time.perf_counter() - start
    return count


def table(counts: list[EnvCount]) -> str:
    """The Markdown table of the counts."""
    rows = [
        "| id | examples run | failures found | failing properties | seconds |",
        "|---|---:|---:|---|---:|",
    ]
    for c in counts:
        failing = ", ".join(c.failures) or "-"
        rows.append(
            f"| {c.env_id} | {c.examples} | {len(c.failures)} | {failing} | {c.seconds:.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Fuzz the selected ids and print the table; exit status 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per property")
    parser.add_argument("--envs", nargs="+", default=BUILTIN_IDS, metavar="ID")
    parser.add_argument(
        "--properties", nargs="+", default=list(PROPERTIES), choices=list(PROPERTIES)
    )
    parser.add_argument("--seed", type=int, default=None, help="random, not derandomized")
    parser.add_argument("--shrink", action="store_true", help="minimise failing examples")
    parser.add_argument("--cache-dir", type=Path, default=None, help="TextWorld pool cache")
    args = parser.parse_args(argv)
    unknown = [env_id for env_id in args.envs if env_id not in BUILTIN_IDS]
    if unknown:
        parser.error(f"unknown id(s) {unknown}; expected some of {', '.join(BUILTIN_IDS)}")

    with tempfile.TemporaryDirectory(prefix="fuzz-twcache-") as tmp:
        cache = None
        if any(env_id in CASES for env_id in args.envs):
            cache = textworld_pools(args.cache_dir or Path(tmp))
        counts = []
        try:
            for env_id in args.envs:
                counts.append(
                    count_env(env_id, args.properties, args.examples, cache, args.seed, args.shrink)
                )
                print(f"{env_id}: done", file=sys.stderr, flush=True)
        finally:
            close_envs()
    print(table(counts))
    for c in counts:
        for name, report in c.failures.items():
            print(f"\n### {c.env_id}: {name}\n\n```\n{report}\n```")
    return int(any(c.failures for c in counts))


if __name__ == "__main__":
    sys.exit(main())
