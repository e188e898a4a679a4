"""Shared fixtures of every test.

The suite runs on every core with pytest-xdist (``-n``, set in pyproject.toml): every test
writes under its own ``tmp_path``, and what a session fixture builds once is either per
worker or, for the TextWorld pools, built once under a file lock and shared by the workers.
"""

import fcntl
import os
from pathlib import Path

import pytest
import torch

import envs
from agents import DEVICE_ENV
from envs.textworld_games import game_pool
from tests.envs.textworld_pools import CASES, GAMES


def pytest_configure(config: pytest.Config) -> None:
    # One torch thread per test process (two xdist workers already fill a 2-core machine),
    # from the first module- or session-scoped fixture on, and in every subprocess a test
    # starts (the CLI, sweeps): OpenMP threads crawl when the CPU is shared.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    # --device auto means the CPU here, on a GPU machine too (subprocesses included): the
    # suite's exact results and calibrated margins are the CPU's. The GPU tests ask for cuda
    # by name; `EARLYEXP_DEVICE=cuda pytest` runs the whole suite on the GPU, where the
    # CPU-exact tests skip (tests/devices.py).
    os.environ.setdefault(DEVICE_ENV, "cpu")


#: The slowest tests (CPU seconds, measured under xdist on the 2-core CI machine), queued
#: first so that the workers start on them and the quick tests fill in around them. A test
#: missing here (renamed, new) only runs in its collection place.
SLOWEST = {
    "tests/benchmarks/test_sweep.py::test_smoke_profile_end_to_end": 160,  # + the TextWorld pools
    "tests/learners/test_imitation.py::test_dagger_labels_learner_states_and_beats_random_on_household": 72,
    "tests/benchmarks/test_interrupt.py::test_ctrl_c_stops_the_workers_keeps_finished_runs_and_resumes": 48,
    "tests/learners/test_world_model.py::test_iwm_runs_both_budgets_and_beats_random": 42,
    "tests/test_readme.py::test_readme_user_learner_example": 37,
    "tests/agents/test_lm.py::test_smollm2_loads_from_its_package_and_ranks_commands": 32,
    "tests/benchmarks/test_sweep_lm.py::test_a_sweep_of_the_tiny_lm_runs_every_arm": 30,
    "tests/learners/test_imitation.py::test_bc_beats_random_on_household_test_split": 25,
    "tests/learners/test_lm_rl.py::test_rl_from_a_bc_checkpoint_runs_end_to_end": 25,
    "tests/envs/test_expert_audit.py::test_cooking_twins_with_the_kitchen_elsewhere": 24,
    "tests/learners/test_determinism.py::test_bc_via_the_cli_in_two_processes_is_identical": 22,
    "tests/learners/test_lm_bc.py::test_bc_fine_tunes_the_tiny_lm_past_the_random_policy": 21,
    "tests/benchmarks/test_sweep.py::test_a_killed_sweep_resumes_without_losing_or_duplicating": 19,
    "tests/learners/test_determinism.py::test_the_pipeline_twice_in_one_process_is_identical": 16,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The same order in every worker (xdist checks that the collections agree).
    slowest = sorted(
        (item for item in items if item.nodeid in SLOWEST), key=lambda i: -SLOWEST[i.nodeid]
    )
    rest = [item for item in items if item.nodeid not in SLOWEST]
    items[:] = slowest + rest


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: one thread is faster, and OpenMP threads crawl when the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def textworld_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the tiny pools of every TextWorld id, both splits (real generation).

    Generated once per test run: under xdist the workers share it (the directory above
    their own base temp dirs), the first to need it builds it while the others wait on a
    file lock, and then each finds every entry complete (``game_pool`` rebuilds only
    entries without a completion marker)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "twcache"
    with open(shared / "twcache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for challenge, difficulty in CASES.values():
                for split in envs.SPLITS:
                    game_pool(challenge, split, GAMES, root, **difficulty)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root
