"""The report as Markdown: headline, aggregate, per-setting tables and the RL comparison."""

from __future__ import annotations

from collections import Counter

from benchmarks.report.build import ImitationCell, Report, fraction

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


def _headline(report: Report) -> list[str]:
    base = report.baseline
    if base is None or not report.compared:
        why = "no baseline with runs" if base is None else "no learner to compare with it"
        return ["## Headline: expert-data saving", "", f"No headline: {why}.", ""]
    out = [f"## Headline: expert-data saving over {base}", ""]
    compared = ", ".join(_code(lr) for lr in report.compared)
    out += [f"Baseline {_code(base)}; compared: {compared}.", ""]
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
        f"{base}'s full-data mean (means compared; see the CIs below before trusting a close "
        "call).",
        "",
    ]
    return out


def _aggregate(report: Report) -> list[str]:
    out = ["## Aggregate over settings", ""]
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
            tasks = next(r.tasks for r in report.aggregate if r.budget == b)
            missing = sorted(set(report.imitation) - set(tasks))
            if missing:
                out.append(f"- budget {fraction(b)}: left out {', '.join(missing)}")
        out.append("")
    else:
        out += ["No setting has runs of every learner at any budget.", ""]
    if report.improvement:
        base = report.baseline
        rows = [
            [r.learner, fraction(r.budget), str(len(r.tasks)), r.probability.text()]
            for r in report.improvement
        ]
        out += [f"### Probability of improvement over {base}", ""]
        out += _table(["learner", "budget", "settings", f"P(learner > {base}) [95% CI]"], rows)
        out += [
            "",
            "0.5 means no difference; rliable, averaged over the settings where both ran.",
            "",
        ]
    return out


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
        "budget. Pretraining demos are not counted in env steps.",
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
