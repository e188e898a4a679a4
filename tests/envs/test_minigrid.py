"""Tests of the Minigrid settings (earlyexp/BabyAI-v0, earlyexp/DoorKey-v0) and their adapter.

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Door, Key
from minigrid.minigrid_env import MiniGridEnv

import envs
from envs.babyai import BABYAI_LEVELS, BabyAIEnv, target_pairs
from envs.doorkey import DOORKEY_LEVELS, DoorKeyEnv
from envs.minigrid_adapter import COMMANDS, HELD_OUT_PAIRS, describe_view
from tests.envs.helpers import follow_expert

IDS = {"earlyexp/BabyAI-v0": (BabyAIEnv, 64), "earlyexp/DoorKey-v0": (DoorKeyEnv, 100)}


# -- text rendering ------------------------------------------------------------------------
class _Room(MiniGridEnv):
    """A hand-built 7x7 room: agent at (3, 4) facing up, a red ball ahead-left, a locked
    yellow door in the far wall, a purple box behind the agent (out of view)."""

    def __init__(self) -> None:
        super().__init__(mission_space=MissionSpace(mission_func=lambda: "look"), grid_size=7)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.put_obj(Ball("red"), 2, 2)
        self.put_obj(Door("yellow", is_locked=True), 5, 0)
        self.put_obj(Box("purple"), 3, 5)
        self.agent_pos, self.agent_dir = (3, 4), 3
        self.mission = "look"


def test_hand_built_view_renders_exact_sentence() -> None:
    room = _Room()
    room.reset(seed=0)
    room.carrying = Key("green")
    assert describe_view(room.gen_obs()["image"]) == (
        "You see a wall 3 steps left, a wall 3 steps right, a red ball 2 steps forward and "
        "1 step left, a wall 4 steps forward, a locked yellow door 4 steps forward and 2 "
        "steps right. You carry a green key."
    )
    # an unlocked, open door is named as open; nothing carried, nothing said about it
    room.carrying = None
    door = room.grid.get(5, 0)
    door.is_locked, door.is_open = False, True
    assert describe_view(room.gen_obs()["image"]) == (
        "You see a wall 3 steps left, a wall 3 steps right, a red ball 2 steps forward and "
        "1 step left, a wall 4 steps forward, an open yellow door 4 steps forward and 2 "
        "steps right."
    )
    # facing right: the box behind is now beside the agent; the ball and door are out of view
    room.agent_dir = 0
    assert describe_view(room.gen_obs()["image"]) == (
        "You see a purple box 1 step right, a wall 2 steps right, a wall 3 steps forward."
    )


@pytest.mark.parametrize("env_cls", [BabyAIEnv, DoorKeyEnv])
def test_text_is_the_engine_view(env_cls) -> None:
    env = env_cls()
    obs, info = env.reset(seed=5)
    rng = random.Random(5)
    for _ in range(30):
        engine_image = env.world.engine.gen_obs()["image"]
        assert np.array_equal(obs["image"], engine_image)
        assert obs["image"].dtype == np.uint8 and obs["image"].shape == (7, 7, 3)
        assert obs["text"] == describe_view(engine_image)
        assert obs["goal"] == env.world.engine.mission
        assert obs["text"].isascii() and len(obs["text"].split()) < 120
        obs, _, terminated, _, info = env.step(rng.choice(info["admissible_actions"]))
        if terminated:
            break


# -- registration, arguments, rewards ---------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_registered_cap_and_commands(env_id: str) -> None:
    env = envs.make(env_id)
    assert env.spec.max_episode_steps == IDS[env_id][1]
    _, info = env.reset(seed=0)
    assert info["admissible_actions"] == list(COMMANDS)
    assert "done" not in " ".join(COMMANDS)


def test_engine_step_limit_never_truncates() -> None:
    env = BabyAIEnv(levels=("GoToObj",))
    env.reset(seed=0)
    native = env.world.native_max_steps
    for _ in range(native + 10):  # turning in place never completes the mission
        _, _, terminated, truncated, _ = env.step("turn left")
        assert not terminated and not truncated
    assert env.world.engine.step_count == native + 10


def test_bad_arguments() -> None:
    for cls, level in ((BabyAIEnv, "GoToLava"), (DoorKeyEnv, "DoorKey-16x16")):
        with pytest.raises(ValueError, match="unknown level"):
            cls(levels=(level,))
    with pytest.raises(ValueError, match="unknown split"):
        DoorKeyEnv(split="validation")


@pytest.mark.parametrize("env_cls", [BabyAIEnv, DoorKeyEnv])
def test_shaped_reward_option(env_cls) -> None:
    plain, shaped = env_cls(), env_cls(shaped_reward=True)
    for seed in range(4):
        _, info = plain.reset(seed=seed)
        _, shaped_info = shaped.reset(seed=seed)
        ok, n, _ = follow_expert(plain, info, 100)
        assert ok
        for _ in range(n - 1):
            assert shaped.step(shaped.expert_action())[1] == 0.0
        _, reward, terminated, _, shaped_info = shaped.step(shaped.expert_action())
        assert terminated and shaped_info["success"]
        assert reward == pytest.approx(1 - 0.9 * n / shaped.world.native_max_steps)
        assert 0.1 < reward < 1.0


def test_destroying_the_target_box_fails() -> None:
    env = DoorKeyEnv(levels=("UnlockPickup",))
    _, info = env.reset(seed=0)
    while not (env.expert_action() == "pick up" and env.world.door.is_open):
        _, _, _, _, info = env.step(env.expert_action())
    _, reward, terminated, _, info = env.step("toggle")
    assert terminated and reward == 0.0 and not info["success"]
    assert not info["checklist"][f"carrying the {env.world.target.color} box"]


# -- experts -------------------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
@pytest.mark.parametrize("env_id", IDS)
def test_expert_solves_every_instance(env_id: str, split: str) -> None:
    cls, cap = IDS[env_id]
    env = cls(split)
    lengths = []
    for seed in range(40):
        _, info = env.reset(seed=seed)
        ok, n, _ = follow_expert(env, info, cap)
        assert ok, (split, seed, env.world.level, env.goal)
        lengths.append(n)
    assert max(lengths) <= cap // 2


@pytest.mark.parametrize("env_cls", [BabyAIEnv, DoorKeyEnv])
def test_expert_from_any_reachable_state(env_cls) -> None:
    """BabyAI's expert keeps a plan between steps (BabyAIBot's stack, in the snapshot),
    DoorKey's replans each step: after random walks with expert steps mixed in and
    snapshots restored midway, each still solves every episode that has not failed."""
    solved = failed = 0
    for split in envs.SPLITS:
        env = env_cls(split)
        for seed in range(30):
            _, info = env.reset(seed=seed)
            rng = random.Random(seed)
            terminated = False
            for _ in range(rng.randrange(3, 25)):
                if rng.random() < 0.3:  # branch off and come back
                    snap = env.get_state()
                    env.step(rng.choice(COMMANDS))
                    env.set_state(snap)
                expert = env.expert_action() if rng.random() < 0.3 else None
                _, _, terminated, _, info = env.step(expert or rng.choice(COMMANDS))
                if terminated:
                    break
            if terminated:
                failed += env.world.failed
                continue
            ok, _, _ = follow_expert(env, info, 100)
            assert ok, (split, seed, env.world.level, env.goal)
            solved += 1
    assert solved >= 30, (solved, failed)


# -- splits --------------------------------------------------------------------------------
def test_babyai_split_partition() -> None:
    levels = {}
    for split in envs.SPLITS:
        env = BabyAIEnv(split)
        goals = set()
        for seed in range(120):
            obs, _ = env.reset(seed=seed)
            pairs = target_pairs(env.world.engine)
            assert bool(pairs & HELD_OUT_PAIRS) == (split == "test"), (split, obs["goal"])
            goals.add(obs["goal"])
            levels.setdefault(split, set()).add(env.world.level)
        if split == "train":
            train_goals = goals
    assert levels["train"] == levels["test"] == set(BABYAI_LEVELS)
    # colored held-out targets are named in test missions only
    for color, kind in HELD_OUT_PAIRS:
        assert not any(f"{color} {kind}" in g for g in train_goals)
    assert any(f"{c} {k}" in g for g in goals for c, k in HELD_OUT_PAIRS)


def test_doorkey_split_partition() -> None:
    seen: dict[str, set] = {"train": set(), "test": set()}
    for split in envs.SPLITS:
        env = DoorKeyEnv(split)
        for seed in range(80):
            env.reset(seed=seed)
            w = env.world
            if w.target is not None:
                pair = (w.target.color, w.target.type)
                assert (pair in HELD_OUT_PAIRS) == (split == "test")
                seen[split].add(pair)
            else:
                door = tuple(int(v) for v in w.door.cur_pos)
                assert (sum(door) % 3 == 0) == (split == "test")
                seen[split].add((w.level, door))
    assert not seen["train"] & seen["test"]
    assert {lv for lv, *_ in seen["test"] if lv in DOORKEY_LEVELS} == {"DoorKey-5x5", "DoorKey-6x6"}
