"""The benchmark with the language-model agent: the lm profiles' configs are valid for every
learner they run, and a sweep of the tiny LM runs every arm end to end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents import LMConfig
from benchmarks import sweep
from benchmarks.results import RESULTS_FILE, read_results
from learners import get_learner
from tests.devices import NEEDS_GPU
from tests.learners.lm_corridor import CORRIDOR, REQUIRES_LM, TINY

pytestmark = REQUIRES_LM


@pytest.mark.parametrize("name", ["lm", "lm-bc"])
def test_every_run_of_an_lm_profile_trains_the_tiny_lm(name: str) -> None:
    profile = sweep.PROFILES[name]
    for phase in sweep.plan(profile, list(profile.settings), list(profile.learners)):
        for spec in phase:
            config = sweep.learner_config(
                profile, spec["env_id"], get_learner(spec["learner"]), seed=spec["seed"]
            )
            assert isinstance(config.model, LMConfig) and config.model.model == "tiny"


def _tiny_lm_profile() -> sweep.Profile:
    """The lm profile's four arms on the toy corridor, one seed, at the smallest budgets
    that still train."""
    tiny = {k: v for k, v in vars(TINY).items() if k in ("d_model", "ff_dim", "vocab_size")}
    return replace(
        sweep.customize(
            sweep.PROFILES["lm"],
            demos=[6],
            settings=[f"tests.envs.toy_env:{CORRIDOR}"],
            values=[
                "max_updates=20",
                "wm_updates=10",
                "val_every=10",
                "eval_episodes=2",
                "val_episodes=2",
                "k=2",
            ],
        ),
        model={**sweep.PROFILES["lm"].model, **tiny, "corpus_episodes": 4, "max_thought_tokens": 8},
        seeds=(0,),
    )


def test_a_sweep_of_the_tiny_lm_runs_every_arm(tmp_path: Path) -> None:
    """A real sweep of the language-model agent through ``earlyexp bench``'s code."""
    profile = _tiny_lm_profile()
    outcome = sweep.sweep(profile, tmp_path, executor=sweep.local_executor(2), progress=False)
    assert outcome.failures == []
    rows = read_results(tmp_path / RESULTS_FILE).rows
    assert sorted(row["learner"] for row in rows) == sorted(profile.learners)
    for row in rows:
        assert row["config"]["config"]["model"]["model"] == "tiny"
        assert "--agent lm" in row["command"] and 0.0 <= row["success"] <= 1.0
        assert row["updates"] >= 1


@NEEDS_GPU
def test_a_sweep_on_the_gpu_runs_after_its_caller_used_the_gpu(tmp_path: Path) -> None:
    """Forked workers cannot use CUDA once their parent has: on a GPU they are spawned."""
    torch.ones(1, device="cuda").sum().item()  # the caller has used the GPU
    profile = replace(_tiny_lm_profile(), learners=("bc",))
    outcome = sweep.sweep(
        profile, tmp_path, executor=sweep.local_executor(1), progress=False, device="cuda"
    )
    assert outcome.failures == [] and outcome.finished == 1
    (row,) = read_results(tmp_path / RESULTS_FILE).rows
    assert row["device"].startswith("cuda")
