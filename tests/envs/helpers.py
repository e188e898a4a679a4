"""Helpers the env tests share: follow the expert, walk randomly, make a test env."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

import gymnasium as gym
import pytest

import envs
from tests.envs.textworld_pools import CASES, pool_kwargs

#: Steps the expert gets from any state (every registered step cap is at most 100).
EXPERT_CAP = 200


def make_env(env_id: str, split: str, request: pytest.FixtureRequest) -> gym.Env:
    """The unwrapped env of a registered id on ``split``; a TextWorld id plays the tiny
    session pool (see ``tests/envs/textworld_pools.py``)."""
    kwargs = {}
    if env_id in CASES:
        kwargs = pool_kwargs(env_id, request.getfixturevalue("textworld_cache"))
    return envs.make(env_id, split=split, **kwargs).unwrapped


def follow_expert(env: gym.Env, info: dict, cap: int = EXPERT_CAP) -> tuple[bool, int, dict]:
    """Step the expert's commands from the current state (``info`` is its last info) until
    the episode ends, at most ``cap`` steps; each must be admissible. Return (solved, steps,
    last info), solved meaning terminated with reward 1.0 and ``info["success"]``."""
    for n in range(1, cap + 1):
        action = env.unwrapped.expert_action()
        assert action in info["admissible_actions"], (action, info["admissible_actions"])
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return bool(terminated and reward == 1.0 and info["success"]), n, info
    return False, cap, info


def random_walk(
    env: gym.Env,
    info: dict,
    steps: int,
    rng: random.Random,
    *,
    keep: Callable[[str], bool] | None = None,
    live: bool = False,
    expert: float = 0.0,
) -> tuple[dict, bool]:
    """Take up to ``steps`` commands from the current state (``info`` is its last info):
    the expert's with probability ``expert``, else one drawn by ``rng`` from the admissible
    commands (those ``keep`` accepts; the walk stops when there are none). Return (last
    info, whether the episode ended).

    ``live``: never end the episode: a command that ends it is undone (the snapshot before
    it restored) and, if drawn, another one drawn; the walk stops where none is left.
    """
    unwrapped = env.unwrapped
    for _ in range(steps):
        actions = [a for a in info["admissible_actions"] if keep is None or keep(a)]
        if expert and rng.random() < expert:
            actions = [unwrapped.expert_action()]
        snapshot = unwrapped.get_state() if live else None
        while actions:
            action = actions.pop(rng.randrange(len(actions)))
            _, _, terminated, truncated, next_info = env.step(action)
            if not (terminated or truncated):
                break
            if not live:
                return next_info, True
            unwrapped.set_state(snapshot)
        else:
            return info, False  # no command left to take (or none that keeps it going)
        info = next_info
    return info, False


def walk_states(
    env: gym.Env, seeds: Iterable[int], steps: int, *, expert: float = 0.0
) -> Iterator[dict]:
    """For each seed ``s``: reset with it and take up to ``steps`` commands as
    :func:`random_walk` does (drawn by ``random.Random(s)``, the expert's with probability
    ``expert``); yield the info of every state reached before the episode ends, the reset
    state included, while the env is in that state."""
    for seed in seeds:
        rng = random.Random(seed)
        _, info = env.reset(seed=seed)
        yield info
        for _ in range(steps):
            info, done = random_walk(env, info, 1, rng, expert=expert)
            if done:
                break
            yield info
