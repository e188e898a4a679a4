"""Every built-in setting follows the env contract (check_env on both splits).

This is the one place each setting's check_env runs; the per-setting test files test its rules.
TextWorld ids play a tiny generated pool (every one of its games, on both splits).
"""

from __future__ import annotations

import pytest

from envs import check_env, registered_ids
from tests.envs.textworld_pools import CASES, GAMES, pool_kwargs

BUILTIN_IDS = [env_id for env_id in registered_ids() if env_id.startswith("earlyexp/")]


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
