"""RL on the language-model agent (``earlyexp train --learner rl --agent lm``): the prompt
adapter, batched scoring equal to acting, a warm start that acts as its checkpoint, a run
from a BC checkpoint end to end through the command line, and the refusals."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from agents import Agent, LMAgent, ModelConfig, load_agent
from agents.lm import new_lm_agent
from benchmarks.cli import main
from envs import make
from learners.data import collect_demos
from learners.lm_rl import LMCandidatePolicy, LMTokenizedEnv
from learners.rl import RLConfig, build_ppo, initial_agent, train_envs
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM, TINY, TINY_FLAGS

pytestmark = REQUIRES_LM

HOUSEHOLD = "earlyexp/Household-v0"


@pytest.fixture(scope="module")
def household_lm() -> LMAgent:
    """An untrained tiny LM of Household (its tokenizer trained on Household's text)."""
    return new_lm_agent(TINY, 0, HOUSEHOLD)


def test_the_adapter_passes_gymnasiums_checker_and_encodes_the_agents_prompt(
    household_lm: LMAgent,
) -> None:
    check_env(LMTokenizedEnv(make(HOUSEHOLD), household_lm), skip_render_check=True)
    env = LMTokenizedEnv(make(HOUSEHOLD), household_lm)
    obs, info = env.reset(seed=3)
    for step in range(4):
        seen = env.last_observation
        prompt = household_lm.encode_prompt(seen["goal"], seen["text"], env.history, env.commands)
        assert obs["state_ids"][: obs["state_len"][0]].tolist() == prompt
        for i, command in enumerate(env.commands):
            ids = household_lm.encode_command(command)
            assert obs["action_ids"][i, : obs["action_lens"][i]].tolist() == ids
        assert not obs["action_lens"][len(env.commands) :].any()
        obs, *_ = env.step(step % len(env.commands))
    assert len(env.history) == 4


def test_batched_scores_equal_each_states_own_score(household_lm: LMAgent) -> None:
    """RL scores a minibatch of states at once (left-padded prompts); acting scores one."""
    env = LMTokenizedEnv(make(HOUSEHOLD), household_lm)
    prompts, commands = [], []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        for step in range(seed * 3):
            obs, *_ = env.step(step % len(env.commands))
        prompts.append(obs["state_ids"][: obs["state_len"][0]].tolist())
        commands.append([household_lm.encode_command(c) for c in env.commands])
    assert len(set(map(len, prompts))) == 4  # the batch needs padding
    with torch.inference_mode():
        batched, hidden = household_lm.command_logprobs(prompts, commands, last_hidden=True)
    assert hidden is not None and hidden.shape == (4, TINY.d_model)
    for scores, prompt, cands in zip(batched, prompts, commands, strict=True):
        single = household_lm.score(prompt, cands)
        np.testing.assert_allclose(scores.double().numpy(), single, atol=1e-4)
        assert int(np.argmax(single)) == int(scores.argmax())


@pytest.fixture(scope="module")
def bc_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LM fine-tuned briefly on 8 corridor demos: a weak but real BC checkpoint."""
    root = tmp_path_factory.mktemp("lm-rl")
    demos = root / "demos.jsonl"
    collect_demos(CORRIDOR, 8, demos, progress=False)
    words = [
        *("train", f"tests.envs.toy_env:{CORRIDOR}", "--learner", "bc"),
        *("--demos", str(demos), "--out", str(root / "bc"), "--log-dir", str(root / "runs")),
        *("--max-updates", "60", "--batch-size", "16", "--learning-rate", "0.003"),
        *("--val-every", "20", "--patience", "2", "--eval-episodes", "0", "--no-progress"),
        *TINY_FLAGS,
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(words) == 0
    return root / "bc" / "agent.pt"


def test_a_warm_started_policy_acts_as_its_checkpoint(bc_checkpoint: Path) -> None:
    config = RLConfig(env_id=CORRIDOR, init_from=str(bc_checkpoint), n_steps=64, n_envs=4)
    agent = initial_agent(config)
    assert isinstance(agent, LMAgent)
    envs = train_envs(config, agent)
    policy = build_ppo(agent, envs, config).policy
    assert isinstance(policy, LMCandidatePolicy) and policy.lm is agent.model
    references = [load_agent(bc_checkpoint) for _ in range(envs.num_envs)]
    obs = envs.reset()
    for _ in range(20):
        adapters = [monitor.env for monitor in envs.envs]
        masks = np.stack(envs.env_method("action_masks"))
        actions, _ = policy.predict(obs, deterministic=True, action_masks=masks)
        for reference, adapter, action in zip(references, adapters, actions, strict=True):
            info = {"admissible_actions": adapter.commands}
            expected = reference.act(adapter.last_observation, info, greedy=True)
            assert adapter.commands[int(action)] == expected
        obs, _, dones, _ = envs.step(actions)
        for reference, done in zip(references, dones, strict=True):
            if done:
                reference.reset()


def test_rl_from_a_bc_checkpoint_runs_end_to_end(bc_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "rl"
    words = [
        *("train", f"tests.envs.toy_env:{CORRIDOR}", "--learner", "rl"),
        *("--init-from", str(bc_checkpoint), "--out", str(out)),
        *("--log-dir", str(tmp_path / "runs"), "--steps", "128", "--n-steps", "64"),
        *("--n-envs", "4", "--batch-size", "32", "--n-epochs", "2", "--learning-rate", "1e-3"),
        *("--eval-every", "64", "--eval-episodes", "6", "--no-progress"),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(words) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learner"] == "rl" and metrics["init_learner"] == "bc"
    assert metrics["env_steps"] == 128 and [p["steps"] for p in metrics["curve"]] == [0, 64, 128]
    trained, start = load_agent(out / "agent.pt"), load_agent(bc_checkpoint)
    assert isinstance(trained, LMAgent) and trained.config == start.config
    before, after = start.model.state_dict(), trained.model.state_dict()
    assert set(before) == set(after)  # the value head is RL's own, not the agent's
    assert any(not torch.equal(after[name], value) for name, value in before.items())
    # earlyexp eval reads the LM checkpoint and plays it as the run evaluated it.
    words = ["eval", str(out / "agent.pt"), "--env", f"tests.envs.toy_env:{CORRIDOR}"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main([*words, "--episodes", "6", "--json"]) == 0
    evaluated = json.loads(printed.getvalue())
    assert evaluated["greedy"] == metrics["eval"]["greedy"]


def test_rl_refuses_an_agent_that_reflects_and_a_checkpoint_of_the_other_kind(
    bc_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="--lm-reflect: PPO scores the admissible commands"):
        RLConfig(env_id=CORRIDOR, model=replace(TINY, reflect=True))
    reflecting = load_agent(bc_checkpoint)
    reflecting.config = replace(reflecting.config, reflect=True)
    path = reflecting.save(tmp_path / "sr.pt", meta=reflecting.meta)
    with pytest.raises(ValueError, match="does not train a language-model agent that reflects"):
        initial_agent(RLConfig(env_id=CORRIDOR, init_from=str(path)))
    config = RLConfig(env_id=CORRIDOR, init_from=str(bc_checkpoint), model=ModelConfig())
    with pytest.raises(ValueError, match=r"it is an agent of --agent lm.*policy model"):
        initial_agent(config)
    model_agent = Agent(seed=0).save(tmp_path / "bc.pt", meta={"env_id": CORRIDOR})
    config = RLConfig(env_id=CORRIDOR, init_from=str(model_agent), model=TINY)
    with pytest.raises(ValueError, match=r"it is an agent of the policy model.*--agent lm"):
        initial_agent(config)
