"""The report as data: per-cell CIs, paired differences, the aggregate, the headline and
the RL comparison.

Which imitation learner is the baseline and which are compared with it are parameters
(``baseline``, ``compare``); nothing here knows a learner by name. RL runs are grouped by
learner name, and a run is scratch when its row says it had no warm start (see
:class:`benchmarks.report.rows.RLRow`).

The headline counts only what was learned: a setting is *learned* when the baseline's
success at its largest budget beats the random policy's on the same test instances, paired
by seed, with the 95% bootstrap CI of the difference above 0 (so at least 2 seeds); a cell
(setting, budget, learner) *converged* when every run in it was ended by early stopping,
not by its update cap (:func:`benchmarks.report.rows.stopping`). The headline aggregate,
probability of improvement and expert-data savings use only converged cells of learned
settings; the same statistics over every cell are kept beside them as diagnostics.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.stats

from benchmarks.report.rows import CAPPED, CONVERGED, UNKNOWN, ImitationRow, RLRow, load_rows
from benchmarks.report.stats import (
    Estimate,
    Paired,
    cell_rng,
    improvement_ci,
    iqm_cis,
    mean_ci,
    paired_difference,
)

FULL_BUDGET = 1.0
DEFAULT_BASELINE = "bc"


def fraction(budget: float) -> str:
    """A budget as a fraction: ``0.25`` -> ``1/4``, ``1.0`` -> ``1``."""
    frac = Fraction(budget).limit_denominator(1000)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac}"


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
    #: per seed, in seed order: how training ended (rows.CONVERGED / CAPPED / UNKNOWN), the
    #: random policy's success on the same instances, and the test episodes behind success
    stopping: list[str] = field(default_factory=list)
    random_values: list[float | None] = field(default_factory=list)
    eval_episodes: list[int | None] = field(default_factory=list)

    @property
    def capped(self) -> int:
        """Runs that hit their update cap."""
        return self.stopping.count(CAPPED)

    @property
    def unknown(self) -> int:
        """Runs whose rows cannot tell whether early stopping or the cap ended them."""
        return self.stopping.count(UNKNOWN)

    @property
    def converged(self) -> bool:
        """Every run was ended by early stopping."""
        return bool(self.stopping) and all(s == CONVERGED for s in self.stopping)

    def flag(self) -> str:
        """``capped 2/3``, ``stop unknown 1/3`` (both, comma-separated), or ``""``."""
        n = len(self.stopping)
        parts = [f"capped {self.capped}/{n}"] if self.capped else []
        parts += [f"stop unknown {self.unknown}/{n}"] if self.unknown else []
        return ", ".join(parts)


@dataclass
class PairedRow:
    """A compared learner minus the baseline in one setting at one budget, paired by seed."""

    env_id: str
    budget: float
    learner: str
    baseline: str
    seeds: list[int]  # the seeds both ran
    paired: Paired


@dataclass
class LearnedRow:
    """Whether the baseline learned a setting: its success at its largest budget minus the
    random policy's on the same test instances, paired by seed, has a 95% CI above 0."""

    env_id: str
    learner: str  # the baseline
    budget: float | None  # its largest budget in this setting (None: no runs)
    paired: Paired | None  # success - random success (None: nothing to pair)
    learned: bool
    why: str  # why not, or "" when learned

    def text(self) -> str:
        """``learned: bc@1 - random +0.40 [+0.30, +0.50] (3 seeds, MDE 0.21)``, or
        ``not learned: ...; why``."""
        if self.paired is None or self.budget is None:
            return f"not learned: {self.why}"
        d = self.paired.difference
        detail = (
            f"{self.learner}@{fraction(self.budget)} - random {d.text(signed=True)} "
            f"({d.n} seed{'s' if d.n != 1 else ''}, MDE {self.paired.mde_text()})"
        )
        return f"learned: {detail}" if self.learned else f"not learned: {detail}; {self.why}"


@dataclass
class AggregateRow:
    """IQM over settings of one learner at one budget (rliable stratified bootstrap)."""

    budget: float
    learner: str
    iqm: Estimate  # n = this learner's runs per setting after truncation
    tasks: list[str]


@dataclass
class ImprovementRow:
    """P(learner > baseline) at one budget, averaged over settings (rliable)."""

    learner: str  # the compared learner
    baseline: str
    budget: float
    probability: Estimate  # n = the compared learner's runs per setting after truncation
    tasks: list[str]


@dataclass
class SavingRow:
    """The expert-data saving of one compared learner in one setting: where it reaches the
    baseline's full-budget mean."""

    env_id: str
    learner: str  # the compared learner
    baseline: str
    baseline_full: Estimate | None  # the baseline at budget 1.0
    means: dict[float, float]  # budget -> the compared learner's mean success
    reached_budget: float | None  # smallest budget whose mean reaches the baseline@1.0
    saving: float | None  # 1 / reached_budget
    random: float | None = None  # the random policy's success on the same instances
    #: why this setting is kept out of the headline (not learned, a cell that did not
    #: converge); None when it counts
    left_out: str | None = None

    def text(self) -> str:
        """``reaches bc@1.0 with 1/4 of the demos -> 4x saving``, or why not."""
        if self.baseline_full is None:
            return f"no {self.baseline} run at budget 1.0"
        if not self.means:
            return f"no {self.learner} runs"
        if self.left_out is not None:
            # A saving over a baseline that learned nothing, or over runs the cap stopped,
            # says nothing about demos saved.
            return f"left out: {self.left_out}"
        if self.reached_budget is None:
            return "not reached"
        if self.reached_budget >= FULL_BUDGET:
            return f"reaches {self.baseline}@1.0 only at the full budget -> no saving"
        frac = fraction(self.reached_budget)
        return f"reaches {self.baseline}@1.0 with {frac} of the demos -> {self.saving:g}x saving"


@dataclass
class RLComparison:
    """The RL learners in one setting, at one pretraining budget of the warm starts."""

    env_id: str
    init_budget: float | None  # pretraining budget of the warm-started runs
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
    #: the headline's baseline, None when it has no runs (or none was asked for)
    baseline: str | None = None
    #: the learners compared with the baseline that have runs, in the order asked for
    compared: list[str] = field(default_factory=list)
    #: display order: baseline, compared, then the others sorted
    imitation_learners: list[str] = field(default_factory=list)
    #: env_id -> budget -> learner -> cell
    imitation: dict[str, dict[float, dict[str, ImitationCell]]] = field(default_factory=dict)
    #: env_id -> (random_success, expert_success), means over that setting's rows
    reference: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: over every cell (a diagnostic: includes settings not learned and capped runs)
    aggregate: list[AggregateRow] = field(default_factory=list)
    #: the baseline alone per budget, over every setting it ran (more settings than the
    #: comparison's where a profile has a focus)
    baseline_aggregate: list[AggregateRow] = field(default_factory=list)
    #: per compared learner (in ``compared`` order), then per budget; every cell
    improvement: list[ImprovementRow] = field(default_factory=list)
    #: env_id -> whether the baseline learned it (empty without a baseline)
    learned: dict[str, LearnedRow] = field(default_factory=dict)
    #: compared learner - baseline per setting and budget, paired by seed
    paired: list[PairedRow] = field(default_factory=list)
    #: the aggregate and probability of improvement over headline cells only
    headline_aggregate: list[AggregateRow] = field(default_factory=list)
    headline_improvement: list[ImprovementRow] = field(default_factory=list)
    #: compared learner -> env_id -> saving
    savings: dict[str, dict[str, SavingRow]] = field(default_factory=dict)
    #: RL learners in display order: scratch first, then warm starts by their init learner
    rl_learners: list[str] = field(default_factory=list)
    #: RL learner -> the imitation learner it warm-started from (None: scratch or unknown)
    rl_init: dict[str, str | None] = field(default_factory=dict)
    rl: list[RLComparison] = field(default_factory=list)
    rl_curves: list[RLCurve] = field(default_factory=list)

    def cell(self, env_id: str, budget: float, learner: str) -> ImitationCell | None:
        """The cell of ``learner`` at ``budget`` in ``env_id``, if there were runs."""
        return self.imitation.get(env_id, {}).get(budget, {}).get(learner)

    def is_learned(self, env_id: str) -> bool:
        """The baseline learned ``env_id`` (False without a baseline)."""
        row = self.learned.get(env_id)
        return row is not None and row.learned

    def in_headline(self, env_id: str, budget: float, learner: str) -> bool:
        """The cell counts in the headline: its setting is learned and every run converged."""
        cell = self.cell(env_id, budget, learner)
        return cell is not None and cell.converged and self.is_learned(env_id)

    def why_left_out(self, env_id: str, budget: float, learner: str) -> str | None:
        """Why a cell is kept out of the headline (None: it counts, or it has no runs)."""
        cell = self.cell(env_id, budget, learner)
        if cell is None:
            return None
        if not self.is_learned(env_id):
            if self.baseline is None:
                return "no baseline to judge learning by"
            return f"{self.baseline} did not learn this setting"
        if not cell.converged:
            return f"{learner}@{fraction(budget)}: {cell.flag()}"
        return None

    def headline_table(self) -> dict[str, dict[float, dict[str, ImitationCell]]]:
        """:attr:`imitation` with only the cells :meth:`in_headline` keeps."""
        table: dict[str, dict[float, dict[str, ImitationCell]]] = {}
        for env_id, by_budget in self.imitation.items():
            for budget, cells in by_budget.items():
                kept = {lr: c for lr, c in cells.items() if self.in_headline(env_id, budget, lr)}
                if kept:
                    table.setdefault(env_id, {})[budget] = kept
        return table

    def markdown(self) -> str:
        """The report as Markdown (plots linked by relative path)."""
        from benchmarks.report.markdown import render  # markdown imports this module

        return render(self)


# ---------------------------------------------------------------------------- learners
def _choose_learners(
    present: set[str],
    baseline: str | None,
    compare: Sequence[str] | None,
    warn: list[str],
) -> tuple[str | None, list[str], list[str]]:
    """The baseline (if it has runs), the compared learners with runs, and the display order.

    A baseline or compared learner without runs is a warning, not an error: a sweep of
    some learners still gets its report (the sweep writes one with the default baseline).
    """
    if isinstance(compare, str):
        raise TypeError(f"compare is a sequence of learner names, got the string {compare!r}")
    names = ", ".join(sorted(present)) or "none"
    if compare is None:
        wanted = sorted(present - {baseline})
    else:
        # The baseline is not compared with itself; a name given twice counts once.
        wanted = list(dict.fromkeys(name for name in compare if name != baseline))
        missing = [name for name in wanted if name not in present]
        if missing and present:
            warn.append(
                f"compared learner(s) {', '.join(missing)} have no imitation runs; "
                f"learners present: {names}"
            )
        wanted = [name for name in wanted if name in present]
    if baseline is not None and baseline not in present:
        if present:  # RL-only results need no baseline
            warn.append(
                f"baseline {baseline} has no imitation runs, so there is no headline or "
                f"probability of improvement; learners present: {names} (choose one with "
                "--baseline)"
            )
        baseline = None
    first = ([baseline] if baseline else []) + wanted
    order = first + sorted(present - set(first))
    return baseline, wanted, order


# ---------------------------------------------------------------------------- imitation
def _imitation_cells(
    rows: list[ImitationRow], reps: int, seed: int
) -> dict[str, dict[float, dict[str, ImitationCell]]]:
    groups: dict[tuple[str, float, str], list[ImitationRow]] = defaultdict(list)
    for row in rows:
        groups[(row.env_id, row.budget, row.learner)].append(row)
    table: dict[str, dict[float, dict[str, ImitationCell]]] = {}
    for (env_id, budget, learner), group in sorted(groups.items()):
        group.sort(key=lambda r: r.seed)
        values = [r.success for r in group]
        valid = [r.valid_action_rate for r in group if r.valid_action_rate is not None]
        cell = ImitationCell(
            env_id=env_id,
            learner=learner,
            budget=budget,
            seeds=[r.seed for r in group],
            episodes=sorted({r.episodes for r in group if r.episodes is not None}),
            success=mean_ci(values, reps=reps, rng=cell_rng(seed, env_id, budget, learner)),
            valid_action_rate=float(np.mean(valid)) if valid else None,
            values=values,
            stopping=[r.stopping for r in group],
            random_values=[r.random_success for r in group],
            eval_episodes=[r.eval_episodes for r in group],
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


def _aggregate(
    report: Report,
    table: dict[str, dict[float, dict[str, ImitationCell]]],
    reps: int,
    poi_reps: int,
    seed: int,
    warn: list[str] | None,
) -> tuple[list[AggregateRow], list[ImprovementRow]]:
    """IQM per budget and learner, and P(compared > baseline), over the cells of ``table``.

    ``warn`` collects a warning per budget without a setting every learner ran (None: the
    caller says it its own way).
    """
    budgets = sorted({b for env in table.values() for b in env})
    matrices: dict[tuple[float, str], np.ndarray] = {}
    tasks_at: dict[float, list[str]] = {}
    ran_at: dict[float, set[str]] = {}
    for budget in budgets:
        ran_at[budget] = {learner for env in table.values() for learner in env.get(budget, {})}
        # Sorted by name, not display order: rliable draws one random index per stacked
        # cell, so the stack's order must not change with the chosen baseline.
        learners = sorted(ran_at[budget])
        at_budget, tasks_at[budget] = _matrices(table, budget, learners)
        if not tasks_at[budget] and warn is not None:
            shown = [lr for lr in report.imitation_learners if lr in ran_at[budget]]
            warn.append(
                f"budget {budget:g}: no setting has runs of every learner ({', '.join(shown)}); "
                "no aggregate IQM at this budget"
            )
        matrices.update({(budget, learner): m for learner, m in at_budget.items()})
    improvement = []
    base = report.baseline
    for learner in report.compared if base else []:
        for budget in budgets:
            if learner not in ran_at[budget] or base not in ran_at[budget]:
                continue
            pair, pair_tasks = _matrices(table, budget, [learner, base])
            if pair_tasks:
                prob = improvement_ci(pair[learner], pair[base], reps=poi_reps, seed=seed)
                improvement.append(ImprovementRow(learner, base, budget, prob, pair_tasks))
    # All budgets in one call: same-shaped matrices share one stacked bootstrap (see iqm_cis).
    iqms = iqm_cis(matrices, reps=reps, seed=seed)
    aggregate = [
        AggregateRow(budget, learner, iqms[(budget, learner)], tasks_at[budget])
        for budget, learner in sorted(
            iqms, key=lambda k: (k[0], report.imitation_learners.index(k[1]))
        )
    ]
    return aggregate, improvement


def _baseline_aggregate(report: Report, reps: int, seed: int) -> list[AggregateRow]:
    """The baseline's IQM per budget over every setting where it ran, learned or not."""
    base = report.baseline
    if base is None:
        return []
    matrices: dict[tuple[float, str], np.ndarray] = {}
    tasks_at: dict[float, list[str]] = {}
    for budget in sorted({b for env in report.imitation.values() for b in env}):
        at_budget, tasks = _matrices(report.imitation, budget, [base])
        if at_budget:
            matrices[(budget, base)], tasks_at[budget] = at_budget[base], tasks
    iqms = iqm_cis(matrices, reps=reps, seed=seed)
    return [AggregateRow(b, base, iqms[(b, base)], tasks_at[b]) for b, _ in sorted(iqms)]


def _learned(report: Report, reps: int, seed: int) -> None:
    base = report.baseline
    for env_id, by_budget in report.imitation.items() if base else []:
        budgets = [b for b, cells in by_budget.items() if base in cells]
        if not budgets:
            report.learned[env_id] = LearnedRow(
                env_id, base, None, None, False, f"no {base} runs in this setting"
            )
            continue
        budget = max(budgets)
        cell = by_budget[budget][base]
        pairs = [
            (v, r, e)
            for v, r, e in zip(cell.values, cell.random_values, cell.eval_episodes, strict=True)
            if r is not None
        ]
        if not pairs:
            report.learned[env_id] = LearnedRow(
                env_id, base, budget, None, False, "the rows lack the random policy's success"
            )
            continue
        # The random policy plays the run's own test episodes, so both rates rest on E each.
        episodes = [(e, e) for _, _, e in pairs if e is not None]
        paired = paired_difference(
            [v for v, _, _ in pairs],
            [r for _, r, _ in pairs],
            episodes=episodes if len(episodes) == len(pairs) else None,
            reps=reps,
            rng=cell_rng(seed, env_id, budget, base, "random"),
        )
        if paired.difference.n < 2:
            learned, why = False, "one seed gives no CI to tell it from chance"
        elif paired.difference.low > 0:
            learned, why = True, ""
        else:
            learned, why = False, "the 95% CI is not above 0"
        report.learned[env_id] = LearnedRow(env_id, base, budget, paired, learned, why)


def _paired(report: Report, reps: int, seed: int) -> None:
    base = report.baseline
    for env_id in sorted(report.imitation) if base else []:
        for budget, cells in sorted(report.imitation[env_id].items()):
            if base not in cells:
                continue
            b = cells[base]
            for learner in report.compared:
                if learner not in cells:
                    continue
                a = cells[learner]
                seeds = sorted(set(a.seeds) & set(b.seeds))
                if not seeds:
                    continue
                ai, bi = [a.seeds.index(s) for s in seeds], [b.seeds.index(s) for s in seeds]
                episodes = [
                    (a.eval_episodes[i], b.eval_episodes[j]) for i, j in zip(ai, bi, strict=True)
                ]
                known = all(ea is not None and eb is not None for ea, eb in episodes)
                paired = paired_difference(
                    [a.values[i] for i in ai],
                    [b.values[j] for j in bi],
                    episodes=episodes if known else None,
                    reps=reps,
                    rng=cell_rng(seed, env_id, budget, learner, base, "paired"),
                )
                report.paired.append(PairedRow(env_id, budget, learner, base, seeds, paired))


def _savings(report: Report) -> None:
    base = report.baseline
    for learner in report.compared if base else []:
        by_env = report.savings.setdefault(learner, {})
        for env_id, by_budget in report.imitation.items():
            base_cell = by_budget.get(FULL_BUDGET, {}).get(base)
            # Every cell the saving reads must count: the baseline at 1, the learner at each
            # budget; a setting not learned is one reason for all of them.
            left_out = None
            if not report.is_learned(env_id):
                left_out = report.why_left_out(env_id, FULL_BUDGET, base)
            else:
                reasons = []
                if base_cell is not None and not base_cell.converged:
                    reasons.append(f"{base}@1 {base_cell.flag()}")
                short = [
                    fraction(b)
                    for b, cells in sorted(by_budget.items())
                    if learner in cells and not cells[learner].converged
                ]
                if short:
                    reasons.append(f"{learner} not converged at {', '.join(short)}")
                left_out = "; ".join(reasons) or None
            means = {
                b: cells[learner].success.mean
                for b, cells in sorted(by_budget.items())
                if learner in cells
            }
            reached = None
            if base_cell is not None:
                target = base_cell.success.mean
                # A tiny tolerance: equal means computed in different orders count as reached.
                reached = next((b for b, m in means.items() if m >= target - 1e-9), None)
            by_env[env_id] = SavingRow(
                env_id=env_id,
                learner=learner,
                baseline=base,
                baseline_full=base_cell.success if base_cell else None,
                means=means,
                reached_budget=reached,
                saving=(1.0 / reached) if reached else None,
                random=report.reference[env_id][0] if env_id in report.reference else None,
                left_out=left_out,
            )


# ---------------------------------------------------------------------------- RL
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


def _rl_names(rows: list[RLRow]) -> dict[str, str]:
    """Row hash -> the RL learner it is shown as: its learner name, unless that name ran both
    from scratch and warm-started (or from several learners), which then get a suffix."""
    starts: dict[str, set[str | None]] = defaultdict(set)
    for row in rows:
        starts[row.learner].add(None if row.scratch else row.init_learner or "?")
    names = {}
    for row in rows:
        if len(starts[row.learner]) == 1:
            names[row.hash] = row.learner
        elif row.scratch:
            names[row.hash] = f"{row.learner} (scratch)"
        else:
            names[row.hash] = f"{row.learner} (from {row.init_learner or '?'})"
    return names


def _rl(report: Report, rows: list[RLRow], reps: int, seed: int) -> None:
    name_of = _rl_names(rows)
    scratch = {name_of[r.hash] for r in rows if r.scratch}
    init_of = {name_of[r.hash]: None if r.scratch else r.init_learner for r in rows}
    ranks = {lr: i for i, lr in enumerate(report.imitation_learners)}

    def rank(name: str) -> tuple[int, int, str]:
        # Scratch first, then warm starts in the order of the learners they started from.
        init = init_of[name]
        return (
            0 if name in scratch else 1,
            ranks.get(init, len(ranks)) if init else len(ranks),
            name,
        )

    report.rl_learners = sorted(init_of, key=rank)
    report.rl_init = {name: init_of[name] for name in report.rl_learners}
    by_env: dict[str, dict[tuple[str, float | None], list[RLRow]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        by_env[row.env_id][(name_of[row.hash], row.init_budget)].append(row)
    for env_id in sorted(by_env):
        series = by_env[env_id]
        ordered = sorted(
            series.items(), key=lambda kv: (rank(kv[0][0]), -1.0 if kv[0][1] is None else kv[0][1])
        )
        for (learner, init), group in ordered:
            group.sort(key=lambda r: r.seed)
            curves = [np.asarray(r.curve, dtype=float).reshape(-1, 2) for r in group]
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
                    rng=cell_rng(seed, env_id, learner, init, "curve"),
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
        inits = sorted({init for (_, init) in series if init is not None}) or [None]
        for init in inits:
            # Scratch runs stand beside the warm starts of every pretraining budget.
            keys = {
                learner: (learner, None if learner in scratch else init)
                for learner in report.rl_learners
            }
            groups = {learner: series[key] for learner, key in keys.items() if series.get(key)}
            final = {
                learner: mean_ci(
                    [r.success for r in sorted(g, key=lambda r: r.seed)],
                    reps=reps,
                    rng=cell_rng(seed, env_id, learner, init, "final"),
                )
                for learner, g in groups.items()
            }
            steps = [{s for s, _ in r.curve} for g in groups.values() for r in g]
            common = set.intersection(*steps) if steps else set()
            shared = max(common) if common else None
            at_shared = {}
            if shared is not None:
                for learner, g in groups.items():
                    vals = [
                        next(v for s, v in r.curve if s == shared)
                        for r in sorted(g, key=lambda r: r.seed)
                    ]
                    at_shared[learner] = mean_ci(
                        vals, reps=reps, rng=cell_rng(seed, env_id, learner, init, "shared")
                    )
            report.rl.append(
                RLComparison(
                    env_id, init, final, int(shared) if shared is not None else None, at_shared
                )
            )


def _rl_label(learner: str, init: float | None) -> str:
    return learner if init is None else f"{learner} (init {fraction(init)})"


# ---------------------------------------------------------------------------- entry point
def build_report(
    results_dir: str | os.PathLike,
    *,
    baseline: str | None = DEFAULT_BASELINE,
    compare: Sequence[str] | None = None,
    reps: int = 2000,
    seed: int = 0,
    poi_reps: int = 300,
    profile: str | None = None,
) -> Report:
    """Compute every table of the report from ``results_dir/results.jsonl``.

    ``baseline`` is the imitation learner the headline measures against (None: no headline);
    ``compare`` the learners compared with it, in display order (None: every other imitation
    learner with runs). Either without runs is a warning in the report. ``reps`` bootstrap
    resamples for per-cell CIs and the IQM; ``poi_reps`` for the probability of improvement
    (rliable runs a scipy Mann-Whitney test per task per resample, ~0.4 ms each, so it gets
    fewer). ``profile`` picks one sweep profile when the file mixes several.
    Raises FileNotFoundError / ValueError, saying what to run, when there is nothing to report.
    """
    results_dir = Path(results_dir)
    rows = load_rows(results_dir, profile=profile)
    report = Report(results_dir=results_dir, n_rows=len(rows), warnings=list(rows.warnings))
    report.envs = sorted({r.env_id for r in rows.imitation} | {r.env_id for r in rows.rl})
    present = {r.learner for r in rows.imitation}
    report.baseline, report.compared, report.imitation_learners = _choose_learners(
        present, baseline, compare, report.warnings
    )
    report.imitation = _imitation_cells(rows.imitation, reps, seed)
    for env_id in report.imitation:
        env_rows = [r for r in rows.imitation if r.env_id == env_id]
        rand = [r.random_success for r in env_rows if r.random_success is not None]
        expert = [r.expert_success for r in env_rows if r.expert_success is not None]
        if rand and expert:
            report.reference[env_id] = (float(np.mean(rand)), float(np.mean(expert)))
    report.aggregate, report.improvement = _aggregate(
        report, report.imitation, reps, poi_reps, seed, report.warnings
    )
    report.baseline_aggregate = _baseline_aggregate(report, reps, seed)
    _learned(report, reps, seed)
    _paired(report, reps, seed)
    report.headline_aggregate, report.headline_improvement = _aggregate(
        report, report.headline_table(), reps, poi_reps, seed, None
    )
    _savings(report)
    _rl(report, rows.rl, reps, seed)
    return report
