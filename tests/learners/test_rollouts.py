"""Early-experience rollouts: branches equal fresh replays, K and the expert are respected."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs import make
from learners.data import collect_demos
from learners.rollouts import BranchDivergedError, branch_episode, collect_rollouts

HOUSEHOLD = "earlyexp/Household-v0"


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("demos") / "demos.jsonl"
    return path, collect_demos(HOUSEHOLD, 3, path, progress=False)


def test_snapshot_branches_equal_fresh_replays(demos) -> None:
    _, dataset = demos
    env = make(HOUSEHOLD).unwrapped
    replay_only = gym.Wrapper(make(HOUSEHOLD).unwrapped)  # no get_state/set_state: replays
    assert not hasattr(replay_only, "get_state")
    for episode in dataset.episodes:
        fast = branch_episode(env, HOUSEHOLD, episode, 4, np.random.default_rng(0))
        slow = branch_episode(replay_only, HOUSEHOLD, episode, 4, np.random.default_rng(0))
        assert fast == slow
        assert [e.action for e, _ in fast] == [s.action for s in episode.steps]
        assert fast[-1][0].reward == 1.0 and fast[-1][0].terminated


@pytest.mark.parametrize("k", [1, 3, None])
def test_k_is_respected_and_the_expert_is_never_an_alternative(demos, k) -> None:
    _, dataset = demos
    env = make(HOUSEHOLD).unwrapped
    episode = dataset.episodes[0]
    for step, (_, branches) in zip(
        episode.steps,
        branch_episode(env, HOUSEHOLD, episode, k, np.random.default_rng(1)),
        strict=True,
    ):
        actions = [b.action for b in branches]
        assert step.action not in actions and len(set(actions)) == len(actions)
        assert set(actions) <= set(step.admissible)
        expected = len(step.admissible) - 1 if k is None else min(k, len(step.admissible) - 1)
        assert len(actions) == expected


def test_divergence_names_env_seed_and_step(demos) -> None:
    _, dataset = demos
    episode = dataset.episodes[1]
    steps = list(episode.steps)
    steps[2] = dataclasses.replace(steps[2], text="something else")
    tampered = dataclasses.replace(episode, steps=steps)
    for env in (make(HOUSEHOLD).unwrapped, gym.Wrapper(make(HOUSEHOLD).unwrapped)):
        with pytest.raises(BranchDivergedError, match=f"{HOUSEHOLD}.*seed {episode.seed}.*step 2"):
            branch_episode(env, HOUSEHOLD, tampered, 2, np.random.default_rng(0))


def test_rollout_file(demos, tmp_path: Path) -> None:
    path, dataset = demos
    out = tmp_path / "rollouts.jsonl"
    counts = collect_rollouts(dataset, path, out, k=3, progress=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    header, records, footer = lines[0], lines[1:-1], lines[-1]
    assert header["format"] == "earlyexp-rollouts" and header["k"] == 3
    assert footer == {"end": True, **counts}
    assert counts["states"] == dataset.num_steps == len(records)
    assert counts["branches"] == sum(len(r["branches"]) for r in records) > dataset.num_steps
    with pytest.raises(ValueError, match="k must be"):
        collect_rollouts(dataset, path, out, k=0, progress=False)
