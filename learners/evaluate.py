"""Evaluation: success rate, valid-action rate and episode length of a policy on a split.

Every report puts the agent (greedy and sampled) beside a random admissible policy, so a
success rate always comes with the chance level it has to beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from agents import Agent
from envs import make, resolve_id
from envs.progress import progress_bar
from learners.data import run_expert_episode

#: Evaluation instances use seeds from here on, away from the seeds demos are collected with.
EVAL_SEED = 10_000


class Policy(Protocol):
    """Picks commands for several episodes played in lockstep, each in its own slot."""

    def reset(self, slot: int) -> None:
        """A new episode starts in ``slot``: forget what the previous one there left."""

    def act(self, slots: list[int], observations: list[dict], infos: list[dict]) -> list[str]:
        """One command per slot, for each slot's observation and info."""


class RandomPolicy:
    """Uniform over ``info["admissible_actions"]``: the chance level of a setting."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, slot: int) -> None:
        """Nothing to forget between episodes."""

    def act(self, slots: list[int], observations: list[dict], infos: list[dict]) -> list[str]:
        """A uniformly random admissible command per slot."""
        return [a[self.rng.integers(len(a))] for a in (i["admissible_actions"] for i in infos)]


class AgentPolicy:
    """An :class:`agents.Agent` acting greedily or by sampling with a seeded generator; the
    states of all slots go through the model in one batch."""

    def __init__(self, agent: Agent, greedy: bool = True, seed: int = 0) -> None:
        self.agent, self.greedy = agent, greedy
        self.rng = np.random.default_rng(seed)
        self.histories: dict[int, list[tuple[str, str]]] = {}

    def reset(self, slot: int) -> None:
        """Start the slot's episode history afresh."""
        self.histories[slot] = []

    def act(self, slots: list[int], observations: list[dict], infos: list[dict]) -> list[str]:
        """The agent's command for each slot, recorded in that slot's history."""
        states = [
            (obs["goal"], obs["text"], self.histories[slot], list(info["admissible_actions"]))
            for slot, obs, info in zip(slots, observations, infos, strict=True)
        ]
        chosen = []
        for (_, text, history, commands), logits in zip(
            states, self.agent.batch_logits(states), strict=True
        ):
            command = commands[self.agent.choose(logits, self.greedy, self.rng)]
            history.append((text, command))
            chosen.append(command)
        return chosen


@dataclass
class EvalResult:
    """Outcome of ``episodes`` episodes of one policy."""

    success_rate: float
    valid_action_rate: float
    mean_episode_length: float
    episodes: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON and logging."""
        return asdict(self)


def evaluate(
    policy: Policy,
    env_id: str,
    *,
    split: str = "test",
    episodes: int = 50,
    seed: int = EVAL_SEED,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
    desc: str = "eval",
    lockstep: int = 16,
) -> EvalResult:
    """Run ``policy`` on instances ``seed .. seed+episodes-1`` of ``split`` and summarise.

    Up to ``lockstep`` episodes run side by side in their own envs, so a model policy scores
    all of their states in one forward pass (several times faster than one at a time).
    Episode ``i`` always plays instance ``seed + i``; a greedy policy's results do not
    depend on ``lockstep``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if lockstep < 1:
        raise ValueError(f"lockstep must be at least 1, got {lockstep}")
    env_id = resolve_id(env_id)
    pool = [make(env_id, split=split, **(env_kwargs or {})) for _ in range(min(lockstep, episodes))]
    successes, lengths, valid = 0, [], 0
    live: dict[int, tuple[dict, dict, int]] = {}  # slot -> (obs, info, steps so far)
    queue = iter(range(episodes))

    def start(slot: int) -> None:
        episode = next(queue, None)
        if episode is None:
            return
        obs, info = pool[slot].reset(seed=seed + episode)
        policy.reset(slot)
        live[slot] = (obs, info, 0)

    for slot in range(len(pool)):
        start(slot)
    with progress_bar(total=episodes, desc=desc, unit="ep", disable=not progress) as bar:
        while live:
            slots = sorted(live)
            commands = policy.act(slots, [live[s][0] for s in slots], [live[s][1] for s in slots])
            for slot, command in zip(slots, commands, strict=True):
                obs, _, terminated, truncated, info = pool[slot].step(command)
                length = live[slot][2] + 1
                valid += not info["invalid_action"]
                live[slot] = (obs, info, length)
                if terminated or truncated:
                    successes += bool(info["success"])
                    lengths.append(length)
                    del live[slot]
                    bar.update()
                    start(slot)
    for env in pool:
        env.close()
    return EvalResult(successes / episodes, valid / sum(lengths), float(np.mean(lengths)), episodes)


def evaluate_agent(
    agent: Agent,
    env_id: str,
    *,
    split: str = "test",
    episodes: int = 50,
    seed: int = EVAL_SEED,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, EvalResult]:
    """The agent greedy and sampled, and a random admissible policy, on the same instances."""
    common = dict(
        split=split, episodes=episodes, seed=seed, env_kwargs=env_kwargs, progress=progress
    )
    return {
        "greedy": evaluate(AgentPolicy(agent, True, seed), env_id, desc="eval greedy", **common),
        "sampled": evaluate(AgentPolicy(agent, False, seed), env_id, desc="eval sampled", **common),
        "random": evaluate(RandomPolicy(seed), env_id, desc="eval random", **common),
    }


def format_report(results: dict[str, EvalResult]) -> str:
    """A small fixed-width table of evaluation results, one row per policy."""
    rows = [f"{'policy':<10}{'success':>9}{'valid':>8}{'length':>8}{'episodes':>10}"]
    for name, r in results.items():
        rows.append(
            f"{name:<10}{r.success_rate:>9.3f}{r.valid_action_rate:>8.3f}"
            f"{r.mean_episode_length:>8.1f}{r.episodes:>10d}"
        )
    return "\n".join(rows)


def evaluate_expert(
    env_id: str,
    *,
    split: str = "test",
    episodes: int = 50,
    seed: int = EVAL_SEED,
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """The env's own expert on the same instances: the ceiling beside the random floor."""
    env = make(resolve_id(env_id), split=split, **(env_kwargs or {}))
    runs = [run_expert_episode(env, seed + i) for i in range(episodes)]
    env.close()
    lengths = [len(r.steps) for r in runs]
    return EvalResult(
        float(np.mean([r.success for r in runs])), 1.0, float(np.mean(lengths)), episodes
    )
