"""Peak memory (max RSS) of each run of a benchmark profile, and the largest of them.

Usage::

    python -m benchmarks.memory [--profile quick] [--envs ID ...] [--learners NAME ...]
        [--budget 1.0] [--seed 0] [--work DIR] [--out FILE]

It prepares each setting's data exactly as the sweep does (:func:`benchmarks.sweep.prepare`:
demos, and early-experience rollouts when an IWM learner is selected, under ``WORK/data``),
then runs one spec per (setting, learner): every imitation learner at ``--budget`` (default:
the profile's largest budget, the most data) and every RL learner of the selection, at seed
0. Each run executes :func:`benchmarks.sweep.run` alone in a fresh ``spawn`` child process,
which reports its own peak resident set size when the run ends: ``VmHWM`` of
``/proc/self/status`` on Linux, the high-water mark of the process image since its
``exec``. (Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the pre-``exec``
high-water mark over, so a spawned child's ``ru_maxrss`` is at least the parent's RSS at
the fork; it is kept in the JSON as ``ru_maxrss_mib``, and used where there is no
``/proc``.) The peak includes the interpreter and the imports. A child that only imports the
project (torch, the envs, the learners) and does nothing gives the baseline, so the table
also shows what each run's data and model add on top of it. RL warm starts need the BC or
IWM checkpoint at the profile's ``rl_budget``: when that is not ``--budget`` those source
runs are run (and measured) too, and listed with their budget.

Runs are measured one after another, so the wall times are those of a run alone (they
include the child's start-up and imports). Prints a Markdown table (setting, learner,
budget, peak RSS, over baseline, wall time), then the largest run and whether its peak is
under 4 GiB; ``--out`` gets the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agents.files import atomic_write
from benchmarks.results import config_hash
from benchmarks.sweep import (
    PROFILES,
    Profile,
    RunContext,
    check_selection,
    prepare_all,
    run,
    run_spec,
    versions,
)
from envs.progress import progress_bar
from learners import get_learner

#: The limit the largest run is checked against (4 GiB).
LIMIT_BYTES = 4 * 1024**3
_MIB = 1024**2


def memory_plan(
    profile: Profile, env_ids: list[str], learners: list[str], budget: float, seed: int = 0
) -> list[dict]:
    """The specs to measure, in an order that runs each warm start's source before it.

    Per setting: each selected imitation learner that runs there (a profile's ``focus``)
    at ``budget``, the BC/IWM runs the selected warm starts need at ``profile.rl_budget``
    (when that is another budget), then the RL learners.
    """
    check_selection(profile, learners)
    on_demos = [name for name in learners if get_learner(name).needs_demos]
    on_env = [name for name in learners if not get_learner(name).needs_demos]
    specs: list[dict] = []
    for env_id in env_ids:
        # A profile's focus: outside it only the baseline runs (Profile.learners_at).
        here = profile.learners_at(env_id, on_demos)
        specs += [run_spec(profile, env_id, name, seed, budget) for name in here]
        hashes = {config_hash(spec) for spec in specs}
        rl_here = profile.learners_at(env_id, on_env)
        sources = [get_learner(name).warm_start for name in rl_here]
        for name in dict.fromkeys(source for source in sources if source is not None):
            source = run_spec(profile, env_id, name, seed, profile.rl_budget)
            if config_hash(source) not in hashes:
                specs.append(source)
        specs += [run_spec(profile, env_id, name, seed) for name in rl_here]
    return specs


def peak_rss_kib() -> tuple[int, str]:
    """This process's peak RSS in KiB, and where it was read (``VmHWM`` or ``ru_maxrss``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"  # "VmHWM:  123456 kB"
    except OSError:
        pass
    return _maxrss_kib(resource.RUSAGE_SELF), "ru_maxrss"


def _maxrss_kib(who: int) -> int:
    maxrss = resource.getrusage(who).ru_maxrss
    return maxrss // 1024 if sys.platform == "darwin" else maxrss  # macOS: bytes, Linux: KiB


def _child(spec: dict | None, context: RunContext | None, conn: Connection) -> None:
    """In a fresh process: run ``spec`` (or nothing: the baseline) and send back the peak."""
    start = time.perf_counter()
    report: dict[str, Any] = {"error": None}
    try:
        if spec is not None and context is not None:
            row = run(spec, context)
            report.update(success=row["success"], run_s=row["seconds"])
    except BaseException as exc:  # report it with the peak reached so far
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
    peak, source = peak_rss_kib()
    report.update(
        process_s=time.perf_counter() - start,
        peak_kib=peak,
        peak_source=source,
        ru_maxrss_kib=_maxrss_kib(resource.RUSAGE_SELF),
        # a run starts no processes of its own; a grandchild's peak would show here
        children_peak_kib=_maxrss_kib(resource.RUSAGE_CHILDREN),
    )
    conn.send(report)
    conn.close()


def measure_child(spec: dict | None = None, context: RunContext | None = None) -> dict[str, Any]:
    """Run ``spec`` alone in a fresh spawned process and return its peak RSS and times.

    Without a spec the child only imports the project (the baseline). Returns
    ``{"peak_mib", "peak_source", "ru_maxrss_mib", "children_peak_mib", "wall_s",
    "process_s", "run_s", "success", "error", "traceback", "exitcode"}``; ``wall_s`` is the
    child's whole life as the parent saw it (start-up, imports and the run).
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(spec, context, send), daemon=True)
    start = time.perf_counter()
    process.start()
    send.close()
    try:
        report = receive.recv()
    except EOFError:  # killed (e.g. by the OOM killer) before it could report
        report = {"error": "the child died without reporting", "peak_kib": None}
    finally:
        receive.close()
        process.join()
    wall = time.perf_counter() - start
    if report["error"] is None and process.exitcode != 0:
        report["error"] = f"the child exited with code {process.exitcode}"
    kib = report.pop("peak_kib")
    children = report.pop("children_peak_kib", 0)
    return {
        "peak_mib": None if kib is None else kib / 1024,
        "peak_source": report.get("peak_source"),
        "ru_maxrss_mib": report.get("ru_maxrss_kib", 0) / 1024,
        "children_peak_mib": children / 1024,
        "wall_s": wall,
        "process_s": report.get("process_s"),
        "run_s": report.get("run_s"),
        "success": report.get("success"),
        "error": report["error"],
        "traceback": report.get("traceback"),
        "exitcode": process.exitcode,
    }


def measure(
    profile: Profile,
    work_dir: str | Path,
    *,
    env_ids: list[str] | None = None,
    learners: list[str] | None = None,
    budget: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare the data in ``work_dir`` and measure the baseline and every planned run.

    Returns ``{"profile", "budget", "seed", "baseline_mib", "rows", "largest", "limit_mib",
    "under_limit", "versions"}``; each row names the setting, learner, kind, budget (the
    run's data budget, or the budget an RL warm start was trained at), the config hash and
    the figures of :func:`measure_child`. ``largest`` is the row with the highest peak
    among the runs that succeeded (``None`` if none did).
    """
    budget = max(profile.budgets) if budget is None else budget
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget}")
    learners = list(learners or profile.learners)
    check_selection(profile, learners)
    context = prepare_all(profile, Path(work_dir), env_ids or profile.settings, learners, progress)
    specs = memory_plan(profile, list(context.expert_success), learners, budget, seed)

    rows: list[dict[str, Any]] = []
    with progress_bar(
        total=len(specs) + 1, desc=f"memory {profile.name}", unit="run", disable=not progress
    ) as bar:
        bar.set_postfix_str("baseline (imports only)")
        baseline = measure_child()
        if baseline["error"] is not None:
            raise RuntimeError(f"the baseline child failed: {baseline['error']}")
        bar.update()
        for spec in specs:
            bar.set_postfix_str(f"{spec['env_id']} {spec['learner']}")
            figures = measure_child(spec, context)
            rows.append(
                {
                    "env_id": spec["env_id"],
                    "learner": spec["learner"],
                    "kind": spec["kind"],
                    "budget": spec.get("budget"),
                    "init_budget": spec.get("init_budget"),
                    "seed": spec["seed"],
                    "hash": config_hash(spec),
                    **figures,
                    "over_baseline_mib": None
                    if figures["peak_mib"] is None
                    else figures["peak_mib"] - baseline["peak_mib"],
                }
            )
            bar.update()
    finished = [row for row in rows if row["error"] is None]
    largest = max(finished, key=lambda row: row["peak_mib"], default=None)
    limit_mib = LIMIT_BYTES / _MIB
    return {
        "profile": profile.name,
        "budget": budget,
        "seed": seed,
        "baseline_mib": baseline["peak_mib"],
        "baseline_wall_s": baseline["wall_s"],
        "rows": rows,
        "largest": largest,
        "limit_mib": limit_mib,
        "under_limit": None if largest is None else largest["peak_mib"] < limit_mib,
        "versions": versions(),
    }


def _budget_cell(row: dict[str, Any]) -> str:
    if row["kind"] == "imitation":
        return str(row["budget"])
    return f"init {row['init_budget']}" if row["init_budget"] is not None else "-"


def _name(row: dict[str, Any]) -> str:
    return f"{row['env_id']} {row['learner']} (budget {_budget_cell(row)}, seed {row['seed']})"


def markdown_table(result: dict[str, Any]) -> str:
    """The rows of :func:`measure` as a Markdown table, then the baseline and the largest run."""
    lines = [
        "| setting | learner | budget | peak RSS (MiB) | over baseline (MiB) | wall (s) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        cells = f"| {row['env_id']} | {row['learner']} | {_budget_cell(row)} |"
        if row["error"] is not None:
            peak = "" if row["peak_mib"] is None else f" (peak {row['peak_mib']:,.0f} MiB)"
            lines.append(f"{cells} failed: {row['error']}{peak} | | {row['wall_s']:.1f} |")
        else:
            lines.append(
                f"{cells} {row['peak_mib']:,.0f} | {row['over_baseline_mib']:+,.0f} | "
                f"{row['wall_s']:.1f} |"
            )
    lines += [
        "",
        f"Baseline (a child that only imports the project): {result['baseline_mib']:,.0f} MiB.",
    ]
    largest = result["largest"]
    if largest is None:
        lines.append("Largest run: none finished.")
    else:
        verdict = "yes" if result["under_limit"] else "NO"
        lines.append(
            f"Largest run: {_name(largest)}: peak RSS {largest['peak_mib']:,.0f} MiB "
            f"({largest['peak_mib'] / 1024:.2f} GiB); under 4 GiB: {verdict}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.memory``: measure, print the table, write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    parser.add_argument(
        "--envs", nargs="+", default=None, help="env ids (default: the profile's settings)"
    )
    parser.add_argument(
        "--learners",
        nargs="+",
        default=None,
        help="default: the profile's",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="data budget of the imitation runs (default: the profile's largest, 1.0)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work",
        default=None,
        help="directory for the demos, rollouts and run checkpoints (default: a temporary "
        "one, deleted at the end)",
    )
    parser.add_argument("--out", default=None, help="write the rows as JSON to this file")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    with tempfile.TemporaryDirectory(prefix="earlyexp-memory-") as tmp:
        result = measure(
            profile,
            args.work or tmp,
            env_ids=args.envs,
            learners=args.learners,
            budget=args.budget,
            seed=args.seed,
        )
    print(markdown_table(result))
    if args.out:
        with atomic_write(args.out) as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"\nwrote {args.out}")
    failed = any(row["error"] is not None for row in result["rows"])
    return 1 if failed or not result["under_limit"] else 0


if __name__ == "__main__":
    sys.exit(main())
