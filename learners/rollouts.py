"""Early experience: branch from every expert state, try other commands, record what they did.

For each step of each expert episode: restore the expert's state, execute K alternative
commands (never the expert's), and record ``(command, next observation, reward,
terminated)`` for each, plus the expert's own transition. No reward is used to choose
anything; the supervision is what the agent's own actions did.

Rollout file format (``earlyexp-rollouts``, version 1): UTF-8 JSON Lines.

* header: ``{"format": "earlyexp-rollouts", "version": 1, "env_id": str, "split": str,
  "demos": str, "k": int | "all", "proposer": "uniform", "seed": int}``
* one line per expert state: ``{"episode": int, "step": int, "expert": T, "branches": [T, ...]}``
  with ``T = {"action": str, "next_text": str, "reward": float, "terminated": bool}``; the
  state itself (goal, observation, history) is step ``step`` of episode ``episode`` of the
  demos file, so the two files are used together.
* footer: ``{"end": true, "states": int, "branches": int}``

Lines are streamed to a temporary file and renamed into place at the end, so collection
holds one state's branches in memory and a kill never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.files import atomic_write
from envs import make
from learners.data import Dataset, Episode

FORMAT = "earlyexp-rollouts"
VERSION = 1


class BranchDivergedError(RuntimeError):
    """Replaying an expert episode did not reproduce its recorded observation."""


@dataclass
class Transition:
    """What one command did from a state."""

    action: str
    next_text: str
    reward: float
    terminated: bool


def propose_uniform(
    admissible: list[str], expert: str, k: int | None, rng: np.random.Generator
) -> list[str]:
    """Up to ``k`` distinct admissible commands other than the expert's (all when ``k`` is None)."""
    others = [a for a in admissible if a != expert]
    if k is None or k >= len(others):
        return others
    return [others[i] for i in sorted(rng.choice(len(others), size=k, replace=False))]


def _transition(env: Any, action: str) -> Transition:
    obs, reward, terminated, _, _ = env.step(action)
    return Transition(action, obs["text"], float(reward), bool(terminated))


def branch_episode(
    env: Any, env_id: str, episode: Episode, k: int | None, rng: np.random.Generator
) -> list[tuple[Transition, list[Transition]]]:
    """Branch at every step of ``episode`` on the unwrapped env; return (expert, branches) per step.

    Uses ``get_state``/``set_state`` when the env has them, else replays the episode's
    executed prefix from ``reset(seed)``. Either way the restored observation must equal the
    recorded one, or :class:`BranchDivergedError` names the env, seed and step.
    """
    can_snapshot = hasattr(env, "get_state") and hasattr(env, "set_state")
    obs, _ = env.reset(seed=episode.seed)
    results = []
    for t, step in enumerate(episode.steps):
        if obs["text"] != step.text:
            raise BranchDivergedError(
                f"{env_id}: seed {episode.seed}, step {t}: the env shows {obs['text']!r}, "
                f"the demos recorded {step.text!r}; the env is not deterministic or the demos are from another version"
            )
        branches = []
        snapshot = env.get_state() if can_snapshot else None
        for action in propose_uniform(step.admissible, step.executed, k, rng):
            if can_snapshot:
                env.set_state(snapshot)
            else:
                _replay(env, env_id, episode, t)
            branches.append(_transition(env, action))
        if can_snapshot:
            env.set_state(snapshot)
        else:
            _replay(env, env_id, episode, t)
        expert = _transition(env, step.executed)
        obs = {"text": expert.next_text}
        results.append((expert, branches))
    return results


def _replay(env: Any, env_id: str, episode: Episode, t: int) -> None:
    obs, _ = env.reset(seed=episode.seed)
    for i, step in enumerate(episode.steps[:t]):
        if obs["text"] != step.text:
            raise BranchDivergedError(
                f"{env_id}: replay of seed {episode.seed} diverged at step {i}: got {obs['text']!r}, "
                f"recorded {step.text!r}"
            )
        obs, *_ = env.step(step.executed)
    if obs["text"] != episode.steps[t].text:
        raise BranchDivergedError(
            f"{env_id}: replay of seed {episode.seed} diverged at step {t}: got {obs['text']!r}, "
            f"recorded {episode.steps[t].text!r}"
        )


def collect_rollouts(
    demos: Dataset,
    demos_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    k: int | None = 8,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Branch from every state of ``demos`` and stream the rollout file to ``out``.

    ``k`` alternatives per state (None = every admissible command). Returns counts.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be a positive integer or None (all), got {k}")
    env = make(demos.env_id, split=demos.split, **demos.env_kwargs).unwrapped
    rng = np.random.default_rng(seed)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "env_id": demos.env_id,
        "split": demos.split,
        "demos": str(demos_path),
        "k": "all" if k is None else k,
        "proposer": "uniform",
        "seed": seed,
    }
    states = branches = 0
    with atomic_write(out) as f:
        f.write(json.dumps(header) + "\n")
        episodes = tqdm(
            demos.episodes, desc=f"rollouts {demos.env_id}", unit="ep", disable=not progress
        )
        for i, episode in enumerate(episodes):
            for t, (expert, alternatives) in enumerate(
                branch_episode(env, demos.env_id, episode, k, rng)
            ):
                record = {
                    "episode": i,
                    "step": t,
                    "expert": expert.__dict__,
                    "branches": [b.__dict__ for b in alternatives],
                }
                f.write(json.dumps(record) + "\n")
                states += 1
                branches += len(alternatives)
        f.write(json.dumps({"end": True, "states": states, "branches": branches}) + "\n")
    env.close()
    return {"states": states, "branches": branches}
