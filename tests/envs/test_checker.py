"""check_env accepts a contract env and catches each way of breaking the contract."""

from __future__ import annotations

import pytest

from envs import ContractError, check_env, make, register
from tests.envs.toy_env import CorridorEnv


def test_toy_env_passes() -> None:
    passed = check_env("toy/Corridor-v0")
    assert "expert solves 20 test instances" in passed
    assert "test instances are not train instances" in passed


class LazyExpert(CorridorEnv):
    def expert_action(self) -> str:
        return self.admissible_actions()[0]


class LeakyInvalid(CorridorEnv):
    def step(self, action):
        if isinstance(action, str) and action not in self._admissible and self.world.position > 0:
            self.world.position -= 1  # an invalid command that moves the agent
        return super().step(action)


class AcceptsNumbers(CorridorEnv):
    def step(self, action):
        return super().step(str(action))


class ForgetfulSnapshot(CorridorEnv):
    def get_state(self):
        state = super().get_state()
        del state["rng"]
        return state

    def set_state(self, state):
        self.world = state["world"]
        self._text = state["text"]
        self._admissible = state["admissible"]
        self._done = False
        self.world.position = 0  # restores the wrong position


class SameTestInstances(CorridorEnv):
    def _generate(self):
        self.split = "train"
        return super()._generate()


class IgnoresSeed(CorridorEnv):
    def _generate(self):
        goal, text = super()._generate()
        self.world.length, self.world.door = 8, 2
        return "open the door at cell 2.", self._describe()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (LazyExpert, "expert"),
        (LeakyInvalid, "invalid command"),
        (AcceptsNumbers, "non-string action"),
        (ForgetfulSnapshot, "snapshot"),
        (IgnoresSeed, "determinism"),
    ],
)
def test_checker_catches_broken_envs(broken: type, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        check_env(broken(split="train"), instances=5)


def test_checker_catches_split_leak() -> None:
    register("toy/SplitLeak-v0", f"{__name__}:SameTestInstances", max_episode_steps=30)
    with pytest.raises(ContractError, match="splits"):
        check_env("toy/SplitLeak-v0", instances=10)


def test_knowledge_check_only_where_a_knowledge_split_is_declared() -> None:
    # the knowledge split's own checks: tests/envs/test_knowledge_split.py
    assert check_env("toy/Corridor-v0", instances=5)[-1] == "test instances are not train instances"
    with pytest.raises(ValueError, match="unknown split 'novel'; expected one of train, test"):
        make("toy/Corridor-v0", split="novel")
