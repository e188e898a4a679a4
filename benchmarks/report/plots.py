"""The report's two PNG plots: data efficiency (success vs demo budget) and RL curves."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.report.build import Report, fraction
from benchmarks.report.stats import Estimate


def _save_png(fig: Any, path: Path) -> None:
    # Imported here: agents pulls in torch (~1 s), which the statistics alone do not need.
    from agents.files import atomic_write

    with atomic_write(path, "wb") as f:  # never a half-written PNG
        fig.savefig(f, format="png", dpi=110)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def _legend_label(name: str) -> str:
    # Learner names are the user's strings: matplotlib hides labels starting with '_' from
    # legends and reads '$...$' as math, so neither may reach it as is.
    name = name.replace("$", r"\$")
    return " " + name if name.startswith("_") else name


def _legend_space(fig: Any, entries: int, per_row: int) -> float:
    # The figure fraction the legend's rows take below the panels, ~0.3 inch a row.
    if not entries:
        return 0.0
    rows = math.ceil(entries / per_row)
    return min(0.5, (0.3 + 0.28 * rows) / fig.get_figheight())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend_handles(axes: Any) -> dict[str, Any]:
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    return handles


def plot_data_efficiency(report: Report, path: Path) -> None:
    """Success vs budget: one panel per setting plus the aggregate IQM, CI bands per learner."""
    plt = _pyplot()
    envs = sorted(report.imitation)
    nrows, ncols = _grid(len(envs) + 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    colors = {lr: f"C{i}" for i, lr in enumerate(report.imitation_learners)}

    def draw(ax: Any, points: dict[str, list[tuple[float, Estimate]]], title: str) -> None:
        for learner, pts in points.items():
            pts.sort()
            xs = [b for b, _ in pts]
            ax.plot(
                xs,
                [e.mean for _, e in pts],
                "o-",
                color=colors[learner],
                label=_legend_label(learner),
            )
            ax.fill_between(
                xs,
                [e.low for _, e in pts],
                [e.high for _, e in pts],
                color=colors[learner],
                alpha=0.2,
            )
        ax.set_xscale("log", base=2)
        ticks = sorted({b for pts in points.values() for b, _ in pts})
        ax.set_xticks(ticks, [fraction(b) for b in ticks])
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
    handles = _legend_handles(axes)
    names = [_legend_label(lr) for lr in report.imitation_learners if _legend_label(lr) in handles]
    if names:
        fig.legend([handles[n] for n in names], names, loc="lower center", ncol=min(len(names), 5))
    fig.tight_layout(rect=(0, _legend_space(fig, len(names), 5), 1, 1))
    _save_png(fig, path)
    plt.close(fig)


def plot_rl_curves(report: Report, path: Path) -> None:
    """Success vs env steps: one panel per setting, one line (with CI band) per RL learner."""
    plt = _pyplot()
    envs = sorted({c.env_id for c in report.rl_curves})
    nrows, ncols = _grid(max(len(envs), 1))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    labels = list(dict.fromkeys(c.label for c in report.rl_curves))  # in display order
    colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
    for ax, env_id in zip(axes.flat, envs, strict=False):
        for curve in (c for c in report.rl_curves if c.env_id == env_id):
            color = colors[curve.label]
            ax.plot(curve.steps, curve.mean, color=color, label=_legend_label(curve.label))
            ax.fill_between(curve.steps, curve.low, curve.high, color=color, alpha=0.2)
        ax.set_title(env_id.split("/")[-1], fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("test success")
        ax.set_ylim(-0.03, 1.03)
    if not envs:
        axes.flat[0].text(0.5, 0.5, "no RL runs", ha="center", va="center")
        axes.flat[0].axis("off")
    for ax in list(axes.flat)[max(len(envs), 1) :]:
        ax.axis("off")
    handles = _legend_handles(axes)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 4))
    fig.tight_layout(rect=(0, _legend_space(fig, len(handles), 4), 1, 1))
    _save_png(fig, path)
    plt.close(fig)
