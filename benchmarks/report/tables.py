"""The report's numbers as CSV: one line per cell (``cells.csv``) and one per paired
comparison (``paired.csv``), for whoever analyses them further."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from benchmarks.report.build import Report
from benchmarks.report.stats import Paired

CELLS_CSV = "cells.csv"
PAIRED_CSV = "paired.csv"


def _number(value: float | None) -> str:
    # Empty, not "nan" or "None", where there is no number: spreadsheets and pandas read it
    # as missing.
    return "" if value is None else repr(float(value))


def cell_records(report: Report) -> list[dict[str, Any]]:
    """Per setting, budget and learner: success with its CI, how the runs' training ended,
    whether the setting was learned and whether the cell counts in the headline."""
    records = []
    for env_id in sorted(report.imitation):
        for budget, cells in sorted(report.imitation[env_id].items()):
            for learner in report.imitation_learners:
                cell = cells.get(learner)
                if cell is None:
                    continue
                records.append(
                    {
                        "env_id": env_id,
                        "budget": _number(budget),
                        "learner": learner,
                        "runs": len(cell.values),
                        "seeds": " ".join(map(str, cell.seeds)),
                        "success": _number(cell.success.mean),
                        "ci_low": _number(cell.success.low),
                        "ci_high": _number(cell.success.high),
                        "valid_action_rate": _number(cell.valid_action_rate),
                        "capped": cell.capped,
                        "stop_unknown": cell.unknown,
                        "converged": cell.converged,
                        "learned": report.is_learned(env_id),
                        "in_headline": report.in_headline(env_id, budget, learner),
                    }
                )
    return records


def _paired(paired: Paired) -> dict[str, Any]:
    d = paired.difference
    return {
        "pairs": d.n,
        "mean_difference": _number(d.mean),
        "ci_low": _number(d.low),
        "ci_high": _number(d.high),
        "sd": _number(paired.sd),
        "mde": _number(paired.mde),
        "mde_observed": _number(paired.mde_observed),
        "mde_floor": _number(paired.mde_floor),
    }


def paired_records(report: Report) -> list[dict[str, Any]]:
    """Every paired comparison: each compared learner minus the baseline per setting and
    budget (``versus`` the baseline), then the baseline minus the random policy at its
    largest budget per setting (``versus`` "random", the learned test)."""
    records = []
    for row in report.paired:
        counts = report.in_headline(row.env_id, row.budget, row.learner) and report.in_headline(
            row.env_id, row.budget, row.baseline
        )
        records.append(
            {
                "env_id": row.env_id,
                "budget": _number(row.budget),
                "learner": row.learner,
                "versus": row.baseline,
                **_paired(row.paired),
                "learned": report.is_learned(row.env_id),
                "in_headline": counts,
            }
        )
    for env_id, row in sorted(report.learned.items()):
        if row.paired is None:
            continue
        records.append(
            {
                "env_id": env_id,
                "budget": _number(row.budget),
                "learner": row.learner,
                "versus": "random",
                **_paired(row.paired),
                "learned": row.learned,
                "in_headline": "",
            }
        )
    return records


def to_csv(records: list[dict[str, Any]]) -> str:
    """``records`` as CSV text, a header from the first record's keys ("" when empty)."""
    if not records:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def write_tables(report: Report, out_dir: Path) -> list[Path]:
    """Write ``cells.csv`` and ``paired.csv`` into ``out_dir`` atomically; their paths."""
    # Imported here: agents pulls in torch (~1 s), which the statistics alone do not need.
    from agents.files import atomic_write

    paths = []
    for name, records in ((CELLS_CSV, cell_records(report)), (PAIRED_CSV, paired_records(report))):
        path = out_dir / name
        with atomic_write(path) as f:
            f.write(to_csv(records))
        paths.append(path)
    return paths
