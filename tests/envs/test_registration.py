"""register/make: versioned ids, idempotence, lazy entry points and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import envs
from envs import env_info, make, register, registered_ids


def test_builtin_ids_are_registered() -> None:
    assert "earlyexp/Household-v0" in registered_ids()
    assert env_info("earlyexp/Household-v0").family == "text game"


def test_register_is_idempotent_and_refuses_changes() -> None:
    register(
        "toy/Corridor-v0", "tests.envs.toy_env:CorridorEnv", max_episode_steps=30, family="toy"
    )
    with pytest.raises(ValueError, match="already registered"):
        register("toy/Corridor-v0", "tests.envs.toy_env:CorridorEnv", max_episode_steps=99)


@pytest.mark.parametrize("bad_id", ["Household", "earlyexp/Household", "earlyexp/House hold-v0"])
def test_register_refuses_unversioned_ids(bad_id: str) -> None:
    with pytest.raises(ValueError, match="namespace/Name-vN"):
        register(bad_id, "m:C", max_episode_steps=10)


def test_unknown_id_lists_registered_ids() -> None:
    with pytest.raises(
        ValueError, match="unknown env id 'earlyexp/Nope-v0'; registered: .*Household"
    ):
        make("earlyexp/Nope-v0")


def test_bad_split_and_bad_module() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make("earlyexp/Household-v0", split="dev")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        make("no_such_module:toy/Corridor-v0")


def test_module_colon_id_imports_the_users_module() -> None:
    env = make("tests.envs.toy_env:toy/Corridor-v0", split="test")
    obs, info = env.reset(seed=0)
    assert obs["goal"].startswith("open the door")
    assert env.spec.max_episode_steps == 30


def test_importing_envs_imports_no_setting() -> None:
    code = "import sys, envs; print(any(m.startswith('envs.household') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert envs.registered_ids()
