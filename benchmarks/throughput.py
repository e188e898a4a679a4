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

Learners (default model, one torch thread, the commit they ran on in the table):

- ``--bc``: behaviour-cloning training throughput, decisions per second, through the
  learner's own training loop (:func:`learners.imitation.behaviour_cloning`: its batching,
  forward, backward and Adam step) on each env's expert demos;
- ``--rl``: MaskablePPO env steps per second through :func:`learners.rl.train_rl`
  (collection and PPO updates, evaluation left out), RL's own defaults otherwise;
- ``--iwm``: seconds per update of BC, of ``iwm-joint`` (BC plus the world-model loss on
  every update) and of a world-model stage (``iwm-matched``'s stage 1), each as a ratio to
  BC's: the early-experience issue's cost target (:func:`measure_update_cost`);
- ``--device``: where ``--bc``, ``--rl`` and ``--lm`` train and act (default: the CPU);
- ``--lm MODEL ...``: the language-model agent's BC training tokens per
  second and its acting decisions per second, ranking and generating (:func:`measure_lm`).

Both go through public functions that older commits have too, so the "before" of a speed
change is this same file run on the older tree::

    git worktree add /tmp/before <commit> && cp benchmarks/throughput.py /tmp/before/benchmarks/
    cd /tmp/before && python -m benchmarks.throughput --bc --rl --envs earlyexp/Household-v0
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import envs
from agents import Agent, LMConfig, resolve_device
from agents.lm import new_lm_agent
from benchmarks.results import commit
from envs import minigrid_adapter, textworld_games
from learners.data import collect_demos, encode_decisions
from learners.evaluate import evaluate
from learners.imitation import PolicyLoss, behaviour_cloning, encode_for
from learners.rl import RLConfig, train_rl
from learners.rollouts import collect_rollouts, load_rollouts
from learners.world_model import (
    IWMConfig,
    encode_transition,
    joint_loss,
    parse_k,
    world_modeling,
)


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


def _bc_speed(
    agent: Any,
    decisions: list[Any],
    updates: int,
    batch_size: int,
    rate: float,
    seed: int,
    loss: PolicyLoss | None = None,
) -> float:
    """Decisions/s of ``updates`` updates of BC's own loop (no early stop; one validation),
    with a learner's own ``loss`` (default: BC's)."""
    fit = behaviour_cloning(
        agent,
        decisions,
        decisions[:batch_size],
        max_updates=updates,
        batch_size=batch_size,
        learning_rate=rate,
        val_every=updates,
        patience=1,
        seed=seed,
        progress=False,
        loss=loss,
    )
    return fit["samples_per_second"]


def measure_bc_samples(
    env_id: str,
    updates: int = 100,
    batch_size: int = 32,
    repeats: int = 3,
    demos: int = 50,
    device: str = "cpu",
) -> dict[str, Any]:
    """Median BC training decisions/s of the default agent on ``demos`` expert episodes,
    through BC's own loop for ``updates`` updates (no early stop; one validation at the end),
    on ``device``."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = collect_demos(env_id, demos, Path(tmp) / "demos.jsonl", progress=False)
    decisions = list(encode_decisions(Agent(seed=0), dataset.episodes))
    where = resolve_device(device)
    runs = [
        _bc_speed(Agent(seed=repeat).to(where), decisions, updates, batch_size, 1e-3, repeat)
        for repeat in range(repeats)
    ]
    return {
        "env_id": env_id,
        "device": str(where),
        "samples_per_second": statistics.median(runs),
        "runs": runs,
    }


def measure_update_cost(
    env_id: str, demos: int = 50, updates: int = 100, repeats: int = 3
) -> dict[str, Any]:
    """Seconds per update (one thread, the default agent, the learners' defaults: rollouts
    with ``k`` alternatives, batch sizes, target, learning rates) of BC, of ``iwm-joint``
    (BC's minibatch plus the world-model loss on a minibatch of branched states) and of a
    world-model stage, on ``demos`` expert episodes and their rollouts: the medians over
    ``repeats`` fresh agents, and each one's ratio to BC's."""
    torch.set_num_threads(1)
    config = IWMConfig(env_id=env_id, mode="joint")
    with tempfile.TemporaryDirectory() as tmp:
        demo_file, rollout_file = Path(tmp) / "demos.jsonl", Path(tmp) / "rollouts.jsonl"
        dataset = collect_demos(env_id, demos, demo_file, progress=False)
        collect_rollouts(dataset, demo_file, rollout_file, k=parse_k(config.k), progress=False)
        branched = list(load_rollouts(rollout_file, dataset))
    probe = Agent(seed=0)
    decisions = list(encode_decisions(probe, dataset.episodes))
    transitions = [encode_transition(probe, dataset.episodes[b.episode], b) for b in branched]
    seconds: dict[str, list[float]] = {"bc": [], "iwm-joint": [], "world-model stage": []}
    for repeat in range(repeats):
        joint = joint_loss(transitions, dataclasses.replace(config, seed=repeat))
        for name, loss in (("bc", None), ("iwm-joint", joint)):
            speed = _bc_speed(
                Agent(seed=repeat),
                decisions,
                updates,
                config.batch_size,
                config.learning_rate,
                repeat,
                loss,
            )
            seconds[name].append(config.batch_size / speed)
        stage = world_modeling(
            Agent(seed=repeat),
            transitions,
            transitions[: config.wm_batch_size],
            target=config.target,
            max_updates=updates,
            batch_size=config.wm_batch_size,
            learning_rate=config.wm_learning_rate,
            val_every=updates,
            patience=1,
            seed=repeat,
            progress=False,
        )
        seconds["world-model stage"].append(stage["wm_seconds"] / stage["wm_updates"])
    medians = {name: statistics.median(runs) for name, runs in seconds.items()}
    return {
        "env_id": env_id,
        "seconds_per_update": medians,
        "ratio_to_bc": {name: median / medians["bc"] for name, median in medians.items()},
        "runs": seconds,
    }


def measure_rl_steps(
    env_id: str, steps: int = 2048, repeats: int = 3, **overrides: Any
) -> dict[str, Any]:
    """Median MaskablePPO env steps/s (rollouts and updates; evaluation off) of a fresh
    default agent on ``env_id``, with RL's defaults (``n_envs`` among them, where the code
    has it) but for ``overrides`` (RLConfig fields)."""
    torch.set_num_threads(1)
    known = {f.name for f in dataclasses.fields(RLConfig)}
    runs, n_envs = [], None
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            values = dict(
                env_id=env_id,
                out=str(Path(tmp) / "rl"),
                log_dir=str(Path(tmp) / "runs"),
                steps=steps,
                seed=repeat,
                eval_episodes=0,
                progress=False,
                **overrides,
            )
            config = RLConfig(**{k: v for k, v in values.items() if k in known})
            n_envs = getattr(config, "n_envs", 1)
            runs.append(train_rl(config)["env_steps_per_second"])
    return {
        "env_id": env_id,
        "env_steps_per_second": statistics.median(runs),
        "runs": runs,
        "n_envs": n_envs,
    }


def measure_lm(
    env_id: str,
    model: str = "tiny",
    device: str = "cpu",
    demos: int = 10,
    updates: int = 20,
    batch_size: int = 16,
    decisions: int = 40,
    lora_rank: int = 0,
) -> dict[str, Any]:
    """The language-model agent's throughput on ``env_id``'s expert demos, on ``device``:
    BC fine-tuning (training tokens/s: prompt and command tokens of each decision, through
    BC's own loop for ``updates`` updates) and acting (decisions/s ranking every admissible
    command, one state at a time as an episode does; decisions/s generating a command; and
    both with an evaluation's ``lockstep`` episodes' states in one call)."""
    torch.set_num_threads(1)
    # LoRA is for pretrained models; a tiny one trains every weight.
    config = LMConfig(model=model, lora_rank=lora_rank if model != "tiny" else 0)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = collect_demos(env_id, demos, Path(tmp) / "demos.jsonl", progress=False)
    agent = new_lm_agent(config, 0, env_id).to(resolve_device(device))
    train = list(encode_for(agent, dataset.episodes))
    decisions_per_second = _bc_speed(agent, train, updates, batch_size, 1e-4, 0)
    tokens = statistics.mean(len(d.state) + len(d.candidates[d.target]) for d in train)
    states = [
        (episode.goal, step.text, [], list(step.admissible))
        for episode in dataset.episodes
        for step in episode.steps
    ][:decisions]
    start = time.perf_counter()
    for state in states:
        agent.batch_logits([state])
    ranking = len(states) / (time.perf_counter() - start)
    start = time.perf_counter()
    for goal, text, history, commands in states[: max(1, decisions // 4)]:
        agent.generate(agent.encode_prompt(goal, text, history, commands))
    generating = max(1, decisions // 4) / (time.perf_counter() - start)
    # As an evaluation acts: up to `lockstep` episodes' states in one call.
    lockstep = inspect.signature(evaluate).parameters["lockstep"].default
    groups = [states[i : i + lockstep] for i in range(0, len(states), lockstep)]
    start = time.perf_counter()
    for group in groups:
        agent.batch_logits(group)
    ranking_together = len(states) / (time.perf_counter() - start)
    start = time.perf_counter()
    for group in groups:
        agent.generate_many(agent.decision_prompts(group))
    generating_together = len(states) / (time.perf_counter() - start)
    return {
        "env_id": env_id,
        "model": model,
        "device": str(agent.device),
        "parameters": agent.num_parameters,
        "train_tokens_per_second": decisions_per_second * tokens,
        "train_decisions_per_second": decisions_per_second,
        "tokens_per_decision": tokens,
        "rank_decisions_per_second": ranking,
        "generate_decisions_per_second": generating,
        "lockstep": lockstep,
        "rank_decisions_per_second_lockstep": ranking_together,
        "generate_decisions_per_second_lockstep": generating_together,
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
    parser.add_argument("--bc", action="store_true", help="also measure BC training decisions/s")
    parser.add_argument("--rl", action="store_true", help="also measure RL env steps/s")
    parser.add_argument(
        "--iwm",
        action="store_true",
        help="also measure seconds per update of BC, iwm-joint and a world-model stage",
    )
    parser.add_argument(
        "--lm",
        nargs="+",
        default=None,
        metavar="MODEL",
        help="also measure the language-model agent of these models (tiny, smollm2, a path): "
        "BC training tokens/s and acting decisions/s",
    )
    parser.add_argument(
        "--lm-lora-rank", type=int, default=0, help="LoRA rank of the pretrained --lm models"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="device of the --bc, --rl and --lm measurements (cpu, cuda, auto)",
    )
    parser.add_argument(
        "--no-envs", action="store_true", help="skip the env-step tables (learners only)"
    )
    args = parser.parse_args(argv)
    results, engines = [], []
    failed = False
    ids = args.envs or envs.registered_ids()
    for env_id in [] if args.no_envs else ids:
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
    if results:
        print(markdown_table(results))
    if engines:
        print()
        print(engine_table(engines))
    here = commit()
    if args.bc:
        print(
            "\n| env | BC decisions/s (batch 32, 1 thread) | device | commit |\n|---|---:|---|---|"
        )
        for env_id in ids:
            bc = measure_bc_samples(env_id, device=args.device)
            print(
                f"| {env_id} | {bc['samples_per_second']:,.0f} | {bc['device']} | {here} |",
                flush=True,
            )
    if args.rl:
        print(
            "\n| env | RL env steps/s (1 thread) | envs | device | commit |\n"
            "|---|---:|---:|---|---|"
        )
        for env_id in ids:
            rl = measure_rl_steps(env_id, device=args.device)
            print(
                f"| {env_id} | {rl['env_steps_per_second']:,.1f} | {rl['n_envs']} | "
                f"{args.device} | {here} |",
                flush=True,
            )
    if args.iwm:
        print(
            "\n| env | BC s/update | iwm-joint s/update (x BC) | world-model stage s/update "
            "(x BC) | commit |\n|---|---:|---:|---:|---|"
        )
        for env_id in ids:
            cost = measure_update_cost(env_id)
            each, ratio = cost["seconds_per_update"], cost["ratio_to_bc"]
            print(
                f"| {env_id} | {each['bc']:.4f} | {each['iwm-joint']:.4f} "
                f"({ratio['iwm-joint']:.2f}x) | {each['world-model stage']:.4f} "
                f"({ratio['world-model stage']:.2f}x) | {here} |",
                flush=True,
            )
    if args.lm:
        print(
            "\n| env | LM | device | parameters | train tokens/s (BC, batch 16) | "
            "rank decisions/s (1 state, 16 states per call) | "
            "generate decisions/s (1, 16) | commit |\n"
            "|---|---|---|---:|---:|---:|---:|---|"
        )
        for env_id in ids:
            for model in args.lm:
                lm = measure_lm(env_id, model, args.device, lora_rank=args.lm_lora_rank)
                print(
                    f"| {env_id} | {model} | {lm['device']} | {lm['parameters']:,} | "
                    f"{lm['train_tokens_per_second']:,.0f} | "
                    f"{lm['rank_decisions_per_second']:,.2f}, "
                    f"{lm['rank_decisions_per_second_lockstep']:,.2f} | "
                    f"{lm['generate_decisions_per_second']:,.2f}, "
                    f"{lm['generate_decisions_per_second_lockstep']:,.2f} | {here} |",
                    flush=True,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
