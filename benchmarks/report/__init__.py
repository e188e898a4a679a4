"""The benchmark report: statistics, plots and a Markdown summary of a sweep's results.

Usage::

    earlyexp report RESULTS_DIR [--baseline bc] [--compare iwm-matched dagger] ...
    python -m benchmarks.report RESULTS_DIR ...   # the same command

Reads ``RESULTS_DIR/results.jsonl`` (one row per finished run, see :mod:`benchmarks.results`)
and writes ``RESULTS_DIR/report.md`` with ``data_efficiency.png`` and ``rl_curves.png`` beside
it, and its numbers as ``cells.csv`` and ``paired.csv``.

Statistics (all bootstraps seeded, so the same results give the same report):

* per setting, budget and learner: mean success over seeds with a 95% percentile bootstrap CI
  (``scipy.stats.bootstrap``; percentile, not BCa, because BCa is undefined for the 2-3 seeds a
  cell usually has); one seed gives the point as its own CI, and the report says so; and how
  many of its runs hit their update cap instead of stopping early (:mod:`~.rows`);
* per setting and budget, each compared learner minus the baseline, paired by seed: mean
  with a bootstrap CI and the minimum detectable effect at 80% power (:mod:`~.stats`);
* per setting, whether the baseline *learned* it: its success at its largest budget minus
  the random policy's on the same instances, paired by seed, has a 95% CI above 0;
* the headline counts only converged cells of learned settings; the aggregate and the
  probability of improvement are also given over every cell, as a diagnostic;
* aggregate over settings, per budget: IQM with a stratified bootstrap CI (rliable) over a
  ``runs x settings`` matrix per learner. To keep learners comparable only settings where
  *every* learner at that budget has runs are used; the matrix must be rectangular, so each
  learner's cells are truncated to its smallest seed count over those settings (lowest seeds
  kept). The report lists the settings left out and the runs used;
* probability of improvement of each compared learner over the baseline per budget (rliable,
  with its stratified independent bootstrap CI, which allows unequal run counts), on the
  settings where both have runs, same truncation;
* the headline, per compared learner and setting: the smallest budget at which its mean
  success reaches the baseline's full-data (budget 1.0) mean -> the expert-data saving; and
  the RL runs, warm-started vs scratch, final success and success at the largest env step
  all of them evaluated at.

Which learner is the baseline (default ``bc``) and which are compared with it (default:
every other imitation learner with runs) are parameters, never names wired in here.

Modules: :mod:`~benchmarks.report.rows` (loading typed rows), :mod:`~benchmarks.report.stats`,
:mod:`~benchmarks.report.build` (the report as data), :mod:`~benchmarks.report.plots`,
:mod:`~benchmarks.report.markdown`, :mod:`~benchmarks.report.tables` (the CSV files).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report.build import (
    DEFAULT_BASELINE,
    FULL_BUDGET,
    AggregateRow,
    ImitationCell,
    ImprovementRow,
    LearnedRow,
    PairedRow,
    Report,
    RLComparison,
    RLCurve,
    SavingRow,
    build_report,
)
from benchmarks.report.markdown import DATA_EFFICIENCY_PNG, RL_CURVES_PNG
from benchmarks.report.plots import plot_data_efficiency, plot_rl_curves
from benchmarks.report.rows import (
    CAPPED,
    CONVERGED,
    UNKNOWN,
    ImitationRow,
    MalformedRow,
    RLRow,
    Rows,
    load_rows,
    stopping,
    update_caps,
)
from benchmarks.report.stats import (
    Estimate,
    Paired,
    improvement_ci,
    iqm_ci,
    iqm_cis,
    mean_ci,
    min_detectable_effect,
    paired_difference,
)
from benchmarks.report.tables import CELLS_CSV, PAIRED_CSV, write_tables

REPORT_FILE = "report.md"

__all__ = [
    "CAPPED",
    "CELLS_CSV",
    "CONVERGED",
    "DATA_EFFICIENCY_PNG",
    "DEFAULT_BASELINE",
    "FULL_BUDGET",
    "PAIRED_CSV",
    "REPORT_FILE",
    "RL_CURVES_PNG",
    "UNKNOWN",
    "AggregateRow",
    "Estimate",
    "ImitationCell",
    "ImitationRow",
    "ImprovementRow",
    "LearnedRow",
    "MalformedRow",
    "Paired",
    "PairedRow",
    "RLComparison",
    "RLCurve",
    "RLRow",
    "Report",
    "Rows",
    "SavingRow",
    "build_report",
    "improvement_ci",
    "iqm_ci",
    "iqm_cis",
    "load_rows",
    "mean_ci",
    "min_detectable_effect",
    "paired_difference",
    "plot_data_efficiency",
    "plot_rl_curves",
    "stopping",
    "update_caps",
    "write_report",
    "write_tables",
]


def write_report(
    results_dir: str | os.PathLike,
    *,
    baseline: str | None = DEFAULT_BASELINE,
    compare: Sequence[str] | None = None,
    reps: int = 2000,
    seed: int = 0,
    poi_reps: int = 300,
    profile: str | None = None,
) -> Path:
    """Build the report and write report.md, data_efficiency.png, rl_curves.png, cells.csv and
    paired.csv atomically.

    Takes :func:`build_report`'s arguments. Warnings (torn tail, skipped rows, a baseline
    without runs) are printed to stderr and listed in the report. Returns the report.md path.
    """
    # Imported here: agents pulls in torch (~1 s), which the statistics alone do not need.
    from agents.files import atomic_write

    report = build_report(
        results_dir,
        baseline=baseline,
        compare=compare,
        reps=reps,
        seed=seed,
        poi_reps=poi_reps,
        profile=profile,
    )
    for message in report.warnings:
        print(f"warning: {message}", file=sys.stderr)
    out_dir = report.results_dir
    plot_data_efficiency(report, out_dir / DATA_EFFICIENCY_PNG)
    plot_rl_curves(report, out_dir / RL_CURVES_PNG)
    write_tables(report, out_dir)
    path = out_dir / REPORT_FILE
    with atomic_write(path) as f:
        f.write(report.markdown())
    return path
