"""Evaluation: success rate, valid-action rate and episode length of a policy on a split.

Every report puts the agent (greedy and sampled) beside a random admissible policy, so a
success rate always comes with the chance level it has to beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from agents import Agent
from envs import make, resolve_id
from learners.data import run_expert_episode

#: Evaluation instances use seeds from here on, away from the seeds demos are collected with.
EVAL_SEED = 10_000


class Policy(Protocol):
    """Anything that picks a command from an observation and its info."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str: ...


class RandomPolicy:
    """Uniform over ``info["admissible_actions"]``: the chance level of a setting."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to forget between episodes."""

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        """A uniformly random admissible command."""
        actions = info["admissible_actions"]
        return actions[self.rng.integers(len(actions))]


class AgentPolicy:
    """An :class:`agents.Agent` acting greedily or by sampling with a seeded generator."""

    def __init__(self, agent: Agent, greedy: bool = True, seed: int = 0) -> None:
        self.agent, self.greedy = agent, greedy
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Clear the agent's episode history."""
        self.agent.reset()

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        """The agent's command for this step."""
        return self.agent.act(obs, info, greedy=self.greedy, rng=self.rng)


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
) -> EvalResult:
    """Run ``policy`` on instances ``seed .. seed+episodes-1`` of ``split`` and summarise."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    env = make(resolve_id(env_id), split=split, **(env_kwargs or {}))
    successes, lengths, valid, steps = 0, [], 0, 0
    for i in tqdm(range(episodes), desc=desc, unit="ep", disable=not progress):
        obs, info = env.reset(seed=seed + i)
        policy.reset()
        length = 0
        while True:
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
            length += 1
            valid += not info["invalid_action"]
            if terminated or truncated:
                break
        successes += bool(info["success"])
        lengths.append(length)
        steps += length
    env.close()
    return EvalResult(successes / episodes, valid / steps, float(np.mean(lengths)), episodes)


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
