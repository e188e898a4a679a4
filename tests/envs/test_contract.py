"""Every built-in setting follows the env contract (check_env on both splits, and more).

This is the one place the contract's generic properties are tested for every registered
id; the per-setting test files test each setting's own rules. TextWorld ids play a tiny
generated pool (every one of its games, on both splits).
"""

from __future__ import annotations

import random

import pytest
from gymnasium.utils.env_checker import data_equivalence  # what check_env compares with

import envs
from envs import check_env, registered_ids
from tests.envs.helpers import follow_expert, make_env, random_walk, walk_states
from tests.envs.textworld_pools import CASES, GAMES, pool_kwargs

BUILTIN_IDS = [env_id for env_id in registered_ids() if env_id.startswith("earlyexp/")]
#: Reset seeds (per split) of the tests below for the costly ids: a TextWorld step runs a
#: Z-machine (~50x an in-house step), a Minigrid snapshot copies the engine and a BabyAI
#: reset rejection-samples its level (~10x).
FEW_SEEDS = {**dict.fromkeys(CASES, 2), "earlyexp/BabyAI-v0": 6, "earlyexp/DoorKey-v0": 8}
#: (seeds, steps) of the walks whose every state the admissible-commands test checks: about
#: 120 states, 30 on a grid, 4 on TextWorld (where check_env checks 3 more).
WALKS = {
    **dict.fromkeys(CASES, (1, 3)),
    "earlyexp/BabyAI-v0": (6, 4),
    "earlyexp/DoorKey-v0": (6, 4),
}


def _seeds(env_id: str, default: int) -> range:
    return range(min(default, FEW_SEEDS.get(env_id, default)))


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_check_env(env_id: str, request: pytest.FixtureRequest) -> None:
    if env_id in CASES:
        kwargs = pool_kwargs(env_id, request.getfixturevalue("textworld_cache"))
        passed = check_env(env_id, instances=GAMES, env_kwargs=kwargs)
    else:
        passed = check_env(env_id, instances=20)
    assert len(passed) == 8, passed


def test_every_setting_of_the_design_is_registered() -> None:
    eight = {
        f"earlyexp/{name}-v0"
        for name in ("Household", "Cooking", "Lab", "Shop", "WebNav", "Tools", "BabyAI", "DoorKey")
    }
    assert eight <= set(BUILTIN_IDS)


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_no_task_is_done_at_reset(env_id: str, request: pytest.FixtureRequest) -> None:
    for split in envs.SPLITS:
        env = make_env(env_id, split, request)
        for seed in _seeds(env_id, 100):
            _, info = env.reset(seed=seed)
            assert not info["success"] and not all(info["checklist"].values()), (split, seed)


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_expert_solves_from_random_states(env_id: str, request: pytest.FixtureRequest) -> None:
    """The expert acts from any reachable state, not only from its own path: after random
    admissible commands (that do not end the episode) it still solves the task, and success
    means every checklist item holds."""
    for split in envs.SPLITS:
        env = make_env(env_id, split, request)
        for seed in _seeds(env_id, 20):
            rng = random.Random(seed)
            _, info = env.reset(seed=seed)
            info, _ = random_walk(env, info, rng.randrange(1, 25), rng, live=True)
            solved, _, info = follow_expert(env, info)
            assert solved, f"{split} seed {seed}: the expert failed after a random walk"
            assert all(info["checklist"].values()), (split, seed, info["checklist"])


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_admissible_commands_are_distinct_and_accepted(
    env_id: str, request: pytest.FixtureRequest
) -> None:
    """Along walks mixing random and expert commands (to reach deep states), each listed
    command is listed once and accepted."""
    env = make_env(env_id, "train", request)
    seeds, steps = WALKS.get(env_id, (10, 11))
    for info in walk_states(env, range(seeds), steps, expert=0.5):
        actions = info["admissible_actions"]
        assert len(actions) == len(set(actions)), actions
        snapshot = env.get_state()
        for action in actions:
            assert not env.step(action)[4]["invalid_action"], action
            env.set_state(snapshot)


#: Near-misses of a command: its last character dropped, a word appended, upper case.
_NEAR_MISSES = (lambda a: a[:-1], lambda a: a + " 9", lambda a: a + " please", str.upper)


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_invalid_commands_change_nothing(env_id: str, request: pytest.FixtureRequest) -> None:
    """Near-misses of the admissible commands (a character dropped, a word appended, upper
    case) and nonsense are invalid steps: reward 0.0, not ended, the observation says the
    command is not available, and the state (admissible commands, what the next command
    does) is unchanged."""
    env = make_env(env_id, "train", request)
    accepts = getattr(env, "accepts_free_text", lambda command: False)
    for seed in _seeds(env_id, 5):
        rng = random.Random(seed)
        _, info = env.reset(seed=seed)
        info, _ = random_walk(env, info, rng.randrange(0, 6), rng, live=True)
        actions = info["admissible_actions"]
        probe = rng.choice(actions)
        snapshot = env.get_state()
        expected = env.step(probe)
        env.set_state(snapshot)
        near = [f(a) for a in rng.sample(actions, min(3, len(actions))) for f in _NEAR_MISSES]
        for command in ("fly to the moon", *near):
            if command in actions or command.strip() in actions or accepts(command):
                continue
            obs, reward, terminated, truncated, step_info = env.step(command)
            assert step_info["invalid_action"], (seed, command)
            assert reward == 0.0 and not terminated and not truncated, (seed, command)
            assert "not available" in obs["text"], (seed, command, obs["text"])
            assert step_info["admissible_actions"] == actions, (seed, command)
            assert step_info["checklist"] == info["checklist"], (seed, command)
        assert data_equivalence(env.step(probe), expected), seed


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_non_string_action_raises_a_clear_type_error(
    env_id: str, request: pytest.FixtureRequest
) -> None:
    env = make_env(env_id, "train", request)
    _, info = env.reset(seed=0)
    for bad in (0, None, 1.5, b"look", [info["admissible_actions"][0]]):
        with pytest.raises(TypeError, match="text command"):
            env.step(bad)


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_snapshot_restores_into_another_env(env_id: str, request: pytest.FixtureRequest) -> None:
    """A snapshot is exact, stays reusable and restores into a second env, its RNG
    included: a branch from it (random commands, then the expert to the end of the episode)
    replays identically in both envs, and so does the next (unseeded) reset."""
    env, twin = make_env(env_id, "train", request), make_env(env_id, "train", request)
    twin.reset(seed=999)
    for seed in _seeds(env_id, 10):
        rng = random.Random(seed)
        _, info = env.reset(seed=seed)
        info, _ = random_walk(env, info, rng.randrange(0, 8), rng, live=True)
        snapshot = env.get_state()
        branch, outcomes = [], []
        for n in range(200):
            action = rng.choice(info["admissible_actions"]) if n < 4 else env.expert_action()
            outcome = env.step(action)
            branch.append(action)
            outcomes.append(outcome)
            info = outcome[4]
            if outcome[2] or outcome[3]:
                break
        for target in (env, twin):
            target.set_state(snapshot)
            replayed = [target.step(action) for action in branch]
            assert data_equivalence(replayed, outcomes), (seed, target is twin)
        env.set_state(snapshot)
        twin.set_state(snapshot)
        assert data_equivalence(env.reset(), twin.reset()), seed
