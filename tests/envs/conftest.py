"""Fixtures of the env tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import envs
from envs.textworld_games import game_pool
from tests.envs.textworld_pools import CASES, GAMES


@pytest.fixture(scope="session")
def textworld_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the tiny pools of every TextWorld id, both splits (real generation)."""
    root = tmp_path_factory.mktemp("twcache")
    for challenge, difficulty in CASES.values():
        for split in envs.SPLITS:
            game_pool(challenge, split, GAMES, root, **difficulty)
    return root
