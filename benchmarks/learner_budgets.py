"""Test-split success of imitation-family learners at several demo budgets and seeds.

    python -m benchmarks.learner_budgets --env earlyexp/Household-v0 --demos 25 50 100 200 \\
        --seeds 0 1 2 --learners bc iwm-matched iwm-extra dagger --jobs 2

Collects one demo file of the largest budget (budgets are nested prefixes of it) and one
rollout file from it (IWM trains on the rollouts of its budget's episodes), trains every
(learner, budget, seed), evaluates each agent on the same test instances, and prints a
Markdown table of mean ± standard deviation over seeds beside random and expert.

Each finished run appends one line to ``OUT/rows.jsonl``; a restarted invocation skips
the runs already there. ``--jobs N`` runs N trainings at once, one torch thread each (torch
threads oversubscribe the cores when several processes each take all of them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.results import append_result, config_hash, read_results
from envs import resolve_id
from learners.data import collect_demos, load_dataset
from learners.evaluate import RandomPolicy, evaluate, evaluate_expert
from learners.imitation import BCConfig, DAggerConfig, train_bc, train_dagger
from learners.rollouts import collect_rollouts
from learners.world_model import IWMConfig, train_iwm

#: Learner name -> (config type, training function, extra config fields).
LEARNERS: dict[str, tuple[type, Any, dict[str, Any]]] = {
    "bc": (BCConfig, train_bc, {}),
    "dagger": (DAggerConfig, train_dagger, {}),
    "iwm-matched": (IWMConfig, train_iwm, {"budget": "matched"}),
    "iwm-extra": (IWMConfig, train_iwm, {"budget": "extra"}),
    "iwm-next": (IWMConfig, train_iwm, {"budget": "matched", "target": "next"}),
}


def _row_hash(env_id: str, learner: str, demos: int, seed: int) -> str:
    return config_hash({"env_id": env_id, "learner": learner, "demos": demos, "seed": seed})


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (learner, budget, seed); return its table row."""
    torch.set_num_threads(spec.pop("threads"))
    learner, n, seed = spec.pop("learner"), spec["episodes"], spec["seed"]
    config_type, train, extra = LEARNERS[learner]
    if config_type is not IWMConfig:
        spec.pop("rollout_file")
    start = time.perf_counter()
    metrics = train(config_type(**spec, **extra))
    row = {
        "learner": learner,
        "demos": n,
        "seed": seed,
        "greedy": metrics["eval"]["greedy"]["success_rate"],
        "sampled": metrics["eval"]["sampled"]["success_rate"],
        "updates": metrics["updates"],
        "val_accuracy": metrics["val_accuracy"],
        "seconds": time.perf_counter() - start,
    }
    for key in ("wm_val_f1", "wm_copy_f1", "bc_updates"):
        if key in metrics:
            row[key] = metrics[key]
    return row


def main() -> None:
    """Run the learner x budget x seed grid and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="earlyexp/Household-v0")
    parser.add_argument("--demos", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learners", nargs="+", choices=sorted(LEARNERS), default=["bc"])
    parser.add_argument("--k", default="8", help="IWM: alternatives per state ('all' = every)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per training (default: all cores with --jobs 1, else 1)",
    )
    parser.add_argument("--out", default="results/learner_budgets")
    args = parser.parse_args()
    env_id = resolve_id(args.env)
    out = Path(args.out)
    demos, rollouts = out / "demos.jsonl", out / "rollouts.jsonl"
    if not demos.exists():
        collect_demos(env_id, max(args.demos), demos)
    if not rollouts.exists() and any(name.startswith("iwm") for name in args.learners):
        k = None if args.k == "all" else int(args.k)
        collect_rollouts(load_dataset(demos, env_id), demos, rollouts, k=k)

    rows_file = out / "rows.jsonl"
    existing = read_results(rows_file)  # a line torn by a kill is reported and redone
    for problem in existing.problems:
        print(problem, file=sys.stderr)
    rows, done = existing.rows, existing.done()
    specs = [
        {
            "learner": learner,
            "threads": args.threads or (1 if args.jobs > 1 else torch.get_num_threads()),
            "env_id": env_id,
            "demos": str(demos),
            "rollout_file": str(rollouts),
            "out": str(out / f"{learner}_{n}_{seed}"),
            "seed": seed,
            "episodes": n,
            "eval_episodes": args.eval_episodes,
            "log_dir": str(out / "runs"),
            "progress": False,
        }
        for learner in args.learners
        for n in args.demos
        for seed in args.seeds
        if _row_hash(env_id, learner, n, seed) not in done
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        for future in as_completed([pool.submit(run_one, spec) for spec in specs]):
            row = future.result()
            row["hash"] = _row_hash(env_id, row["learner"], row["demos"], row["seed"])
            rows.append(row)
            append_result(rows_file, row)
            print(json.dumps(row), flush=True)

    random = evaluate(RandomPolicy(0), env_id, episodes=args.eval_episodes).success_rate
    expert = evaluate_expert(env_id, episodes=args.eval_episodes).success_rate
    print(f"\n{env_id}, test split, {args.eval_episodes} episodes, seeds {args.seeds}")
    print(f"random {random:.3f}, expert {expert:.3f}; greedy (sampled), mean ± std over seeds\n")
    print("| demos | " + " | ".join(args.learners) + " |")
    print("|---:|" + "---:|" * len(args.learners))
    for n in args.demos:
        cells = []
        for learner in args.learners:
            mine = [r for r in rows if (r["learner"], r["demos"]) == (learner, n)]
            greedy = np.array([r["greedy"] for r in mine])
            sampled = np.array([r["sampled"] for r in mine])
            cells.append(
                f"{greedy.mean():.3f} ± {greedy.std():.3f} ({sampled.mean():.2f})" if mine else "—"
            )
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
