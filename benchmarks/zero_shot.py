"""A language model as it is (zero-shot), greedy, on a setting's test instances: ranking the
admissible commands and generating its own, beside the random policy and the expert.

Usage::

    python -m benchmarks.zero_shot [--model smollm2] [--envs ID ...] [--episodes 50]
        [--chunk 5] [--device cpu] [--out docs/benchmark/lm/zero-shot.jsonl]

Episode ``i`` plays test instance ``seed + i`` (the instances every evaluation of the
project uses), so a policy's chunks of episodes add up to one evaluation of all of them.
Each finished chunk (model, setting, policy, first episode) is one JSON line of ``--out``,
appended and fsynced (:mod:`benchmarks.results`): a stopped run resumes where it was, which
is how SmolLM2's several CPU-hours get done. Prints a Markdown table over the chunks done:
success with a 95% Wilson interval (scipy), the valid-action rate (form: a generated command
that is not admissible is a step the env rejects) and the mean episode length.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from agents import GenerationPolicy, LMAgent, LMConfig, resolve_device
from agents.lm import new_lm_agent
from benchmarks.results import append_result, commit, config_hash, read_results
from envs import resolve_id
from learners.evaluate import (
    EVAL_SEED,
    AgentPolicy,
    EvalResult,
    RandomPolicy,
    evaluate,
    evaluate_expert,
)

#: Each setting's policies, in the order they run: the model's two ways of acting first.
POLICIES = ("rank", "generate", "random", "expert")
DEFAULT_ENVS = ("earlyexp/Household-v0", "earlyexp/Shop-v0")


def chunk_key(model: str, env_id: str, policy: str, split: str, first: int, episodes: int) -> str:
    """The results-file hash of one chunk: what it ran, not how long it took."""
    return config_hash(
        {
            "model": model,
            "env_id": env_id,
            "policy": policy,
            "split": split,
            "first": first,
            "episodes": episodes,
        }
    )


def run_chunk(
    agent: LMAgent | None, policy: str, env_id: str, split: str, first: int, episodes: int
) -> EvalResult:
    """Greedy episodes ``first .. first+episodes-1`` of one policy (``agent`` for the model's)."""
    common: dict[str, Any] = dict(split=split, episodes=episodes, seed=first)
    if policy == "expert":
        return evaluate_expert(env_id, **common)
    if policy == "random":
        return evaluate(RandomPolicy(first), env_id, **common)
    if agent is None:
        raise ValueError(f"policy {policy!r} is the model's: pass its agent")
    acting = GenerationPolicy(agent, True, first) if policy == "generate" else None
    return evaluate(acting or AgentPolicy(agent, True, first), env_id, **common)


def run(
    config: LMConfig,
    env_ids: list[str],
    out: Path,
    *,
    episodes: int = 50,
    chunk: int = 5,
    split: str = "test",
    seed: int = EVAL_SEED,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run ``config``'s model (``config.model`` names it in the file) on every chunk of the
    plan (``env_ids`` x ``episodes`` in chunks of ``chunk`` x :data:`POLICIES`) that ``out``
    does not hold yet; return the plan's rows, in order. Rows of another plan in the same
    file (another chunk size) are kept and not counted."""
    if episodes < 1 or chunk < 1:
        raise ValueError(f"episodes and chunk must be at least 1, got {episodes} and {chunk}")
    env_ids = [resolve_id(env_id) for env_id in env_ids]
    model = config.model
    existing = read_results(out)
    for problem in existing.problems:
        print(problem, file=sys.stderr)
    done = {row["hash"]: row for row in existing.rows}
    plan = []
    starts = range(seed, seed + episodes, chunk)
    for env_id in env_ids:
        agent: LMAgent | None = None
        # Chunk by chunk, every policy on the same episodes: a run stopped part-way (this
        # benchmark takes CPU-hours) still compares the policies on the instances it reached.
        for first in starts:
            n = min(chunk, seed + episodes - first)
            for policy in POLICIES:
                key = chunk_key(model, env_id, policy, split, first, n)
                plan.append(key)
                if key in done:
                    continue
                if agent is None and policy in ("rank", "generate"):
                    agent = new_lm_agent(config, seed=0, env_id=env_id)
                    agent.to(resolve_device(device))
                started = time.perf_counter()
                result = run_chunk(agent, policy, env_id, split, first, n)
                steps = round(result.mean_episode_length * n)
                row = {
                    "hash": key,
                    "model": model,
                    "env_id": env_id,
                    "policy": policy,
                    "split": split,
                    "first": first,
                    "episodes": n,
                    "successes": round(result.success_rate * n),
                    "steps": steps,
                    "valid_steps": round(result.valid_action_rate * steps),
                    "seconds": time.perf_counter() - started,
                    "device": device,
                    "commit": commit(),
                }
                append_result(out, row)
                done[key] = row
                if progress:
                    print(
                        f"{env_id} {policy} episodes {first - seed}-{first - seed + n - 1}: "
                        f"{row['successes']}/{n} succeeded, {row['seconds']:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    return [done[key] for key in plan]


def summary(rows: list[dict[str, Any]], model: str) -> str:
    """A Markdown table of ``model``'s rows (one plan's: chunks that do not overlap): per
    setting and policy, the chunks added up."""
    lines = [
        f"| setting | {model} policy | episodes | success [95% Wilson CI] | valid actions | "
        "mean length | s per decision |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    counted = ("episodes", "successes", "steps", "valid_steps", "seconds")
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        if row["model"] == model:
            cell = cells.setdefault((row["env_id"], row["policy"]), dict.fromkeys(counted, 0.0))
            for name in counted:
                cell[name] += row[name]
    order = {policy: i for i, policy in enumerate(POLICIES)}
    for (env_id, policy), c in sorted(cells.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        n, k = int(c["episodes"]), int(c["successes"])
        low, high = binomtest(k, n).proportion_ci(method="wilson")
        per_decision = c["seconds"] / c["steps"] if policy in ("rank", "generate") else None
        lines.append(
            f"| {env_id} | {policy} | {n} | {k / n:.2f} [{low:.2f}, {high:.2f}] | "
            f"{c['valid_steps'] / c['steps']:.2f} | {c['steps'] / n:.1f} | "
            + (f"{per_decision:.2f} |" if per_decision is not None else "- |")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny or a local path")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="setting ids")
    parser.add_argument("--episodes", type=int, default=50, help="test episodes per policy")
    parser.add_argument("--chunk", type=int, default=5, help="episodes per results-file line")
    parser.add_argument("--split", default="test", help="the split the episodes come from")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="the first instance seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/benchmark/lm/zero-shot.jsonl"), help="results"
    )
    args = parser.parse_args(argv)
    try:
        rows = run(
            LMConfig(model=args.model),
            args.envs,
            args.out,
            episodes=args.episodes,
            chunk=args.chunk,
            split=args.split,
            seed=args.seed,
            device=args.device,
        )
    except KeyboardInterrupt:
        print("zero_shot: interrupted; finished chunks are in the results file", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"zero_shot: error: {exc}", file=sys.stderr)
        return 1
    print(summary(rows, args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
