"""Look-ahead (iwm-lookahead): demo decisions joined with the rollouts' outcomes, observed
versus predicted outcomes, the config, checkpoints, RL, and a run through the CLI."""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import Agent, AgentConfig, ModelConfig, collate
from agents.files import seal
from benchmarks.cli import build_parser, main
from envs import make
from learners import get_learner
from learners.config import values_from_args
from learners.data import collect_demos, load_dataset
from learners.rl import RLConfig, TokenizedEnv, build_ppo, initial_agent
from learners.rollouts import collect_rollouts, load_rollouts
from learners.world_model import (
    IWMConfig,
    indexed_episodes,
    load_transitions,
    mixed_outcome,
    outcome_decisions,
)

HOUSEHOLD = "earlyexp/Household-v0"
SMALL = ModelConfig(d_model=32, n_layers=1, ff_dim=64, lookahead=True)
TINY_FLAGS = ["--d-model", "32", "--n-layers", "1", "--ff-dim", "64"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lookahead")
    demos, rollouts = root / "demos.jsonl", root / "rollouts.jsonl"
    dataset = collect_demos(HOUSEHOLD, 6, demos, progress=False)
    collect_rollouts(dataset, demos, rollouts, k=3, progress=False)
    return demos, rollouts


def _joined(files, tmp_path: Path, agent: Agent, target: str = "delta"):
    demos, rollouts = files
    dataset = load_dataset(demos)
    config = IWMConfig(demos=str(demos), rollout_file=str(rollouts), out=str(tmp_path))
    train_eps = dataset.episodes[:4]
    wm_train, _, positions = load_transitions(config, dataset, agent, train_eps)
    indexed = indexed_episodes(dataset, train_eps)
    return dataset, list(outcome_decisions(agent, indexed, wm_train, positions, target))


def test_decisions_carry_the_observed_outcomes_of_the_tried_commands(files, tmp_path) -> None:
    agent = Agent(AgentConfig(SMALL), seed=0)
    dataset, decisions = _joined(files, tmp_path, agent)
    states = [s for s in load_rollouts(files[1], dataset) if s.episode < 4]
    assert len(decisions) == len(states) == sum(len(e.steps) for e in dataset.episodes[:4])
    words = agent.tokenizer.token_ids
    for decision, state in zip(decisions, states, strict=True):
        step = dataset.episodes[state.episode].steps[state.step]
        tried = {m.action: m for m in [state.expert, *state.branches]}
        assert sum(decision.observed) == len(tried) == 1 + min(3, len(step.admissible) - 1)
        for command, observed, outcome in zip(
            step.admissible, decision.observed, decision.outcomes, strict=True
        ):
            assert observed == (command in tried)
            if command in tried:  # what appears: next-observation tokens not seen now
                appear = set(words(tried[command].next_text)) - set(words(step.text))
                assert outcome == sorted(appear)
            else:
                assert outcome == []
        assert decision.observed[decision.target] == 1  # the expert's own move is always tried
    # Under the ``next`` target the outcome is the whole next observation.
    _, whole = _joined(files, tmp_path, agent, target="next")
    expert = whole[0].outcomes[whole[0].target]
    assert expert == sorted(set(words(states[0].expert.next_text)))


def test_observed_outcomes_where_drawn_the_prediction_everywhere_else(files, tmp_path) -> None:
    agent = Agent(AgentConfig(SMALL), seed=0)
    _, decisions = _joined(files, tmp_path, agent)
    chunk = decisions[:8]
    batch = collate([d.state for d in chunk], [d.candidates for d in chunk])
    mask = batch["action_mask"]
    with torch.no_grad():
        z = agent.model.encode(batch).z
        predicted = agent.model.predicted_outcome(z, mask)
        none = mixed_outcome(agent, z, mask, chunk, 0.0, np.random.default_rng(0))
        every = mixed_outcome(agent, z, mask, chunk, 1.0, np.random.default_rng(0))
    assert torch.equal(none.ids, predicted.ids) and torch.equal(none.weights, predicted.weights)
    k = predicted.ids.shape[-1]
    for b, decision in enumerate(chunk):
        for a, (observed, outcome) in enumerate(
            zip(decision.observed, decision.outcomes, strict=True)
        ):
            ids, weights = every.ids[b, a], every.weights[b, a]
            if observed:  # the observed tokens, each with weight 1
                assert ids[ids != 0].tolist() == outcome
                assert weights.sum().item() == len(outcome)
            else:
                assert torch.equal(ids[:k], predicted.ids[b, a])
                assert torch.equal(weights[:k], predicted.weights[b, a])
    # About half of the tried candidates see their observation at share 0.5.
    half = mixed_outcome(agent, z, mask, chunk, 0.5, np.random.default_rng(0))
    fed = (half.weights == 1).any(-1) & ~(predicted.weights == 1).any(-1)
    tried = sum(sum(d.observed) for d in chunk)
    assert 0.2 * tried < fed.sum().item() < 0.8 * tried


def test_scorer_and_model_flag_are_one_choice() -> None:
    assert IWMConfig(scorer="lookahead").model.lookahead
    assert IWMConfig(model=ModelConfig(lookahead=True)).scorer == "lookahead"
    assert IWMConfig().scorer == "consequence" and IWMConfig().model is None
    learner = get_learner("iwm-lookahead")
    config = learner.make_config(out="x", model=ModelConfig(d_model=32))
    assert config.model == ModelConfig(d_model=32, lookahead=True) and config.budget == "matched"
    words = shlex.split(learner.command(config))
    assert "--lookahead" in words
    again = learner.make_config(
        **values_from_args(learner.config, build_parser().parse_args(words[1:]))
    )
    assert again == config
    with pytest.raises(ValueError, match="lookahead_observed must be <= 1"):
        IWMConfig(lookahead_observed=1.5)
    with pytest.raises(ValueError, match="fixes scorer='lookahead'"):
        learner.make_config(scorer="consequence")


def _rewrite(path: Path, checkpoint: dict) -> None:
    payload = io.BytesIO()
    torch.save(checkpoint, payload)
    path.write_bytes(seal(payload.getvalue()))


def test_a_checkpoint_from_before_lookahead_loads_without_it(tmp_path: Path) -> None:
    small = ModelConfig(d_model=32, n_layers=1, ff_dim=64)
    path = Agent(AgentConfig(small)).save(tmp_path / "a.pt")
    checkpoint = torch.load(path, weights_only=True)
    for name in ("lookahead", "lookahead_tokens"):
        del checkpoint["config"]["model"][name]  # as written before the fields existed
    _rewrite(path, checkpoint)
    assert Agent.load(path).config.model == small  # their defaults: the old behaviour
    del checkpoint["config"]["model"]["d_model"]  # any other missing field is still refused
    _rewrite(path, checkpoint)
    with pytest.raises(ValueError, match="missing fields model.d_model"):
        Agent.load(path)


def test_iwm_lookahead_runs_through_the_cli_and_its_checkpoint_acts(files, tmp_path) -> None:
    demos, rollouts = files
    out = tmp_path / "la"
    argv = ["train", HOUSEHOLD, "--learner", "iwm-lookahead", "--demos", str(demos)]
    argv += ["--rollout-file", str(rollouts), "--out", str(out), "--log-dir", str(tmp_path)]
    argv += ["--max-updates", "16", "--wm-updates", "8", "--val-every", "4", "--eval-episodes"]
    argv += ["2", "--no-progress", "--device", "cpu", *TINY_FLAGS]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learner"] == "iwm-lookahead" and metrics["scorer"] == "lookahead"
    assert metrics["updates"] == metrics["wm_updates"] + metrics["bc_updates"] <= 16
    assert 0 <= metrics["val_accuracy_observed"] <= 1 and 0 <= metrics["wm_final_val_f1"] <= 1
    assert "eval" in metrics
    agent = Agent.load(out / "agent.pt")
    assert agent.config.model.lookahead
    again = Agent.load(out / "agent.pt", expected_config=agent.config)
    state = ("put a apple in fridge.", "You are in the kitchen.", [], ["go to fridge 1", "look"])
    assert np.array_equal(agent.state_logits(*state), again.state_logits(*state))
    assert asdict(again.config) == asdict(agent.config)

    # RL warm-started from it scores with the predicted outcomes exactly as the agent acts.
    config = RLConfig(init_from=str(out / "agent.pt"), n_steps=64, device="cpu")
    rl_agent = initial_agent(config)
    env = TokenizedEnv(make(HOUSEHOLD), rl_agent)
    policy = build_ppo(rl_agent, env, config).policy
    obs, info = env.reset(seed=0)
    agent.reset()
    for _ in range(10):
        expected = agent.act(env.last_observation, info, greedy=True)
        index, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
        assert env.commands[int(index)] == expected
        obs, _, terminated, truncated, info = env.step(index)
        if terminated or truncated:
            break
