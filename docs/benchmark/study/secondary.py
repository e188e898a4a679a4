"""The study's secondary comparisons that `earlyexp report` does not print (README, "The
early-experience study", its targets): each early-experience learner at 25 demos against
`bc` at 50 (the paper's headline), and the world-model learners against their shuffled-
outcome control. Paired by seed, with the report's own bootstrap CI and MDE.

Run: `python docs/benchmark/study/secondary.py [results.jsonl]`.
"""

import sys
from pathlib import Path

from benchmarks.report.stats import cell_rng, paired_difference
from benchmarks.results import read_results

EARLY_EXPERIENCE = ["iwm-matched", "iwm-joint", "iwm-lookahead", "sr"]
CONTROLS = ["iwm-shuffled", "iwm-expert-only"]


def main(path: Path) -> None:
    """Print every comparison, per setting, as `a (budget) - b (budget): mean [95% CI]`."""
    rows = read_results(path).rows
    by_cell = {(r["env_id"], r["learner"], r["seed"], r["budget"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    comparisons = [((arm, 0.5), ("bc", 1.0)) for arm in EARLY_EXPERIENCE + CONTROLS]
    comparisons += [
        ((arm, budget), ("iwm-shuffled", budget))
        for arm in ("iwm-matched", "iwm-lookahead")
        for budget in (0.5, 1.0)
    ]
    for env_id in sorted({r["env_id"] for r in rows}):
        print(env_id)
        for a, b in comparisons:
            pairs = [
                (by_cell[(env_id, a[0], s, a[1])], by_cell[(env_id, b[0], s, b[1])])
                for s in seeds
                if (env_id, a[0], s, a[1]) in by_cell and (env_id, b[0], s, b[1]) in by_cell
            ]
            if not pairs:
                continue
            result = paired_difference(
                [x["success"] for x, _ in pairs],
                [y["success"] for _, y in pairs],
                episodes=[(_test_episodes(x), _test_episodes(y)) for x, y in pairs],
                reps=2000,
                rng=cell_rng(0, "secondary", env_id, a, b),
            )
            d = result.difference
            print(
                f"  {a[0]} ({a[1]}) - {b[0]} ({b[1]}): {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                f" n={d.n}, MDE {result.mde_text()}"
            )


def _test_episodes(row: dict) -> int:
    return row["config"]["config"]["eval_episodes"]


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results.jsonl"))
