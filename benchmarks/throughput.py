"""Throughput of the registered envs under a random admissible policy.

Usage::

    python -m benchmarks.throughput [--envs ID ...] [--steps N] [--repeats R] [--seed S]

For each env id it measures steps per second twice: on ``env.unwrapped`` (the env's own
step path, with the registered step cap applied by the loop) and on the env returned by
``envs.make`` (with Gymnasium's wrappers). Each figure is the median over repeats; resets at
episode ends are part of the timed loop, as they are in any real rollout. Prints one
Markdown table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

import gymnasium as gym

import envs


def _random_rollout(env: gym.Env, steps: int, seed: int, cap: int | None) -> float:
    """Steps per second of ``steps`` random admissible commands (seeded), resetting at ends.

    ``cap`` truncates episodes by hand, for an unwrapped env that never truncates itself.
    """
    rng = random.Random(seed)
    _, info = env.reset(seed=seed)
    t = 0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(rng.choice(info["admissible_actions"]))
        t += 1
        if terminated or truncated or (cap is not None and t >= cap):
            _, info = env.reset()
            t = 0
    return steps / (time.perf_counter() - start)


def measure_env_steps(
    env_id: str, steps: int = 20_000, repeats: int = 5, seed: int = 0, split: str = "train"
) -> dict[str, Any]:
    """Median steps/s of ``env_id`` with a random admissible policy, unwrapped and wrapped.

    Returns ``{"env_id", "split", "steps", "repeats", "unwrapped_sps", "wrapped_sps",
    "unwrapped_runs", "wrapped_runs"}`` (``*_runs``: steps/s of each repeat).
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be positive, got {steps} and {repeats}")
    wrapped = envs.make(env_id, split=split)
    bare = envs.make(env_id, split=split).unwrapped
    cap = wrapped.spec.max_episode_steps if wrapped.spec is not None else None
    runs: dict[str, list[float]] = {"unwrapped": [], "wrapped": []}
    try:
        for i in range(repeats):
            # alternate the two so that drifting machine load affects both alike
            runs["unwrapped"].append(_random_rollout(bare, steps, seed + i, cap))
            runs["wrapped"].append(_random_rollout(wrapped, steps, seed + i, None))
    finally:
        wrapped.close()
        bare.close()
    return {
        "env_id": env_id,
        "split": split,
        "steps": steps,
        "repeats": repeats,
        "unwrapped_sps": statistics.median(runs["unwrapped"]),
        "wrapped_sps": statistics.median(runs["wrapped"]),
        "unwrapped_runs": runs["unwrapped"],
        "wrapped_runs": runs["wrapped"],
    }


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One Markdown table row per result of :func:`measure_env_steps` (or a failure)."""
    lines = [
        "| env | steps/s (unwrapped) | steps/s (wrapped) |",
        "|---|---:|---:|",
    ]
    for res in results:
        if "error" in res:
            lines.append(f"| {res['env_id']} | failed: {res['error']} | |")
        else:
            lines.append(
                f"| {res['env_id']} | {res['unwrapped_sps']:,.0f} | {res['wrapped_sps']:,.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=None, help="env ids (default: all)")
    parser.add_argument("--steps", type=int, default=20_000, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the median is shown")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first repeat")
    parser.add_argument("--split", default="train", choices=envs.SPLITS)
    args = parser.parse_args(argv)
    results = []
    failed = False
    for env_id in args.envs or envs.registered_ids():
        try:
            results.append(
                measure_env_steps(env_id, args.steps, args.repeats, args.seed, args.split)
            )
        except Exception as exc:  # one broken env must not hide the others' numbers
            failed = True
            print(f"{env_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            results.append({"env_id": env_id, "error": type(exc).__name__})
    print(markdown_table(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
