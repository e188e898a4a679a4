"""RL with MaskablePPO: the token adapter, the candidate policy, warm starts, refusals, runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from agents import Agent, AgentConfig, ModelConfig
from envs import make
from learners import rl
from learners.evaluate import evaluate_agent
from learners.rl import (
    BucketedRolloutBuffer,
    RLConfig,
    TokenizedEnv,
    build_ppo,
    initial_agent,
    train_envs,
    train_rl,
)
from tests.devices import EXACT_ON_CPU

HOUSEHOLD = "earlyexp/Household-v0"
#: A small model: the RL runs below cost seconds, not minutes.
TINY = AgentConfig(ModelConfig(d_model=32, n_heads=2, n_layers=1, ff_dim=64))


def _tiny_config(tmp_path: Path, name: str, **overrides) -> RLConfig:
    values = dict(
        out=str(tmp_path / name),
        log_dir=str(tmp_path / "runs"),
        steps=256,
        n_steps=128,
        n_envs=2,
        batch_size=64,
        n_epochs=1,
        eval_every=128,
        eval_episodes=3,
        progress=False,
    )
    return RLConfig(**{**values, **overrides})


def _checkpoint(path: Path, config: AgentConfig | None = None, env_id: str = HOUSEHOLD) -> Path:
    """An untrained agent saved as a checkpoint of ``env_id``: enough to test loading."""
    return Agent(config, seed=3).save(path, meta={"env_id": env_id, "learner": "bc"})


# -- the adapter -----------------------------------------------------------------------------
def test_adapter_passes_gymnasiums_checker() -> None:
    check_env(TokenizedEnv(make(HOUSEHOLD), Agent(TINY)), skip_render_check=True)


def test_adapter_encodes_what_the_agent_sees_and_decodes_indices() -> None:
    agent = Agent(TINY)
    env = TokenizedEnv(make(HOUSEHOLD), agent)
    raw = make(HOUSEHOLD)
    obs, info = env.reset(seed=5)
    raw_obs, raw_info = raw.reset(seed=5)
    history: list[tuple[str, str]] = []
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert env.observation_space.contains(obs)
        commands = raw_info["admissible_actions"]
        assert env.commands == commands
        assert env.action_masks().tolist() == [i < len(commands) for i in range(64)]
        state = agent.encode_state(raw_obs["goal"], raw_obs["text"], history)
        assert obs["state_ids"][: len(state)].tolist() == state
        assert not obs["state_ids"][len(state) :].any()
        for i, command in enumerate(commands):
            ids = agent.encode_action(command)
            assert obs["action_ids"][i, : len(ids)].tolist() == ids
        assert not obs["action_ids"][len(commands) :].any()

        index = int(rng.integers(len(commands)))
        history.append((raw_obs["text"], commands[index]))
        obs, reward, terminated, truncated, info = env.step(index)
        raw_obs, raw_reward, *_, raw_info = raw.step(commands[index])
        assert info["command"] == commands[index] and reward == raw_reward
        assert env.last_observation == raw_obs
        assert list(env.history) == history
        if terminated or truncated:
            break


def test_a_masked_index_is_an_invalid_step_not_a_crash() -> None:
    env = TokenizedEnv(make(HOUSEHOLD), Agent(TINY))
    env.reset(seed=0)
    before = env.last_observation
    _, reward, terminated, _, info = env.step(63)
    assert info["invalid_action"] and reward == 0.0 and not terminated
    assert env.last_observation["goal"] == before["goal"]
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(64)


def test_more_admissible_commands_than_max_actions_is_a_clear_error() -> None:
    env = TokenizedEnv(make(HOUSEHOLD), Agent(TINY), max_actions=3)
    with pytest.raises(ValueError, match=r"admissible commands.*--max-actions"):
        env.reset(seed=0)


# -- the policy ------------------------------------------------------------------------------
def test_policy_trains_the_model_and_gives_masked_actions_zero_probability() -> None:
    agent = Agent(TINY)
    env = TokenizedEnv(make(HOUSEHOLD), agent)
    policy = build_ppo(agent, env, RLConfig(n_steps=64)).policy
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in policy.model.parameters()}

    obs, _ = env.reset(seed=1)
    masks = env.action_masks()
    obs_tensor, _ = policy.obs_to_tensor(obs)
    probs = policy.get_distribution(obs_tensor, masks[None]).distribution.probs[0]
    assert torch.all(probs[~torch.from_numpy(masks)] == 0)
    assert probs.sum().item() == pytest.approx(1.0)
    # The model's own padding mask alone already excludes absent candidates.
    unmasked = policy.get_distribution(obs_tensor).distribution.probs[0]
    assert torch.all(unmasked[len(env.commands) :] == 0)


def test_warm_started_policy_acts_as_the_checkpoint_agent(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "bc.pt")
    config = RLConfig(init_from=str(path), seed=7, n_steps=64)
    agent = initial_agent(config)
    env = TokenizedEnv(make(HOUSEHOLD), agent)
    policy = build_ppo(agent, env, config).policy
    for name, value in Agent.load(path).model.state_dict().items():
        assert torch.equal(policy.model.state_dict()[name], value), name

    reference = Agent.load(path)
    compared = 0
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        reference.reset()
        while compared < 60:
            expected = reference.act(env.last_observation, info, greedy=True)
            index, _ = policy.predict(obs, deterministic=True, action_masks=env.action_masks())
            assert env.commands[int(index)] == expected
            compared += 1
            obs, _, terminated, truncated, info = env.step(index)
            if terminated or truncated:
                break
    assert compared >= 40


def test_vectorized_warm_start_acts_as_the_checkpoint_in_every_env(tmp_path: Path) -> None:
    """One batched forward for all envs gives each env the checkpoint's greedy command."""
    path = _checkpoint(tmp_path / "bc.pt")
    config = RLConfig(init_from=str(path), seed=7, n_steps=64, n_envs=4)
    agent = initial_agent(config)
    envs = train_envs(config, agent)
    policy = build_ppo(agent, envs, config).policy
    references = [Agent.load(path) for _ in range(envs.num_envs)]
    obs = envs.reset()
    for _ in range(25):
        adapters = [monitor.env for monitor in envs.envs]
        infos = [{"admissible_actions": a.commands} for a in adapters]
        masks = np.stack(envs.env_method("action_masks"))
        actions, _ = policy.predict(obs, deterministic=True, action_masks=masks)
        for reference, adapter, info, action in zip(
            references, adapters, infos, actions, strict=True
        ):
            expected = reference.act(adapter.last_observation, info, greedy=True)
            assert adapter.commands[int(action)] == expected
        obs, _, dones, _ = envs.step(actions)
        for reference, done in zip(references, dones, strict=True):
            if done:
                reference.reset()


def test_ppo_minibatches_are_length_bucketed_and_cover_the_rollout(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path, "buffer", model=TINY.model, n_steps=128, n_envs=4)
    agent = Agent(TINY)
    ppo = build_ppo(agent, train_envs(config, agent), config)
    assert isinstance(ppo.rollout_buffer, BucketedRolloutBuffer)
    ppo.learn(total_timesteps=128)  # fills the buffer with one rollout
    batches = list(ppo.rollout_buffer.get(16))
    lengths = [(b.observations["state_ids"] != 0).sum(1) for b in batches]
    assert sum(len(x) for x in lengths) == 128
    spread = np.mean([float(x.max() - x.min()) for x in lengths])
    everything = torch.cat(lengths)
    assert spread < 0.5 * float(everything.max() - everything.min())


def test_n_steps_must_be_shared_evenly_by_the_envs() -> None:
    with pytest.raises(ValueError, match="multiple of n_envs"):
        RLConfig(n_steps=100, n_envs=8)


# -- warm-start refusals ---------------------------------------------------------------------
def test_a_checkpoint_of_another_env_is_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "other.pt", env_id="earlyexp/Cooking-v0")
    with pytest.raises(ValueError, match="trained on earlyexp/Cooking-v0.*--env-id"):
        train_rl(_tiny_config(tmp_path, "rl", init_from=str(path)))


def test_a_checkpoint_with_another_model_config_is_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "default.pt")  # default ModelConfig
    with pytest.raises(
        ValueError, match=r"model config differs.*model\.d_model: 64 != 32.*Give no model flags"
    ):
        train_rl(_tiny_config(tmp_path, "rl", init_from=str(path), model=TINY.model))


def test_a_checkpoint_without_an_env_record_is_loaded_with_a_warning(tmp_path: Path) -> None:
    path = Agent(TINY, seed=3).save(tmp_path / "bare.pt", meta={})
    with pytest.warns(UserWarning, match="does not record the env"):
        agent = initial_agent(RLConfig(init_from=str(path)))
    assert agent.config == TINY


# -- end to end ------------------------------------------------------------------------------
def test_rl_from_scratch_writes_an_agent_metrics_and_logs(tmp_path: Path) -> None:
    metrics = train_rl(_tiny_config(tmp_path, "scratch", model=TINY.model))

    agent = Agent.load(tmp_path / "scratch" / "agent.pt", expected_config=TINY)
    assert agent.meta["learner"] == "rl" and agent.meta["env_id"] == HOUSEHOLD
    saved = json.loads((tmp_path / "scratch" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["learner"] == "rl" and saved["init_from"] is None
    assert saved["env_steps"] == 256 and saved["env_steps_per_second"] > 0
    assert [point["steps"] for point in saved["curve"]] == [0, 128, 256]
    assert set(saved["eval"]) == {"greedy", "sampled", "random"}
    assert saved["curve"][-1]["success_rate"] == saved["eval"]["greedy"]["success_rate"]

    (run,) = (tmp_path / "runs").iterdir()
    assert "Household-v0__rl__0__" in run.name
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "charts/episodic_return",
        "charts/env_steps_per_s",
        "eval/success_rate",
        "eval/success_rate_sampled",
        "losses/value_loss",
        "losses/policy_gradient_loss",
        "losses/entropy_loss",
        "losses/approx_kl",
    }
    assert expected <= tags, tags
    assert [e.step for e in events.Scalars("eval/success_rate")] == [0, 128, 256]
    assert len(events.Scalars("losses/value_loss")) == 2  # one per update


def test_the_final_evaluation_is_of_the_weights_after_the_last_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last rollout's final step comes before its PPO update: evaluating there would
    report weights one update older than the saved agent's."""
    seen: list[dict[str, torch.Tensor]] = []

    def evaluate(agent: Agent, *args, **kwargs):
        seen.append({k: v.detach().cpu().clone() for k, v in agent.model.state_dict().items()})
        return evaluate_agent(agent, *args, **kwargs)

    monkeypatch.setattr(rl, "evaluate_agent", evaluate)
    metrics = train_rl(_tiny_config(tmp_path, "final", model=TINY.model))
    assert [point["steps"] for point in metrics["curve"]] == [0, 128, 256]
    saved = Agent.load(tmp_path / "final" / "agent.pt").model.state_dict()
    assert len(seen) == 3
    for name, value in saved.items():
        assert torch.equal(seen[-1][name], value), name
    assert any(not torch.equal(seen[1][k], v) for k, v in saved.items())  # 128: one update ago


def test_rl_from_a_checkpoint_starts_from_its_weights(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "bc.pt", TINY)
    config = _tiny_config(tmp_path, "warm", init_from=str(path), steps=128, eval_episodes=0)
    metrics = train_rl(config)
    assert metrics["init_from"] == str(path) and metrics["init_learner"] == "bc"
    assert metrics["curve"] == [] and "eval" not in metrics
    trained = Agent.load(tmp_path / "warm" / "agent.pt", expected_config=TINY)
    start = Agent.load(path)
    changed = [
        name
        for name, value in trained.model.state_dict().items()
        if not torch.equal(value, start.model.state_dict()[name])
    ]
    assert changed  # PPO updated the checkpoint's weights in place


def test_rl_learns_the_toy_corridor(tmp_path: Path) -> None:
    config = _tiny_config(
        tmp_path,
        "toy",
        env_id="toy/Corridor-v0",
        steps=768,
        n_steps=256,
        n_epochs=4,
        learning_rate=1e-3,
        eval_every=768,
        eval_episodes=20,
    )
    metrics = train_rl(replace(config, model=TINY.model))
    start, end = metrics["curve"][0], metrics["curve"][-1]
    chance = metrics["eval"]["random"]["success_rate"]
    # Seen here (seeds 0-2): greedy 0.1-0.3 -> 1.0, sampled ~0.5 -> 0.9+, random 0.55.
    assert end["success_rate"] >= 0.9 > chance, metrics["curve"]
    assert end["success_rate_sampled"] > start["success_rate_sampled"]


@EXACT_ON_CPU
def test_rl_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    def run(name: str) -> dict[str, torch.Tensor]:
        train_rl(_tiny_config(tmp_path, name, steps=128, eval_episodes=0, model=TINY.model))
        return Agent.load(tmp_path / name / "agent.pt").model.state_dict()

    first, second = run("a"), run("b")
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def test_invalid_config_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        train_rl(_tiny_config(tmp_path, "bad", n_steps=0))
    assert not (tmp_path / "runs").exists()
