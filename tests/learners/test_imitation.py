"""Behaviour cloning learns, is deterministic on CPU, and logs to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from agents import Agent
from learners.data import collect_demos, encode_decisions
from learners.evaluate import RandomPolicy, evaluate
from learners.imitation import BCConfig, train_bc, validate

HOUSEHOLD = "earlyexp/Household-v0"


def test_bc_beats_random_on_household_test_split(tmp_path: Path) -> None:
    demos, test_demos = tmp_path / "demos.jsonl", tmp_path / "test.jsonl"
    collect_demos(HOUSEHOLD, 60, demos, progress=False)
    config = BCConfig(
        env_id=HOUSEHOLD,
        demos=str(demos),
        out=str(tmp_path / "bc"),
        max_updates=400,
        eval_episodes=30,
        log_dir=str(tmp_path / "runs"),
        progress=False,
    )
    metrics = train_bc(config)
    # Episode success on held-out compositions is low at this budget (see the README), so
    # the margin is asserted per decision: agreement with the expert on test-split states
    # against a uniform random pick among the admissible commands.
    agent = Agent.load(tmp_path / "bc" / "agent.pt")
    held_out = collect_demos(HOUSEHOLD, 20, test_demos, split="test", seed=10_000, progress=False)
    decisions = encode_decisions(agent, held_out.episodes)
    _, accuracy = validate(agent, decisions)
    chance = float(np.mean([1 / len(d.candidates) for d in decisions]))
    assert accuracy >= chance + 0.3, (accuracy, chance)
    assert metrics["eval"]["greedy"]["success_rate"] >= metrics["eval"]["random"]["success_rate"]
    assert json.loads((tmp_path / "bc" / "metrics.json").read_text())["learner"] == "bc"
    event_files = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert len(event_files) == 1 and "Household-v0__bc__0__" in str(event_files[0])


def _train_toy(tmp_path: Path, name: str) -> Agent:
    demos = tmp_path / "toy.jsonl"
    if not demos.exists():
        collect_demos("toy/Corridor-v0", 12, demos, progress=False)
    config = BCConfig(
        env_id="toy/Corridor-v0",
        demos=str(demos),
        out=str(tmp_path / name),
        max_updates=120,
        eval_episodes=0,
        log_dir=str(tmp_path / "runs"),
        progress=False,
    )
    train_bc(config)
    return Agent.load(tmp_path / name / "agent.pt")


def test_bc_is_deterministic(tmp_path: Path) -> None:
    first, second = _train_toy(tmp_path, "a"), _train_toy(tmp_path, "b")
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_bc_solves_the_toy_corridor(tmp_path: Path) -> None:
    from learners.evaluate import AgentPolicy

    agent = _train_toy(tmp_path, "toy")
    learned = evaluate(AgentPolicy(agent), "toy/Corridor-v0", episodes=20)
    chance = evaluate(RandomPolicy(0), "toy/Corridor-v0", episodes=20)
    assert learned.success_rate >= 0.9 > chance.success_rate
