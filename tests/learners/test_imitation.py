"""Behaviour cloning learns, is deterministic on CPU, and logs to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from agents import Agent
from learners.data import Episode, Step, collect_demos, encode_decisions
from learners.evaluate import RandomPolicy, evaluate
from learners.imitation import BCConfig, DAggerConfig, train_bc, train_dagger
from tests.devices import EXACT_ON_CPU, NEEDS_GPU

HOUSEHOLD = "earlyexp/Household-v0"


def test_bc_beats_random_on_household_test_split(tmp_path: Path) -> None:
    demos = tmp_path / "demos.jsonl"
    collect_demos(HOUSEHOLD, 60, demos, progress=False)
    config = BCConfig(
        env_id=HOUSEHOLD,
        demos=str(demos),
        out=str(tmp_path / "bc"),
        # The default model: it learns more per update than a smaller one (0.5 after 150
        # updates, where d_model=32 and one layer needed 400, at 1.4x the CPU time).
        max_updates=150,
        eval_episodes=30,
        log_dir=str(tmp_path / "runs"),
        progress=False,
    )
    metrics = train_bc(config)
    bc, chance = (
        metrics["eval"]["greedy"]["success_rate"],
        metrics["eval"]["random"]["success_rate"],
    )
    assert bc >= chance + 0.25, metrics["eval"]  # seen here: 0.50 vs 0.00
    assert json.loads((tmp_path / "bc" / "metrics.json").read_text())["learner"] == "bc"
    event_files = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert len(event_files) == 1 and "Household-v0__bc__0__" in str(event_files[0])


def _train_toy(tmp_path: Path, name: str, device: str = "auto") -> Agent:
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
        device=device,
    )
    train_bc(config)
    return Agent.load(tmp_path / name / "agent.pt")


@pytest.fixture(scope="module")
def toy_twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Agent, Agent]:
    """Two BC agents trained on the toy corridor with the same config and seed."""
    root = tmp_path_factory.mktemp("toy")
    return _train_toy(root, "a"), _train_toy(root, "b")


@EXACT_ON_CPU
def test_bc_is_deterministic(toy_twins: tuple[Agent, Agent]) -> None:
    first, second = toy_twins
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@NEEDS_GPU
def test_bc_on_a_gpu_solves_the_toy_corridor_and_saves_for_the_cpu(tmp_path: Path) -> None:
    from learners.evaluate import AgentPolicy

    agent = _train_toy(tmp_path, "gpu", device="cuda")  # bf16 autocast
    metrics = json.loads((tmp_path / "gpu" / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and agent.device == torch.device("cpu")
    learned = evaluate(AgentPolicy(agent), "toy/Corridor-v0", episodes=20)
    assert learned.success_rate >= 0.9


def test_bc_solves_the_toy_corridor(toy_twins: tuple[Agent, Agent]) -> None:
    from learners.evaluate import AgentPolicy

    agent = toy_twins[0]  # trained as _train_toy trains it, shared with the test above
    learned = evaluate(AgentPolicy(agent), "toy/Corridor-v0", episodes=20)
    chance = evaluate(RandomPolicy(0), "toy/Corridor-v0", episodes=20)
    assert learned.success_rate >= 0.9 > chance.success_rate


def test_dagger_labels_learner_states_and_beats_random_on_household(tmp_path: Path) -> None:
    demos = tmp_path / "demos.jsonl"
    collect_demos(HOUSEHOLD, 30, demos, progress=False)
    config = DAggerConfig(
        env_id=HOUSEHOLD,
        demos=str(demos),
        out=str(tmp_path / "dagger"),
        max_updates=150,  # per fit: three fits (the demos, then each round)
        batch_size=16,  # half the cost of an update; here it learned more per CPU second
        iterations=2,
        rollouts=10,
        eval_episodes=30,
        log_dir=str(tmp_path / "runs"),
        progress=False,
    )
    metrics = train_dagger(config)
    assert len(metrics["rollout_success"]) == 2
    assert metrics["labelled_steps"] > metrics["demo_steps"] * 0.8 + 10 * 8  # rollouts added
    bc, chance = (
        metrics["eval"]["greedy"]["success_rate"],
        metrics["eval"]["random"]["success_rate"],
    )
    assert bc >= chance + 0.2, metrics["eval"]  # seen here: 0.47 vs 0.00
    assert Agent.load(tmp_path / "dagger" / "agent.pt").meta["learner"] == "dagger"


def test_history_follows_the_executed_command() -> None:
    agent = Agent()
    steps = [
        Step("at door", ["go left", "go right"], "go right", taken="go left"),
        Step("x", ["a"], "a"),
    ]
    episode = Episode(seed=0, goal="g", success=False, final_text="y", steps=steps)
    second = list(encode_decisions(agent, [episode]))[1]
    assert second.state == agent.encode_state("g", "x", [("at door", "go left")])
