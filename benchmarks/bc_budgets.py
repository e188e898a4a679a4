"""BC test-split success at several demonstration budgets and seeds, beside random and expert.

    python -m benchmarks.bc_budgets --env earlyexp/Household-v0 --demos 25 50 100 200 --seeds 0 1 2

Collects one demo file of the largest budget (budgets are nested prefixes of it), trains BC
per (budget, seed), evaluates each agent on the same test instances, and prints a Markdown
table of mean and standard deviation over seeds. Runs one after another: each training
already uses both cores of a laptop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from envs import resolve_id
from learners.data import collect_demos
from learners.evaluate import RandomPolicy, evaluate, evaluate_expert
from learners.imitation import BCConfig, train_bc


def main() -> None:
    """Run the budget x seed grid and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="earlyexp/Household-v0")
    parser.add_argument("--demos", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--out", default="results/bc_budgets")
    args = parser.parse_args()
    env_id = resolve_id(args.env)
    out = Path(args.out)
    demos = out / "demos.jsonl"
    collect_demos(env_id, max(args.demos), demos)

    rows = []
    for n in args.demos:
        for seed in args.seeds:
            start = time.perf_counter()
            config = BCConfig(
                env_id=env_id,
                demos=str(demos),
                out=str(out / f"bc_{n}_{seed}"),
                seed=seed,
                episodes=n,
                eval_episodes=args.eval_episodes,
                log_dir=str(out / "runs"),
                progress=False,
            )
            metrics = train_bc(config)
            row = {
                "demos": n,
                "seed": seed,
                "greedy": metrics["eval"]["greedy"]["success_rate"],
                "sampled": metrics["eval"]["sampled"]["success_rate"],
                "updates": metrics["updates"],
                "val_accuracy": metrics["val_accuracy"],
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    random = evaluate(RandomPolicy(0), env_id, episodes=args.eval_episodes).success_rate
    expert = evaluate_expert(env_id, episodes=args.eval_episodes).success_rate
    print(f"\n{env_id}, test split, {args.eval_episodes} episodes, seeds {args.seeds}")
    print("| demos | BC greedy | BC sampled | updates | random | expert |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.demos:
        mine = [r for r in rows if r["demos"] == n]
        greedy = np.array([r["greedy"] for r in mine])
        sampled = np.array([r["sampled"] for r in mine])
        updates = np.mean([r["updates"] for r in mine])
        print(
            f"| {n} | {greedy.mean():.3f} ± {greedy.std():.3f} | "
            f"{sampled.mean():.3f} ± {sampled.std():.3f} | {updates:.0f} | {random:.3f} | {expert:.3f} |"
        )


if __name__ == "__main__":
    main()
