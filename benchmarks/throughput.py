"""Throughput of the registered envs under a random admissible policy.

Usage::

    python -m benchmarks.throughput [--envs ID ...] [--steps N] [--repeats R] [--seed S]

For each env id it measures steps per second twice: on ``env.unwrapped`` (the env's own
step path, with the registered step cap applied by the loop) and on the env returned by
``envs.make`` (with Gymnasium's wrappers). Each figure is the median over repeats; resets at
episode ends are part of the timed loop, as they are in any real rollout.

Settings on a third-party engine (Minigrid, TextWorld) are also measured against the raw
engine on the same instances (:data:`ENGINE_BASELINES`): the adapter's overhead is its time
per step over the raw engine's. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

import envs
from envs import minigrid_adapter, textworld_games


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
    env_id: str,
    steps: int = 20_000,
    repeats: int = 5,
    seed: int = 0,
    split: str = "train",
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Median steps/s of ``env_id`` with a random admissible policy, unwrapped and wrapped.

    Returns ``{"env_id", "split", "steps", "repeats", "unwrapped_sps", "wrapped_sps",
    "unwrapped_runs", "wrapped_runs"}`` (``*_runs``: steps/s of each repeat).
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be positive, got {steps} and {repeats}")
    wrapped = envs.make(env_id, split=split, **(env_kwargs or {}))
    bare = envs.make(env_id, split=split, **(env_kwargs or {})).unwrapped
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


@dataclass(frozen=True)
class EngineBaseline:
    """The raw engine a setting adapts, and the adapter kwargs that play the same instances."""

    engine: str
    raw_steps_per_second: Callable[[int, int], float]  # (steps, seed) -> steps/s
    adapter_kwargs: dict[str, Any]


def _minigrid(level: str, minigrid_id: str) -> EngineBaseline:
    return EngineBaseline(
        f"Minigrid {minigrid_id}",
        lambda steps, seed: minigrid_adapter.raw_steps_per_second(minigrid_id, steps, seed),
        {"levels": (level,)},
    )


def _textworld(challenge: str) -> EngineBaseline:
    return EngineBaseline(
        f"TextWorld {challenge} (.z8, textworld.start)",
        lambda steps, seed: textworld_games.raw_steps_per_second(challenge, "train", steps, seed),
        {},
    )


#: Settings on a third-party engine -> the raw engine measured beside the adapter.
ENGINE_BASELINES: dict[str, EngineBaseline] = {
    "earlyexp/BabyAI-v0": _minigrid("GoToLocal", "BabyAI-GoToLocal-v0"),
    "earlyexp/DoorKey-v0": _minigrid("DoorKey-6x6", "MiniGrid-DoorKey-6x6-v0"),
    "earlyexp/Cooking-v0": _textworld("tw-cooking"),
    "earlyexp/TreasureHunter-v0": _textworld("tw-treasure_hunter"),
}


def measure_engine_overhead(
    env_id: str, steps: int = 5_000, repeats: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Median steps/s of the raw engine and of the adapter (unwrapped) on the same
    instances, interleaved per repeat, and the adapter's overhead in time per step."""
    baseline = ENGINE_BASELINES[env_id]
    adapter = envs.make(env_id, **baseline.adapter_kwargs)
    cap = adapter.spec.max_episode_steps if adapter.spec is not None else None
    raw_runs, adapter_runs = [], []
    try:
        for i in range(repeats):
            raw_runs.append(baseline.raw_steps_per_second(steps, seed + i))
            adapter_runs.append(_random_rollout(adapter.unwrapped, steps, seed + i, cap))
    finally:
        adapter.close()
    raw, adapted = statistics.median(raw_runs), statistics.median(adapter_runs)
    return {
        "env_id": env_id,
        "engine": baseline.engine,
        "raw_sps": raw,
        "adapter_sps": adapted,
        "overhead": raw / adapted - 1.0,
        "raw_runs": raw_runs,
        "adapter_runs": adapter_runs,
    }


def engine_table(results: list[dict[str, Any]]) -> str:
    """One Markdown row per result of :func:`measure_engine_overhead`."""
    lines = [
        "| env | raw engine (same instances) | raw steps/s | adapter steps/s | overhead |",
        "|---|---|---:|---:|---:|",
    ]
    for res in results:
        lines.append(
            f"| {res['env_id']} | {res['engine']} | {res['raw_sps']:,.0f} | "
            f"{res['adapter_sps']:,.0f} | {res['overhead']:+.0%} |"
        )
    return "\n".join(lines)


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
    results, engines = [], []
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
        if env_id in ENGINE_BASELINES:
            engines.append(measure_engine_overhead(env_id, args.steps, args.repeats, args.seed))
    print(markdown_table(results))
    if engines:
        print()
        print(engine_table(engines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
