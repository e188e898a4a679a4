"""Evaluation plays episodes in lockstep; batching must not change what a policy does."""

from __future__ import annotations

import numpy as np
import pytest

from agents import Agent
from envs import make
from learners.evaluate import AgentPolicy, RandomPolicy, evaluate

HOUSEHOLD = "earlyexp/Household-v0"


def test_batch_logits_equal_one_state_at_a_time() -> None:
    agent = Agent(seed=3)
    env = make(HOUSEHOLD, split="test")
    states = []
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        history = [("You arrive.", "look")] * seed  # different lengths: padding in the batch
        states.append((obs["goal"], obs["text"], history, info["admissible_actions"]))
    batched = agent.batch_logits(states)
    for state, logits in zip(states, batched, strict=True):
        assert logits.shape == (len(state[3]),)
        np.testing.assert_allclose(logits, agent.state_logits(*state), rtol=0, atol=1e-5)


def test_greedy_results_do_not_depend_on_lockstep() -> None:
    agent = Agent(seed=1)
    one = evaluate(AgentPolicy(agent), HOUSEHOLD, episodes=6, lockstep=1)
    many = evaluate(AgentPolicy(agent), HOUSEHOLD, episodes=6, lockstep=4)
    assert one == many
    assert one.episodes == 6 and one.mean_episode_length > 0


def test_agent_policy_keeps_one_history_per_slot() -> None:
    policy = AgentPolicy(Agent(seed=0))
    env_a, env_b = make(HOUSEHOLD), make(HOUSEHOLD)
    (obs_a, info_a), (obs_b, info_b) = env_a.reset(seed=0), env_b.reset(seed=1)
    policy.reset(0)
    policy.reset(1)
    first = policy.act([0, 1], [obs_a, obs_b], [info_a, info_b])
    assert [h[-1][1] for h in (policy.histories[0], policy.histories[1])] == first
    policy.reset(1)
    assert policy.histories[1] == [] and len(policy.histories[0]) == 1


def test_sampled_and_random_policies_are_seeded() -> None:
    agent = Agent(seed=2)
    for make_policy in (lambda: AgentPolicy(agent, greedy=False, seed=5), lambda: RandomPolicy(5)):
        a = evaluate(make_policy(), HOUSEHOLD, episodes=5)
        b = evaluate(make_policy(), HOUSEHOLD, episodes=5)
        assert a == b


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="episodes must be at least 1"):
        evaluate(RandomPolicy(), HOUSEHOLD, episodes=0)
    with pytest.raises(ValueError, match="lockstep must be at least 1"):
        evaluate(RandomPolicy(), HOUSEHOLD, episodes=1, lockstep=0)
