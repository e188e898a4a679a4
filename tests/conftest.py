"""Shared fixtures of every test."""

from pathlib import Path

import pytest
import torch

import envs
from envs.textworld_games import game_pool
from tests.envs.textworld_pools import CASES, GAMES


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: one thread is faster, and OpenMP threads crawl when the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def textworld_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the tiny pools of every TextWorld id, both splits (real generation)."""
    root = tmp_path_factory.mktemp("twcache")
    for challenge, difficulty in CASES.values():
        for split in envs.SPLITS:
            game_pool(challenge, split, GAMES, root, **difficulty)
    return root
