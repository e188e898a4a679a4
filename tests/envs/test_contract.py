"""Every built-in setting follows the env contract (check_env on both splits).

This is the one place each setting's check_env runs; the per-setting test files test its rules.
"""

from __future__ import annotations

import pytest

from envs import check_env, registered_ids

BUILTIN_IDS = [env_id for env_id in registered_ids() if env_id.startswith("earlyexp/")]


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_check_env(env_id: str) -> None:
    passed = check_env(env_id, instances=20)
    assert len(passed) == 8, passed
