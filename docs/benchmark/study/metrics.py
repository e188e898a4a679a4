"""What the study's runs recorded beyond success: each run's ``metrics.json`` (the learner's
own record), collected and summarised per arm and budget.

- the world model's token F1 on validation transitions after its own stage (``wm_val_f1``)
  and after the policy stage that follows (``wm_final_val_f1``), beside the copy baseline
  (predicting that nothing changes, ``wm_copy_f1``);
- the cost per update, as the study ran (two runs at a time on the 2-core CPU, so every arm
  shared the cores alike): the policy stage's seconds per update (batch / samples per
  second, validation included) and the world-model stage's (its seconds / its updates),
  each as a ratio to ``bc``'s policy stage.

``metrics.jsonl`` (written into OUT_DIR) keeps them: one line per run,
``{"hash": ..., "metrics": ...}``, for every run whose results row has them (the sweep
records them from 2026-12-01 on) or whose directory is still on disk.

Run: ``python docs/benchmark/study/metrics.py RESULTS_DIR [OUT_DIR]`` (the sweep's ``--out``
directory; OUT_DIR default: this file's directory).
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.results import RESULTS_FILE, read_results


def collect(results_dir: Path, kept: dict[str, dict] | None = None) -> list[dict]:
    """Each results row's run metrics: the row's own (``metrics``, rows written from
    2026-12-01 on), else its run directory's ``runs/<hash>/metrics.json`` if still on disk,
    else the record ``kept`` from an earlier collection (run directories do not outlive the
    machine that ran them)."""
    kept = kept or {}
    collected = []
    for row in read_results(results_dir / RESULTS_FILE).rows:
        metrics = row.get("metrics")
        path = results_dir / "runs" / row["hash"] / "metrics.json"
        if metrics is None and path.exists():
            metrics = json.loads(path.read_text())
            metrics.pop("eval", None)
        if metrics is None:
            metrics = kept.get(row["hash"])
        if metrics is not None:
            collected.append({"hash": row["hash"], "row": row, "metrics": metrics})
    return collected


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else ""


def summary(runs: list[dict]) -> str:
    """A Markdown table per setting: arm x budget, medians over the runs collected."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        row = run["row"]
        cells[(row["env_id"], row["learner"], row["budget"])].append(run)
    lines = []
    for env_id in sorted({env for env, _, _ in cells}):
        lines += [
            f"### {env_id}",
            "",
            "| arm | budget | runs | WM F1 after WM stage | after policy stage | copy F1 "
            "| policy s/update (x bc) | WM s/update (x bc) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, learner, budget in sorted(key for key in cells if key[0] == env_id):
            group = [run["metrics"] for run in cells[(env_id, learner, budget)]]
            bc = [_policy_seconds_per_update(run) for run in cells.get((env_id, "bc", budget), [])]
            policy = [_policy_seconds_per_update(run) for run in cells[(env_id, learner, budget)]]
            wm = [m["wm_seconds"] / m["wm_updates"] for m in group if m.get("wm_updates")]
            lines.append(
                f"| {learner} | {budget} | {len(group)} "
                f"| {_median([m['wm_val_f1'] for m in group if 'wm_val_f1' in m])} "
                f"| {_median([m['wm_final_val_f1'] for m in group if 'wm_final_val_f1' in m])} "
                f"| {_median([m['wm_final_copy_f1'] for m in group if 'wm_final_copy_f1' in m])} "
                f"| {_cost(policy, bc)} | {_cost(wm, bc)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _policy_seconds_per_update(run: dict) -> float:
    return run["row"]["config"]["config"]["batch_size"] / run["metrics"]["samples_per_second"]


def _cost(seconds: list[float], bc: list[float]) -> str:
    """Median seconds per update, with its ratio to bc's policy stage when bc ran."""
    if not seconds:
        return ""
    median = statistics.median(seconds)
    return f"{median:.3f}" + (f" ({median / statistics.median(bc):.1f}x)" if bc else "")


def main(results_dir: Path, out_dir: Path) -> None:
    """Write ``metrics.jsonl`` into ``out_dir`` (keeping the records it already holds) and
    print the summary."""
    path = out_dir / "metrics.jsonl"
    kept = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            kept[record["hash"]] = record["metrics"]
    runs = collect(results_dir, kept)
    partial = path.with_suffix(".jsonl.partial")
    with partial.open("w") as f:
        for run in runs:
            f.write(json.dumps({"hash": run["hash"], "metrics": run["metrics"]}) + "\n")
    partial.replace(path)
    print(summary(runs))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent)
