"""The README's result table of a study, per setting, from `earlyexp report`'s CSV files:
each arm's greedy success at both budgets and its paired difference from `bc` with the 95%
bootstrap CI and the MDE at 80% power, the primary learner in bold, the controls marked.

Run: `python docs/benchmark/study/table.py REPORT_DIR` (the directory holding `cells.csv`
and `paired.csv`, e.g. docs/benchmark/study).
"""

import csv
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

PRIMARY = "iwm-lookahead"
ARMS = [
    "bc",
    "bc-short",
    "iwm-lookahead",
    "iwm-matched",
    "iwm-joint",
    "sr",
    "iwm-shuffled",
    "iwm-expert-only",
]
CONTROLS = {"iwm-shuffled", "iwm-expert-only"}
BUDGETS = {"0.5": 25, "1.0": 50}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _signed(value: str) -> str:
    """Three decimals, halves away from zero: differences of success rates over 10 seeds
    fall on x.xxx5 often, stored as x.xxx4999... or x.xxx5000...1 (so first to 6 places)."""
    exact = Decimal(value).quantize(Decimal("0.000001"))
    rounded = exact.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return f"{rounded:+.3f}"


def _arm(learner: str) -> str:
    if learner == PRIMARY:
        return f"**`{learner}`** (primary)"
    return f"`{learner}`" + (" (control)" if learner in CONTROLS else "")


def tables(report_dir: Path) -> str:
    """One Markdown table per setting of the report, in the README's shape."""
    cells = {(r["env_id"], r["learner"], r["budget"]): r for r in _read(report_dir / "cells.csv")}
    paired = {
        (r["env_id"], r["learner"], r["budget"]): r
        for r in _read(report_dir / "paired.csv")
        if r["versus"] == "bc"
    }
    out = []
    for env_id in sorted({env for env, _, _ in cells}):
        header = "| arm |" + "".join(
            f" success @ {n} | - `bc` @ {n} [95% CI] | MDE |" for n in BUDGETS.values()
        )
        out += [f"### {env_id}", "", header, "|---" * (1 + 3 * len(BUDGETS)) + "|"]
        for learner in ARMS:
            line = f"| {_arm(learner)} |"
            for budget in BUDGETS:
                cell = cells.get((env_id, learner, budget))
                pair = paired.get((env_id, learner, budget))
                success = f"{float(cell['success']):.2f}" if cell else ""
                if pair is None:
                    line += f" {success} | | |"
                    continue
                difference = (
                    f"{_signed(pair['mean_difference'])} "
                    f"[{_signed(pair['ci_low'])}, {_signed(pair['ci_high'])}]"
                )
                if learner == PRIMARY:
                    difference = f"**{difference}**"
                line += f" {success} | {difference} | {float(pair['mde']):.2f} |"
            out.append(line)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(Path(sys.argv[1])))
