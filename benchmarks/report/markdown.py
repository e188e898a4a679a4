"""The report as Markdown: headline, aggregate, per-setting tables and the RL comparison."""

from __future__ import annotations

from collections import Counter, defaultdict

from benchmarks.report.build import AggregateRow, ImitationCell, ImprovementRow, Report, fraction
from benchmarks.report.stats import ALPHA, POWER

DATA_EFFICIENCY_PNG = "data_efficiency.png"
RL_CURVES_PNG = "rl_curves.png"


def _cell(text: str) -> str:
    # Learner names are the user's strings; a '|' in one would split the table row.
    return text.replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return lines


def _code(name: str) -> str:
    return f"`{name}`" if "`" not in name else name


def _budget_label(budget: float, cells: dict[str, ImitationCell]) -> str:
    episodes = sorted({e for c in cells.values() for e in c.episodes})
    label = fraction(budget)
    if len(episodes) == 1:
        label += f" ({episodes[0]} demos)"
    elif episodes:
        label += f" ({episodes[0]}-{episodes[-1]} demos)"
    return label


def _left_out(report: Report) -> list[str]:
    """What the headline leaves out and why: settings not learned, cells not converged."""
    out = []
    not_learned = [row for env, row in sorted(report.learned.items()) if not row.learned]
    if not_learned:
        out.append(f"- Settings {report.baseline} did not learn (all their cells left out):")
        out += [
            f"  - {row.env_id}: {row.text().removeprefix('not learned: ')}" for row in not_learned
        ]
    runs = [c for env in report.imitation.values() for b in env.values() for c in b.values()]
    total = sum(len(c.stopping) for c in runs)
    capped, unknown = sum(c.capped for c in runs), sum(c.unknown for c in runs)
    if capped or unknown:
        parts = [f"{capped} of {total} imitation runs hit their update cap"] if capped else []
        parts += [f"{unknown} of {total} cannot tell (stop unknown)"] if unknown else []
        out.append(
            f"- Not converged: {'; '.join(parts)}. In the settings {report.baseline} learned, "
            "left out:"
        )
        # learner, budget -> the learned settings whose cell did not converge
        cells: dict[tuple[str, float], list[str]] = defaultdict(list)
        for env_id in sorted(report.imitation):
            if not report.is_learned(env_id):
                continue
            for budget, by_learner in sorted(report.imitation[env_id].items()):
                for learner, cell in by_learner.items():
                    if not cell.converged:
                        cells[(learner, budget)].append(f"{env_id} ({cell.flag()})")
        for learner in report.imitation_learners:
            mine = {b: where for (lr, b), where in cells.items() if lr == learner}
            every = [
                (env, b)
                for env in report.imitation
                if report.is_learned(env)
                for b, by in report.imitation[env].items()
                if learner in by
            ]
            if mine and sum(map(len, mine.values())) == len(every):
                flags = Counter(report.imitation[e][b][learner].flag() for e, b in every)
                runs = ", ".join(f"{k} cells {f}" if k > 1 else f for f, k in flags.items())
                out.append(f"  - {_code(learner)}: every cell ({runs})")
                continue
            for budget, where in sorted(mine.items()):
                out.append(f"  - {_code(learner)} at {fraction(budget)}: {', '.join(where)}")
        if not cells:
            out.append("  - none (those runs are all in settings not learned)")
    return out or ["- Nothing: every setting learned, every run converged."]


def _aggregate_table(
    report: Report, aggregate: list[AggregateRow], improvement: list[ImprovementRow]
) -> list[str]:
    out = []
    if aggregate:
        budgets = sorted({r.budget for r in aggregate})
        learners = [
            lr for lr in report.imitation_learners if any(r.learner == lr for r in aggregate)
        ]
        by = {(r.budget, r.learner): r for r in aggregate}
        rows = []
        for b in budgets:
            some = next(r for r in aggregate if r.budget == b)
            cells = []
            for lr in learners:
                row = by.get((b, lr))
                if row is None:
                    cells.append("-")
                else:
                    runs = "" if row.iqm.point_only else f" ({row.iqm.n} runs)"
                    cells.append(row.iqm.text() + runs)
            rows.append([fraction(b), str(len(some.tasks))] + cells)
        out += _table(["budget", "settings"] + learners, rows)
        out += [
            "",
            "IQM of test success over settings x runs, with 95% stratified bootstrap CIs "
            "(rliable). Per budget, only settings where every learner has runs are used; each "
            "learner is truncated to its smallest seed count over them (lowest seeds kept).",
            "",
        ]
        for b in budgets:
            tasks = next(r.tasks for r in aggregate if r.budget == b)
            missing = sorted(set(report.imitation) - set(tasks))
            if missing:
                out.append(f"- budget {fraction(b)}: left out {', '.join(missing)}")
        out.append("")
    if improvement:
        base = report.baseline
        rows = [
            [r.learner, fraction(r.budget), str(len(r.tasks)), r.probability.text()]
            for r in improvement
        ]
        out += [f"Probability of improvement over {base}:", ""]
        out += _table(["learner", "budget", "settings", f"P(learner > {base}) [95% CI]"], rows)
        out += [
            "",
            "0.5 means no difference; rliable, averaged over the settings where both ran.",
            "",
        ]
    return out


def _headline(report: Report) -> list[str]:
    base = report.baseline
    if base is None or not report.compared:
        why = "no baseline with runs" if base is None else "no learner to compare with it"
        return ["## Headline", "", f"No headline: {why}.", ""]
    compared = ", ".join(_code(lr) for lr in report.compared)
    out = [f"## Headline: {compared} vs {_code(base)}", ""]
    out += [
        f"Counted: the cells (setting, budget, learner) whose runs all *converged* (early "
        f"stopping ended training, not the update cap) in the settings {base} *learned* "
        f"({base} at its largest budget beats the random policy on the same test instances: "
        "paired by seed, the 95% bootstrap CI of the difference above 0). Left out, and why:",
        "",
    ]
    out += _left_out(report) + [""]
    out += ["### Aggregate over settings (headline cells)", ""]
    agg = _aggregate_table(report, report.headline_aggregate, report.headline_improvement)
    out += agg or [
        "Nothing to aggregate: no budget has a learned setting in which every learner's "
        "cell converged.",
        "",
    ]
    out += _baseline_everywhere(report)
    out += [f"### Expert-data saving over {base}", ""]
    rows = []
    for env_id in sorted(report.imitation):
        for learner in report.compared:
            s = report.savings[learner][env_id]
            rows.append(
                [
                    env_id,
                    s.baseline_full.text() if s.baseline_full else "-",
                    learner,
                    ", ".join(f"{fraction(b)}: {m:.2f}" for b, m in s.means.items()) or "-",
                    s.text(),
                ]
            )
    out += _table(["setting", f"{base} @ 1", "learner", "mean by budget", "saving"], rows)
    out += [
        "",
        "The saving is the smallest budget at which the learner's mean success reaches "
        f"{base}'s full-data mean (means compared; see the paired differences and their MDE "
        "below before trusting a close call). Left out where a cell it reads does not count.",
        "",
    ]
    return out


def _baseline_everywhere(report: Report) -> list[str]:
    """The baseline's IQM over every setting it ran, where that is more than the
    comparison's settings (a profile with a focus)."""
    compared = {r.budget: len(r.tasks) for r in report.aggregate}
    wider = [r for r in report.baseline_aggregate if len(r.tasks) > compared.get(r.budget, 0)]
    if not wider:
        return []
    base = report.baseline
    learned = {env for env, row in report.learned.items() if row.learned}
    rows = [
        [
            fraction(r.budget),
            str(len(r.tasks)),
            f"{r.iqm.text()} ({r.iqm.n} runs)",
            f"{len(learned & set(r.tasks))} of {len(r.tasks)}",
        ]
        for r in wider
    ]
    out = [f"### {_code(base)} on every setting", ""]
    out += _table(["budget", "settings", f"IQM of {base} [95% CI]", "learned"], rows)
    out += [
        "",
        f"{base} ran on more settings than the comparison (the profile's focus): its IQM of "
        "test success over all of them, every cell counted, learned or not (rliable, "
        "stratified bootstrap).",
        "",
    ]
    return out


def _aggregate(report: Report) -> list[str]:
    out = ["## Aggregate over every cell (diagnostic, not a claim)", ""]
    same = (report.headline_aggregate, report.headline_improvement) == (
        report.aggregate,
        report.improvement,
    )
    if report.baseline is not None and report.compared and same:
        return out + ["Same as the headline: no cell was left out of it.", ""]
    out += [
        "The same statistics over every cell, settings not learned and runs that hit their "
        "update cap included: what ran, not a result.",
        "",
    ]
    table = _aggregate_table(report, report.aggregate, report.improvement)
    return out + (table or ["No setting has runs of every learner at any budget.", ""])


def _per_setting(report: Report, usual: int) -> list[str]:
    out = ["## Per setting", ""]
    for env_id in sorted(report.imitation):
        out += [f"### {env_id}", ""]
        if env_id in report.reference:
            rand, expert = report.reference[env_id]
            out += [
                f"Random policy {rand:.2f}, expert {expert:.2f} on the same test instances.",
                "",
            ]
        if env_id in report.learned:
            learned = report.learned[env_id]
            out += [f"{_code(learned.learner)} vs the random policy: {learned.text()}.", ""]
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
                if cell.flag():
                    text += f" {cell.flag()}"
                row.append(text)
            rows.append(row)
        out += _table(["budget"] + learners, rows) + [""]
        out += _paired_table(report, env_id)
    cells = [c for env in report.imitation.values() for b in env.values() for c in b.values()]
    if any(c.flag() for c in cells):
        out += [
            "`capped k/n`: k of the cell's n runs ran to their update cap (in any training "
            "stage) instead of being stopped early; `stop unknown k/n`: the results rows cannot "
            "tell (they hold only the total updates of a learner that trains in several "
            "stages). Such cells are kept out of the headline.",
            "",
        ]
    if not report.paired:
        return out
    out += [
        f"Paired differences: the learner minus {report.baseline} over the seeds both ran, "
        "mean with a 95% bootstrap CI. MDE: the smallest true difference a two-sided paired "
        f"t-test at alpha={ALPHA} would detect with {POWER:.0%} power, "
        "(t(1-alpha/2, n-1) + t(power, n-1)) x sd / sqrt(n), from the larger of the paired "
        "differences' observed SD and the SD test-episode sampling alone gives a difference "
        "(binomial, over each run's test episodes); n/a with one pair. A difference smaller "
        "than its MDE is one this design could well have missed.",
        "",
    ]
    return out


def _paired_table(report: Report, env_id: str) -> list[str]:
    rows_of = [r for r in report.paired if r.env_id == env_id]
    if not rows_of:
        return []
    learners = [lr for lr in report.compared if any(r.learner == lr for r in rows_of)]
    by = {(r.budget, r.learner): r for r in rows_of}
    header = ["budget"]
    for lr in learners:
        header += [f"{lr} - {report.baseline} [95% CI]", "MDE"]
    rows = []
    for budget in sorted({r.budget for r in rows_of}):
        row = [fraction(budget)]
        for lr in learners:
            r = by.get((budget, lr))
            if r is None:
                row += ["-", "-"]
                continue
            d = r.paired.difference
            row += [
                d.text(signed=True) + ("" if d.point_only else f" (n={d.n})"),
                r.paired.mde_text(),
            ]
        rows.append(row)
    return [f"Paired differences vs {report.baseline}:", ""] + _table(header, rows) + [""]


def _rl(report: Report) -> list[str]:
    out = ["## RL: warm starts vs scratch", ""]
    if not report.rl:
        return out + ["No RL runs.", ""]
    out += [f"![RL curves]({RL_CURVES_PNG})", ""]
    learners = [lr for lr in report.rl_learners if any(lr in c.final for c in report.rl)]
    starts = [
        f"{_code(lr)} from {_code(init)}" for lr, init in report.rl_init.items() if init is not None
    ]
    if starts:
        out += [f"Warm starts: {', '.join(starts)}.", ""]
    rows = []
    for c in report.rl:
        init = "-" if c.init_budget is None else fraction(c.init_budget)
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
        "bootstrap CI over seeds). Scratch runs stand beside the warm starts of every init "
        "budget. Pretraining demos are not counted in env steps. RL trains for a fixed "
        "number of env steps (no early stopping), so its runs carry no converged flag and "
        "stay out of the headline.",
        "",
    ]
    return out


def render(report: Report) -> str:
    """The report as Markdown, the plots linked by relative path."""
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
        out += _headline(report) + _aggregate(report) + _per_setting(report, usual)
    else:
        out += ["No imitation runs.", ""]
    out += _rl(report)
    return "\n".join(out)
