"""Implicit world modeling on the language-model agent (``earlyexp train --learner iwm
--agent lm``): the world-model stage learns to predict the next observations of held-out
episodes' states after each command, both modes run end to end
through the command line and save a checkpoint that loads, and the combinations that do not
apply to the LM are refused in one line."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import LMAgent, load_agent
from agents.lm import new_lm_agent
from benchmarks.cli import main
from learners.data import load_dataset
from learners.lm_world_model import (
    IMITATION,
    WORLD_MODEL,
    LMExample,
    example_loss,
    lm_world_modeling,
    outcome_examples,
    world_model_nll,
)
from learners.rollouts import load_rollouts
from learners.world_model import IWMConfig
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM, TINY, TINY_FLAGS, corridor_files

pytestmark = REQUIRES_LM


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """16 corridor demos and every alternative command's outcome from each of their states."""
    return corridor_files(tmp_path_factory.mktemp("lm-iwm"))


def _examples(agent: LMAgent, demos: Path, rollouts: Path, episodes: range) -> list[LMExample]:
    dataset = load_dataset(demos)
    states = [
        (dataset.episodes[s.episode], s)
        for s in load_rollouts(rollouts, dataset)
        if s.episode in episodes
    ]
    return list(outcome_examples(agent, states))


def test_world_modeling_predicts_held_out_outcomes(files) -> None:
    demos, rollouts = files
    agent = new_lm_agent(TINY, 0, CORRIDOR)
    train = _examples(agent, demos, rollouts, range(0, 12))
    held_out = _examples(agent, demos, rollouts, range(12, 16))
    assert all(e.target[-1] == agent.tokenizer.eos_id and e.kind == WORLD_MODEL for e in train)
    before = world_model_nll(agent, held_out)
    config = IWMConfig(
        env_id=CORRIDOR,
        model=TINY,
        wm_updates=80,
        wm_batch_size=16,
        wm_learning_rate=3e-3,
        val_every=20,
        patience=4,
        progress=False,
    )
    torch.manual_seed(0)
    fit = lm_world_modeling(agent, train, held_out, config)
    after = world_model_nll(agent, held_out)
    # Seen: 5.65 -> 0.53 nats per next-observation token on the held-out episodes. (Telling
    # one command's outcome from another's, here a cell number one up or down, takes longer:
    # after 200 updates the true outcome cost 0.34 nats per token, another command's 0.44.)
    assert fit["wm_initial_val_loss"] == pytest.approx(before)
    assert after < 0.3 * before and fit["wm_val_loss"] == pytest.approx(after)


def test_the_mixed_loss_weighs_each_kind_by_its_own_tokens(files) -> None:
    demos, rollouts = files
    agent = new_lm_agent(TINY, 0, CORRIDOR)
    world = _examples(agent, demos, rollouts, range(0, 1))[:3]
    imitation = [LMExample(world[0].state[:-3], [5, agent.tokenizer.eos_id], IMITATION)]
    with torch.no_grad():
        both, scalars = example_loss(agent, imitation + world, wm_weight=0.5)
        alone, _ = example_loss(agent, world)
    assert set(scalars) == {"losses/bc_token_nll", "losses/wm_token_nll"}
    assert scalars["losses/wm_token_nll"] == pytest.approx(alone.item(), rel=1e-5)
    expected = scalars["losses/bc_token_nll"] + 0.5 * scalars["losses/wm_token_nll"]
    assert both.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "mixed"])
def test_iwm_trains_the_lm_from_the_command_line(files, tmp_path: Path, mode: str) -> None:
    demos, rollouts = files
    out = tmp_path / mode
    words = [
        *("train", f"tests.envs.toy_env:{CORRIDOR}", "--learner", "iwm", "--mode", mode),
        *("--demos", str(demos), "--rollout-file", str(rollouts), "--out", str(out)),
        *("--max-updates", "60", "--wm-updates", "30", "--batch-size", "16"),
        *("--learning-rate", "0.003", "--wm-learning-rate", "0.003", "--val-every", "15"),
        *("--eval-episodes", "4", "--no-progress", "--log-dir", str(tmp_path / "runs")),
        *TINY_FLAGS,
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(words) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learner"] == "iwm" and metrics["mode"] == mode
    assert metrics["target"] == "text" and metrics["wm_examples"] > 100
    if mode == "sequential":  # matched: stage 1's 30 updates, then at most 30 of BC
        assert metrics["wm_updates"] == 30 and metrics["bc_updates"] <= 30
        assert metrics["wm_val_loss"] < metrics["wm_initial_val_loss"]
    else:  # one stage of 60 updates at most, which learns the world model too
        assert metrics["wm_updates"] == 0 and metrics["bc_updates"] <= 60
    assert metrics["wm_final_val_loss"] < metrics["wm_initial_val_loss"]
    agent = load_agent(out / "agent.pt")
    assert isinstance(agent, LMAgent) and agent.config == TINY
    assert agent.meta["mode"] == mode and agent.meta["val_accuracy"] == metrics["val_accuracy"]
    obs, info = (
        {"goal": "reach the end", "text": "You are at cell 0 of 5."},
        {"admissible_actions": ["go left", "go right"]},
    )
    assert np.isfinite(agent.action_probs(obs, info)).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--learner", "iwm-lookahead", *TINY_FLAGS], "scorer 'lookahead' reads the policy"),
        (["--learner", "iwm", "--mode", "joint", *TINY_FLAGS], "--mode sequential or mixed"),
        (["--learner", "iwm-shuffled", *TINY_FLAGS], "outcomes 'shuffled': the control"),
        (["--learner", "iwm", "--mode", "mixed"], "mode 'mixed' is the language-model agent's"),
    ],
)
def test_combinations_that_do_not_apply_are_refused_in_one_line(
    flags: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", f"tests.envs.toy_env:{CORRIDOR}", *flags]) != 0
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error, error
