"""The benchmark report: statistics, plots and a Markdown summary of a sweep's results.

Usage::

    python -m benchmarks.report RESULTS_DIR [--reps N] [--poi-reps N] [--seed S] [--profile P]

Reads ``RESULTS_DIR/results.jsonl`` (one row per finished run, see :mod:`benchmarks.results`)
and writes ``RESULTS_DIR/report.md`` with ``data_efficiency.png`` and ``rl_curves.png`` beside it.

Statistics (all bootstraps seeded, so the same results give the same report):

* per setting, budget and learner: mean success over seeds with a 95% percentile bootstrap CI
  (``scipy.stats.bootstrap``; percentile, not BCa, because BCa is undefined for the 2-3 seeds a
  cell usually has); one seed gives the point as its own CI, and the report says so;
* aggregate over settings, per budget: IQM with a stratified bootstrap CI (rliable) over a
  ``runs x settings`` matrix per learner. To keep learners comparable only settings where
  *every* learner at that budget has runs are used; the matrix must be rectangular, so each
  learner's cells are truncated to its smallest seed count over those settings (lowest seeds
  kept). The report lists the settings left out and the runs used;
* probability of improvement of ``iwm-matched`` over ``bc`` per budget (rliable, with its
  stratified independent bootstrap CI, which allows unequal run counts), on the settings where
  both have runs, same truncation;
* the headline: per setting, the smallest budget at which iwm-matched's mean success reaches
  bc's full-data (budget 1.0) mean -> the expert-data saving; and RL-from-IWM vs RL-from-BC vs
  scratch, final success and success at the largest env step all three evaluated at.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from benchmarks.results import RESULTS_FILE, read_results

REPORT_FILE = "report.md"
DATA_EFFICIENCY_PNG = "data_efficiency.png"
RL_CURVES_PNG = "rl_curves.png"

#: Display order of the learners; unknown learners follow, sorted.
IMITATION_LEARNERS = ("bc", "dagger", "iwm-matched", "iwm-extra", "bc-control")
RL_LEARNERS = ("rl-scratch", "rl-from-bc", "rl-from-iwm")
IWM, BC = "iwm-matched", "bc"
FULL_BUDGET = 1.0

_IMITATION_FIELDS = ("env_id", "learner", "budget", "seed", "success")
_RL_FIELDS = ("env_id", "learner", "seed", "curve", "success")


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Estimate:
    """A mean (or IQM, or probability) with its 95% bootstrap CI over ``n`` runs."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def point_only(self) -> bool:
        """True when one run makes the CI just the point."""
        return self.n == 1

    def text(self) -> str:
        """``0.53 [0.47, 0.60]``, or ``0.53 (1 seed, no CI)``."""
        if self.point_only:
            return f"{self.mean:.2f} (1 seed, no CI)"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass
class ImitationCell:
    """One learner at one budget in one setting, over its seeds."""

    env_id: str
    learner: str
    budget: float
    seeds: list[int]
    episodes: list[int]
    success: Estimate
    valid_action_rate: float | None  # mean over seeds; None if the rows lack it
    values: list[float]  # success per seed, in seed order


@dataclass
class AggregateRow:
    """IQM over settings of one learner at one budget (rliable stratified bootstrap)."""

    budget: float
    learner: str
    iqm: Estimate  # n = this learner's runs per setting after truncation
    tasks: list[str]


@dataclass
class ImprovementRow:
    """P(iwm-matched > bc) at one budget, averaged over settings (rliable)."""

    budget: float
    probability: Estimate  # n = iwm-matched's runs per setting after truncation
    tasks: list[str]


@dataclass
class SavingRow:
    """The expert-data saving in one setting: where iwm-matched reaches bc@1.0."""

    env_id: str
    bc_full: Estimate | None
    iwm_means: dict[float, float]  # budget -> iwm-matched mean success
    reached_budget: float | None  # smallest budget whose mean reaches bc@1.0
    saving: float | None  # 1 / reached_budget
    random: float | None = None  # the random policy's success on the same instances

    def text(self) -> str:
        """``IWM reaches BC@1.0 with 1/4 of the demos -> 4x saving`` or why not."""
        if self.bc_full is None:
            return "no bc run at budget 1.0"
        if not self.iwm_means:
            return "no iwm-matched runs"
        if self.random is not None and self.bc_full.mean <= self.random:
            # reaching a BC that is no better than chance says nothing about demos saved
            return f"BC@1.0 is at chance ({self.bc_full.mean:.2f} <= random {self.random:.2f})"
        if self.reached_budget is None:
            return "not reached"
        if self.reached_budget >= FULL_BUDGET:
            return "IWM reaches BC@1.0 only at the full budget -> no saving"
        frac = _fraction(self.reached_budget)
        return f"IWM reaches BC@1.0 with {frac} of the demos -> {self.saving:g}x saving"


@dataclass
class RLComparison:
    """RL-from-IWM vs RL-from-BC vs scratch in one setting, at one pretraining budget."""

    env_id: str
    init_budget: float | None  # pretraining budget of the from-bc/from-iwm runs
    final: dict[str, Estimate]  # learner -> final success
    shared_step: int | None  # largest env step every run of every learner evaluated at
    at_shared_step: dict[str, Estimate]  # learner -> success at shared_step


@dataclass
class RLCurve:
    """Mean success vs env steps of one RL learner in one setting, with a bootstrap band."""

    env_id: str
    label: str
    steps: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


@dataclass
class Report:
    """Everything the report shows, as plain data (tables keyed by setting, budget, learner)."""

    results_dir: Path
    n_rows: int
    warnings: list[str] = field(default_factory=list)
    envs: list[str] = field(default_factory=list)
    imitation_learners: list[str] = field(default_factory=list)
    #: env_id -> budget -> learner -> cell
    imitation: dict[str, dict[float, dict[str, ImitationCell]]] = field(default_factory=dict)
    #: env_id -> (random_success, expert_success), means over that setting's rows
    reference: dict[str, tuple[float, float]] = field(default_factory=dict)
    aggregate: list[AggregateRow] = field(default_factory=list)
    improvement: list[ImprovementRow] = field(default_factory=list)
    savings: dict[str, SavingRow] = field(default_factory=dict)
    rl: list[RLComparison] = field(default_factory=list)
    rl_curves: list[RLCurve] = field(default_factory=list)

    def cell(self, env_id: str, budget: float, learner: str) -> ImitationCell | None:
        """The cell of ``learner`` at ``budget`` in ``env_id``, if there were runs."""
        return self.imitation.get(env_id, {}).get(budget, {}).get(learner)

    def markdown(self) -> str:
        """The report as Markdown (plots linked by relative path)."""
        return _markdown(self)


# ---------------------------------------------------------------------------- statistics
def _cell_rng(seed: int, *key: object) -> np.random.Generator:
    # One stream per cell, keyed by its name: adding a setting never shifts another cell's CI.
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def mean_ci(values: Sequence[float], *, reps: int, rng: np.random.Generator) -> Estimate:
    """Mean of ``values`` with a 95% percentile bootstrap CI (scipy); one value -> the point."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) == 1 or np.ptp(x) == 0:
        # scipy refuses one sample, and warns on constant data; the CI is the point anyway.
        return Estimate(mean, mean, mean, len(x))
    ci = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=reps, method="percentile", rng=rng
    ).confidence_interval
    return Estimate(mean, float(ci.low), float(ci.high), len(x))


@contextlib.contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    # rliable's bootstraps draw from numpy's *global* RandomState (its random_state argument is
    # not used for the indices), so seed that, and restore it so callers see no side effect.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _iqm_each(stack: np.ndarray) -> np.ndarray:
    # rliable's aggregate_iqm (trim_mean 0.25 over runs and tasks) of each runs x tasks slice
    # of a runs x tasks x learners stack, in one scipy call: per-slice calls made the bootstrap
    # spend seconds in scipy's per-call overhead. Tests check it equals aggregate_iqm.
    return scipy.stats.trim_mean(stack.reshape(-1, stack.shape[-1]), 0.25, axis=0)


def iqm_cis(matrices: dict[Any, np.ndarray], *, reps: int, seed: int) -> dict[Any, Estimate]:
    """IQM of each learner's ``runs x tasks`` matrix with rliable's stratified bootstrap 95% CI.

    Matrices of the same shape share one bootstrap over a ``runs x tasks x matrices`` stack;
    rliable resamples runs independently per (task, matrix) cell, so this is the same
    bootstrap as one call per matrix, only faster (scipy's per-call overhead dominated).
    """
    from rliable import library

    by_shape: dict[tuple[int, ...], list[Any]] = defaultdict(list)
    for name, scores in matrices.items():
        by_shape[np.shape(scores)].append(name)
    out = {}
    for i, (shape, names) in enumerate(sorted(by_shape.items())):
        stack = np.stack([np.asarray(matrices[n], dtype=float) for n in names], axis=-1)
        with _numpy_global_seed(seed + i):
            point, interval = library.get_interval_estimates({"x": stack}, _iqm_each, reps=reps)
        for k, name in enumerate(names):
            low, high = interval["x"][:, k]
            out[name] = Estimate(float(point["x"][k]), float(low), float(high), shape[0])
    return out


def iqm_ci(scores: np.ndarray, *, reps: int, seed: int) -> Estimate:
    """IQM of one ``runs x tasks`` matrix with rliable's stratified bootstrap 95% CI."""
    return iqm_cis({"x": scores}, reps=reps, seed=seed)["x"]


def improvement_ci(x: np.ndarray, y: np.ndarray, *, reps: int, seed: int) -> Estimate:
    """P(X > Y) averaged over tasks (``runs x tasks`` matrices), rliable, with its 95% CI."""
    from rliable import library, metrics

    with _numpy_global_seed(seed):
        point, interval = library.get_interval_estimates(
            {"x": [x, y]},
            lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
            reps=reps,
        )
    return Estimate(
        float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0]), len(x)
    )


# ---------------------------------------------------------------------------- building
def _order(names: set[str], preferred: Sequence[str]) -> list[str]:
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def _fraction(budget: float) -> str:
    frac = Fraction(budget).limit_denominator(1000)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac}"


def _load_rows(results_dir: Path, profile: str | None, warn: list[str]) -> list[dict[str, Any]]:
    path = results_dir / RESULTS_FILE
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"{results_dir} does not exist: run a sweep into it first (benchmarks/sweep.py "
            "with this directory as its output), then build the report."
        )
    results = read_results(path)
    warn.extend(results.problems)
    if not results.rows:
        raise ValueError(
            f"{path} is missing or holds no finished runs: run a sweep into {results_dir} "
            "first (benchmarks/sweep.py), then build the report."
        )
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    unknown: Counter[str] = Counter()
    incomplete = duplicates = 0
    for row in results.rows:
        kind = row.get("kind")
        needed = {"imitation": _IMITATION_FIELDS, "rl": _RL_FIELDS}.get(kind)
        if needed is None:
            unknown[str(kind)] += 1
            continue
        if any(row.get(name) is None for name in needed):
            incomplete += 1
            continue
        if row["hash"] in seen:  # a duplicated line would count one run twice
            duplicates += 1
            continue
        seen.add(row["hash"])
        rows.append(row)
    if unknown:
        kinds = ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items()))
        warn.append(f"skipped rows of unknown kind: {kinds}")
    if incomplete:
        warn.append(f"skipped {incomplete} rows missing a required field")
    if duplicates:
        warn.append(f"skipped {duplicates} duplicated rows (same config hash)")
    profiles = sorted({str(row.get("profile")) for row in rows})
    if profile is not None:
        rows = [row for row in rows if str(row.get("profile")) == profile]
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
    return rows


def _imitation_cells(
    rows: list[dict[str, Any]], reps: int, seed: int
) -> dict[str, dict[float, dict[str, ImitationCell]]]:
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["env_id"], float(row["budget"]), row["learner"])].append(row)
    table: dict[str, dict[float, dict[str, ImitationCell]]] = {}
    for (env_id, budget, learner), group in sorted(groups.items()):
        group.sort(key=lambda r: r["seed"])
        values = [float(r["success"]) for r in group]
        valid = [float(r["valid_action_rate"]) for r in group if "valid_action_rate" in r]
        cell = ImitationCell(
            env_id=env_id,
            learner=learner,
            budget=budget,
            seeds=[int(r["seed"]) for r in group],
            episodes=sorted({int(r["episodes"]) for r in group if "episodes" in r}),
            success=mean_ci(values, reps=reps, rng=_cell_rng(seed, env_id, budget, learner)),
            valid_action_rate=float(np.mean(valid)) if valid else None,
            values=values,
        )
        table.setdefault(env_id, {}).setdefault(budget, {})[learner] = cell
    return table


def _matrices(
    table: dict[str, dict[float, dict[str, ImitationCell]]], budget: float, learners: list[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """``runs x tasks`` matrices of ``learners`` at ``budget`` on the settings all of them ran.

    The settings are common, so the learners' aggregates are comparable; each learner's
    matrix is truncated to its own smallest seed count over those settings (lowest seeds
    kept), since rliable needs a rectangle per learner but not equal runs across learners.
    """
    tasks = [
        env
        for env in sorted(table)
        if all(learner in table[env].get(budget, {}) for learner in learners)
    ]
    matrices = {}
    for learner in learners if tasks else []:
        runs = min(len(table[env][budget][learner].values) for env in tasks)
        matrices[learner] = np.array([table[env][budget][learner].values[:runs] for env in tasks]).T
    return matrices, tasks


def _aggregate(report: Report, reps: int, poi_reps: int, seed: int) -> None:
    budgets = sorted({b for env in report.imitation.values() for b in env})
    matrices: dict[tuple[float, str], np.ndarray] = {}
    tasks_at: dict[float, list[str]] = {}
    for budget in budgets:
        learners = [
            learner
            for learner in report.imitation_learners
            if any(learner in env.get(budget, {}) for env in report.imitation.values())
        ]
        at_budget, tasks_at[budget] = _matrices(report.imitation, budget, learners)
        if not tasks_at[budget]:
            report.warnings.append(
                f"budget {budget:g}: no setting has runs of every learner ({', '.join(learners)}); "
                "no aggregate IQM at this budget"
            )
        matrices.update({(budget, learner): m for learner, m in at_budget.items()})
        if IWM in learners and BC in learners:
            pair, pair_tasks = _matrices(report.imitation, budget, [IWM, BC])
            if pair_tasks:
                prob = improvement_ci(pair[IWM], pair[BC], reps=poi_reps, seed=seed)
                report.improvement.append(ImprovementRow(budget, prob, pair_tasks))
    # All budgets in one call: same-shaped matrices share one stacked bootstrap (see iqm_cis).
    iqms = iqm_cis(matrices, reps=reps, seed=seed)
    for budget, learner in sorted(
        iqms, key=lambda k: (k[0], report.imitation_learners.index(k[1]))
    ):
        report.aggregate.append(
            AggregateRow(budget, learner, iqms[(budget, learner)], tasks_at[budget])
        )


def _savings(report: Report) -> None:
    for env_id, by_budget in report.imitation.items():
        bc_cell = by_budget.get(FULL_BUDGET, {}).get(BC)
        iwm = {b: cells[IWM].success.mean for b, cells in sorted(by_budget.items()) if IWM in cells}
        reached = None
        if bc_cell is not None:
            target = bc_cell.success.mean
            # A tiny tolerance: equal means computed in different orders must count as reached.
            reached = next((b for b, m in iwm.items() if m >= target - 1e-9), None)
        report.savings[env_id] = SavingRow(
            env_id=env_id,
            bc_full=bc_cell.success if bc_cell else None,
            iwm_means=iwm,
            reached_budget=reached,
            saving=(1.0 / reached) if reached else None,
            random=report.reference[env_id][0] if env_id in report.reference else None,
        )


def _curve_grid(curves: list[np.ndarray]) -> np.ndarray:
    """Env steps to compare runs at: the steps every run evaluated at, or (if runs evaluated at
    different steps) the union of steps within the range they all cover, by interpolation."""
    shared = set(curves[0][:, 0])
    for c in curves[1:]:
        shared &= set(c[:, 0])
    if len(shared) >= 2 or len(curves) == 1:
        return np.array(sorted(shared))
    lo = max(c[0, 0] for c in curves)
    hi = min(c[-1, 0] for c in curves)
    union = np.unique(np.concatenate([c[:, 0] for c in curves]))
    return union[(union >= lo) & (union <= hi)]


def _rl(report: Report, rows: list[dict[str, Any]], reps: int, seed: int) -> None:
    by_env: dict[str, dict[tuple[str, float | None], list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        init = row.get("init_budget")
        # Scratch has no pretraining, whatever the row says.
        init = None if row["learner"] == "rl-scratch" or init is None else float(init)
        by_env[row["env_id"]][(row["learner"], init)].append(row)
    for env_id in sorted(by_env):
        series = by_env[env_id]
        for (learner, init), group in sorted(series.items(), key=lambda kv: _rl_key(kv[0])):
            group.sort(key=lambda r: r["seed"])
            curves = [np.asarray(r["curve"], dtype=float).reshape(-1, 2) for r in group]
            curves = [c for c in curves if len(c)]
            if not curves:
                continue
            grid = _curve_grid(curves)
            if not len(grid):
                continue
            ys = np.array([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
            mean = ys.mean(axis=0)
            low, high = mean.copy(), mean.copy()
            if len(ys) > 1:
                # One vectorised bootstrap over all steps; constant columns are their own CI.
                ci = scipy.stats.bootstrap(
                    (ys,),
                    np.mean,
                    axis=0,
                    n_resamples=reps,
                    method="percentile",
                    rng=_cell_rng(seed, env_id, learner, init, "curve"),
                ).confidence_interval
                varies = np.ptp(ys, axis=0) > 0
                low[varies], high[varies] = ci.low[varies], ci.high[varies]
            report.rl_curves.append(
                RLCurve(
                    env_id,
                    _rl_label(learner, init),
                    grid.tolist(),
                    mean.tolist(),
                    low.tolist(),
                    high.tolist(),
                    len(ys),
                )
            )
        inits = sorted({init for (learner, init) in series if init is not None}) or [None]
        for init in inits:
            groups = {
                learner: series[(learner, None if learner == "rl-scratch" else init)]
                for learner in _order({lr for lr, _ in series}, RL_LEARNERS)
                if series.get((learner, None if learner == "rl-scratch" else init))
            }
            final = {
                learner: mean_ci(
                    [float(r["success"]) for r in sorted(g, key=lambda r: r["seed"])],
                    reps=reps,
                    rng=_cell_rng(seed, env_id, learner, init, "final"),
                )
                for learner, g in groups.items()
            }
            steps = [set(float(s) for s, _ in r["curve"]) for g in groups.values() for r in g]
            common = set.intersection(*steps) if steps else set()
            shared = max(common) if common else None
            at_shared = {}
            if shared is not None:
                for learner, g in groups.items():
                    vals = [
                        next(float(v) for s, v in r["curve"] if float(s) == shared)
                        for r in sorted(g, key=lambda r: r["seed"])
                    ]
                    at_shared[learner] = mean_ci(
                        vals, reps=reps, rng=_cell_rng(seed, env_id, learner, init, "shared")
                    )
            report.rl.append(
                RLComparison(
                    env_id, init, final, int(shared) if shared is not None else None, at_shared
                )
            )


def _rl_key(key: tuple[str, float | None]) -> tuple[int, str, float]:
    learner, init = key
    rank = RL_LEARNERS.index(learner) if learner in RL_LEARNERS else len(RL_LEARNERS)
    return rank, learner, -1.0 if init is None else init


def _rl_label(learner: str, init: float | None) -> str:
    return learner if init is None else f"{learner} (init {_fraction(init)})"


def build_report(
    results_dir: str | os.PathLike,
    *,
    reps: int = 2000,
    seed: int = 0,
    poi_reps: int = 300,
    profile: str | None = None,
) -> Report:
    """Compute every table of the report from ``results_dir/results.jsonl``.

    ``reps`` bootstrap resamples for per-cell CIs and the IQM; ``poi_reps`` for the probability
    of improvement (rliable runs a scipy Mann-Whitney test per task per resample, ~0.4 ms each,
    so it gets fewer). ``profile`` picks one sweep profile when the file mixes several.
    Raises FileNotFoundError / ValueError, saying what to run, when there is nothing to report.
    """
    results_dir = Path(results_dir)
    warn: list[str] = []
    rows = _load_rows(results_dir, profile, warn)
    imitation = [r for r in rows if r["kind"] == "imitation"]
    rl_rows = [r for r in rows if r["kind"] == "rl"]
    report = Report(results_dir=results_dir, n_rows=len(rows), warnings=warn)
    report.envs = sorted({r["env_id"] for r in rows})
    report.imitation_learners = _order({r["learner"] for r in imitation}, IMITATION_LEARNERS)
    report.imitation = _imitation_cells(imitation, reps, seed)
    for env_id in report.imitation:
        env_rows = [r for r in imitation if r["env_id"] == env_id]
        rand = [float(r["random_success"]) for r in env_rows if r.get("random_success") is not None]
        expert = [
            float(r["expert_success"]) for r in env_rows if r.get("expert_success") is not None
        ]
        if rand and expert:
            report.reference[env_id] = (float(np.mean(rand)), float(np.mean(expert)))
    _aggregate(report, reps, poi_reps, seed)
    _savings(report)
    _rl(report, rl_rows, reps, seed)
    return report


# ---------------------------------------------------------------------------- plots
def _save_png(fig: Any, path: Path) -> None:
    from agents.files import atomic_write  # see write_report

    with atomic_write(path, "wb") as f:  # never a half-written PNG
        fig.savefig(f, format="png", dpi=110)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def plot_data_efficiency(report: Report, path: Path) -> None:
    """Success vs budget: one panel per setting plus the aggregate IQM, CI bands per learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted(report.imitation)
    nrows, ncols = _grid(len(envs) + 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    colors = {lr: f"C{i}" for i, lr in enumerate(report.imitation_learners)}

    def draw(ax: Any, points: dict[str, list[tuple[float, Estimate]]], title: str) -> None:
        for learner, pts in points.items():
            pts.sort()
            xs = [b for b, _ in pts]
            ax.plot(xs, [e.mean for _, e in pts], "o-", color=colors[learner], label=learner)
            ax.fill_between(
                xs,
                [e.low for _, e in pts],
                [e.high for _, e in pts],
                color=colors[learner],
                alpha=0.2,
            )
        ax.set_xscale("log", base=2)
        ticks = sorted({b for pts in points.values() for b, _ in pts})
        ax.set_xticks(ticks, [_fraction(b) for b in ticks])
        ax.minorticks_off()
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("demo budget (fraction of full)")
        ax.set_ylim(-0.03, 1.03)

    for ax, env_id in zip(axes.flat, envs, strict=False):
        points: dict[str, list[tuple[float, Estimate]]] = defaultdict(list)
        for budget, cells in report.imitation[env_id].items():
            for learner, cell in cells.items():
                points[learner].append((budget, cell.success))
        draw(ax, points, env_id.split("/")[-1])
        ax.set_ylabel("test success")
        if env_id in report.reference:
            rand, expert = report.reference[env_id]
            ax.axhline(expert, color="k", ls="--", lw=0.8)
            ax.axhline(rand, color="gray", ls=":", lw=0.8)
    agg_ax = axes.flat[len(envs)]
    agg: dict[str, list[tuple[float, Estimate]]] = defaultdict(list)
    for row in report.aggregate:
        agg[row.learner].append((row.budget, row.iqm))
    draw(agg_ax, agg, "aggregate IQM over settings")
    agg_ax.set_ylabel("IQM success")
    for ax in list(axes.flat)[len(envs) + 1 :]:
        ax.axis("off")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    names = [lr for lr in report.imitation_learners if lr in handles]
    if names:
        fig.legend([handles[n] for n in names], names, loc="lower center", ncol=len(names))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save_png(fig, path)
    plt.close(fig)


def plot_rl_curves(report: Report, path: Path) -> None:
    """Success vs env steps: one panel per setting, one line (with CI band) per RL learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({c.env_id for c in report.rl_curves})
    nrows, ncols = _grid(max(len(envs), 1))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    labels = sorted({c.label for c in report.rl_curves}, key=lambda s: (s.split()[0], s))
    colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
    for ax, env_id in zip(axes.flat, envs, strict=False):
        for curve in (c for c in report.rl_curves if c.env_id == env_id):
            ax.plot(curve.steps, curve.mean, color=colors[curve.label], label=curve.label)
            ax.fill_between(
                curve.steps, curve.low, curve.high, color=colors[curve.label], alpha=0.2
            )
        ax.set_title(env_id.split("/")[-1], fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("test success")
        ax.set_ylim(-0.03, 1.03)
    if not envs:
        axes.flat[0].text(0.5, 0.5, "no RL runs", ha="center", va="center")
        axes.flat[0].axis("off")
    for ax in list(axes.flat)[max(len(envs), 1) :]:
        ax.axis("off")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 4))
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    _save_png(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------------- markdown
def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _budget_label(budget: float, cells: dict[str, ImitationCell]) -> str:
    episodes = sorted({e for c in cells.values() for e in c.episodes})
    label = _fraction(budget)
    if len(episodes) == 1:
        label += f" ({episodes[0]} demos)"
    elif episodes:
        label += f" ({episodes[0]}-{episodes[-1]} demos)"
    return label


def _imitation_sections(report: Report, usual: int) -> list[str]:
    """Headline saving, aggregate and per-setting tables; ``usual`` is the common seed count."""
    out: list[str] = []
    out += ["## Headline: expert-data saving of IWM", ""]
    rows = []
    for env_id in sorted(report.savings):
        s = report.savings[env_id]
        rows.append(
            [
                env_id,
                s.bc_full.text() if s.bc_full else "-",
                ", ".join(f"{_fraction(b)}: {m:.2f}" for b, m in s.iwm_means.items()) or "-",
                s.text(),
            ]
        )
    out += _table(["setting", "bc @ 1", "iwm-matched mean by budget", "saving"], rows)
    out += [
        "",
        "The saving is the smallest budget at which iwm-matched's mean success reaches bc's "
        "full-data mean (means compared; see the CIs below before trusting a close call).",
        "",
    ]

    out += ["## Aggregate over settings", ""]
    if report.aggregate:
        budgets = sorted({r.budget for r in report.aggregate})
        learners = [
            lr for lr in report.imitation_learners if any(r.learner == lr for r in report.aggregate)
        ]
        by = {(r.budget, r.learner): r for r in report.aggregate}
        rows = []
        for b in budgets:
            some = next(r for r in report.aggregate if r.budget == b)
            cells = []
            for lr in learners:
                row = by.get((b, lr))
                if row is None:
                    cells.append("-")
                else:
                    runs = "" if row.iqm.point_only else f" ({row.iqm.n} runs)"
                    cells.append(row.iqm.text() + runs)
            rows.append([_fraction(b), str(len(some.tasks))] + cells)
        out += _table(["budget", "settings"] + learners, rows)
        out += [
            "",
            "IQM of test success over settings x runs, with 95% stratified bootstrap CIs "
            "(rliable). Per budget, only settings where every learner has runs are used; each "
            "learner is truncated to its smallest seed count over them (lowest seeds kept).",
            "",
        ]
        for b in budgets:
            tasks = next(r.tasks for r in report.aggregate if r.budget == b)
            missing = sorted(set(report.imitation) - set(tasks))
            if missing:
                out.append(f"- budget {_fraction(b)}: left out {', '.join(missing)}")
        out.append("")
    else:
        out += ["No setting has runs of every learner at any budget.", ""]
    if report.improvement:
        rows = [
            [_fraction(r.budget), str(len(r.tasks)), r.probability.text()]
            for r in report.improvement
        ]
        out += ["### Probability of improvement, iwm-matched over bc", ""]
        out += _table(["budget", "settings", "P(iwm-matched > bc) [95% CI]"], rows)
        out += ["", "0.5 means no difference; rliable, averaged over settings.", ""]

    out += ["## Per setting", ""]
    for env_id in sorted(report.imitation):
        out += [f"### {env_id}", ""]
        if env_id in report.reference:
            rand, expert = report.reference[env_id]
            out += [
                f"Random policy {rand:.2f}, expert {expert:.2f} on the same test instances.",
                "",
            ]
        by_budget = report.imitation[env_id]
        learners = [
            lr for lr in report.imitation_learners if any(lr in c for c in by_budget.values())
        ]
        rows = []
        for budget in sorted(by_budget):
            cells = by_budget[budget]
            row = [_budget_label(budget, cells)]
            for lr in learners:
                cell = cells.get(lr)
                if cell is None:
                    row.append("-")
                    continue
                text = cell.success.text()
                if cell.success.n != usual and cell.success.n != 1:
                    text += f" n={cell.success.n}"
                if cell.valid_action_rate is not None:
                    text += f" (valid {cell.valid_action_rate:.2f})"
                row.append(text)
            rows.append(row)
        out += _table(["budget"] + learners, rows) + [""]

    return out


def _markdown(report: Report) -> str:
    out = [f"# Benchmark report: `{report.results_dir.name}`", ""]
    n_cells = [
        c.success.n for env in report.imitation.values() for b in env.values() for c in b.values()
    ]
    usual = Counter(n_cells).most_common(1)[0][0] if n_cells else 0
    out += [
        f"{report.n_rows} runs over {len(report.envs)} setting(s). Success is the greedy test "
        "success rate; cells are the mean over seeds with a 95% percentile bootstrap CI "
        f"(scipy); {f'most cells have {usual} seeds, others are marked n=k; ' if usual else ''}"
        "a 1-seed cell has no CI. `valid` is the valid-action rate (form), beside success "
        "(function).",
        "",
    ]
    if report.imitation:
        out += [f"![data efficiency]({DATA_EFFICIENCY_PNG})", ""]
    if report.warnings:
        out += ["**Warnings**", ""] + [f"- {w}" for w in report.warnings] + [""]

    if report.imitation:
        out += _imitation_sections(report, usual)
    else:
        out += ["No imitation runs.", ""]
    out += ["## RL: from IWM vs from BC vs scratch", ""]
    if report.rl:
        out += [f"![RL curves]({RL_CURVES_PNG})", ""]
        learners = _order({lr for c in report.rl for lr in c.final}, RL_LEARNERS)
        rows = []
        for c in report.rl:
            init = "-" if c.init_budget is None else _fraction(c.init_budget)
            step = "-" if c.shared_step is None else str(c.shared_step)
            cells = []
            for lr in learners:
                if lr not in c.final:
                    cells.append("-")
                    continue
                shared = c.at_shared_step.get(lr)
                cells.append(f"{c.final[lr].text()}; @{step}: {shared.text() if shared else '-'}")
            rows.append([c.env_id, init, step] + cells)
        out += _table(["setting", "init budget", "shared step"] + learners, rows)
        out += [
            "",
            "Each cell: final success; then success at the shared step, the largest env step "
            "at which every run of every learner in the row was evaluated (mean and 95% "
            "bootstrap CI over seeds). Pretraining demos are not counted in env steps.",
            "",
        ]
    else:
        out += ["No RL runs.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- entry points
def write_report(
    results_dir: str | os.PathLike,
    *,
    reps: int = 2000,
    seed: int = 0,
    poi_reps: int = 300,
    profile: str | None = None,
) -> Path:
    """Build the report and write report.md, data_efficiency.png and rl_curves.png atomically.

    Warnings (torn tail, skipped rows) are printed to stderr. Returns the report.md path.
    """
    # Imported here: agents pulls in torch (~1 s), which the statistics alone do not need.
    from agents.files import atomic_write

    report = build_report(results_dir, reps=reps, seed=seed, poi_reps=poi_reps, profile=profile)
    for message in report.warnings:
        print(f"warning: {message}", file=sys.stderr)
    out_dir = report.results_dir
    plot_data_efficiency(report, out_dir / DATA_EFFICIENCY_PNG)
    plot_rl_curves(report, out_dir / RL_CURVES_PNG)
    path = out_dir / REPORT_FILE
    with atomic_write(path) as f:
        f.write(report.markdown())
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report RESULTS_DIR``: write the report, print its path."""
    parser = argparse.ArgumentParser(prog="benchmarks.report", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (CIs, IQM)")
    parser.add_argument("--poi-reps", type=int, default=300, help="resamples for P(improvement)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, help="report one profile of a mixed file")
    args = parser.parse_args(argv)
    try:
        path = write_report(
            args.results_dir,
            reps=args.reps,
            seed=args.seed,
            poi_reps=args.poi_reps,
            profile=args.profile,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
