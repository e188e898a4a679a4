"""Early-experience rollouts: branches equal fresh replays, K and the expert are respected."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents import Agent
from envs import make
from learners.data import collect_demos
from learners.rollouts import (
    BranchDivergedError,
    branch_episode,
    collect_rollouts,
    policy_proposer,
)

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
    body = "".join(out.read_text().splitlines(keepends=True)[:-1]).encode()
    assert footer == {"end": True, **counts, "sha256": hashlib.sha256(body).hexdigest()}
    assert counts["states"] == dataset.num_steps == len(records)
    assert counts["branches"] == sum(len(r["branches"]) for r in records) > dataset.num_steps
    with pytest.raises(ValueError, match="k must be"):
        collect_rollouts(dataset, path, out, k=0, progress=False)


@pytest.mark.parametrize("temperature", [0.01, 1.0])
def test_policy_proposer_respects_k_and_never_proposes_the_expert(demos, temperature) -> None:
    _, dataset = demos
    propose = policy_proposer(Agent(seed=0), temperature)
    rng = np.random.default_rng(0)
    for episode in dataset.episodes:
        history: list[tuple[str, str]] = []
        for step in episode.steps:
            for k in (1, 3, None):
                got = propose(
                    episode.goal, step.text, history, step.admissible, step.action, k, rng
                )
                others = len(step.admissible) - 1
                assert len(got) == (others if k is None else min(k, others))
                assert step.action not in got and len(set(got)) == len(got)
                assert set(got) <= set(step.admissible)
            history.append((step.text, step.executed))


def test_policy_proposer_samples_from_the_policy(demos) -> None:
    _, dataset = demos
    agent = Agent(seed=0)
    episode = dataset.episodes[0]
    step = next(s for s in episode.steps if len(s.admissible) >= 6)
    logits = agent.state_logits(episode.goal, step.text, [], step.admissible)
    others = [a for a in step.admissible if a != step.action]
    favourite = max(others, key=lambda a: logits[step.admissible.index(a)])
    propose = policy_proposer(agent, temperature=1e-4)  # near-greedy: one distinct draw
    rng = np.random.default_rng(0)
    for _ in range(5):
        got = propose(episode.goal, step.text, [], step.admissible, step.action, 3, rng)
        assert got[0] == favourite and len(got) == 3  # the other two are uniform refills


def test_policy_rollouts_need_an_agent(demos, tmp_path: Path) -> None:
    path, dataset = demos
    with pytest.raises(ValueError, match="policy proposer samples from an agent"):
        collect_rollouts(dataset, path, tmp_path / "r.jsonl", proposer="policy", progress=False)
    with pytest.raises(ValueError, match="unknown proposer"):
        collect_rollouts(dataset, path, tmp_path / "r.jsonl", proposer="best", progress=False)
    assert not (tmp_path / "r.jsonl").exists()
    counts = collect_rollouts(
        dataset,
        path,
        tmp_path / "r.jsonl",
        k=2,
        proposer="policy",
        agent=Agent(seed=1),
        progress=False,
    )
    header = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert header["proposer"] == "policy" and header["temperature"] == 1.0
    assert counts["branches"] <= 2 * counts["states"]
