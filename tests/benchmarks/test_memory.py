"""The memory benchmark measures a run's peak RSS in a fresh child (smoke profile, one env)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import memory, sweep
from benchmarks.results import config_hash

SMOKE = sweep.PROFILES["smoke"]
FULL = sweep.PROFILES["full"]  # a profile with warm starts


def test_plan_runs_each_warm_start_source_before_it() -> None:
    envs_ = ["earlyexp/Household-v0"]
    learners = list(FULL.learners)
    on_demos = ["bc", "dagger", "iwm-matched", "iwm-extra"]
    specs = memory.memory_plan(FULL, envs_, learners, budget=1.0)
    # four imitation runs at 1.0, the BC and IWM runs RL starts from (0.25), three RL runs
    assert [(s["learner"], s.get("budget")) for s in specs[:6]] == [
        *((name, 1.0) for name in on_demos),
        ("bc", FULL.rl_budget),
        ("iwm-matched", FULL.rl_budget),
    ]
    hashes = [config_hash(spec) for spec in specs]
    for i, spec in enumerate(specs):
        if spec.get("init_hash"):
            assert spec["init_hash"] in hashes[:i]
    # at the warm starts' own budget the measured runs are their sources: nothing extra
    assert len(memory.memory_plan(SMOKE, envs_, learners, budget=SMOKE.rl_budget)) == 7


def test_outside_a_profiles_focus_only_the_baseline_is_measured() -> None:
    quick = sweep.PROFILES["quick"]
    specs = memory.memory_plan(quick, list(sweep.SETTINGS), list(quick.learners), budget=1.0)
    focus = [s["learner"] for s in specs if s["env_id"] in quick.focus]
    assert sorted(focus) == sorted(quick.learners)
    assert {s["learner"] for s in specs if s["env_id"] not in quick.focus} == {"bc"}
    assert len(specs) == len(quick.learners) + len(sweep.SETTINGS) - 1


def test_one_run_is_measured_above_the_baseline_and_under_4_gib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "memory.json"
    argv = ["--profile", "smoke", "--envs", "earlyexp/Household-v0", "--learners", "bc"]
    code = memory.main([*argv, "--work", str(tmp_path / "work"), "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert (row["env_id"], row["learner"], row["budget"], row["error"]) == (
        "earlyexp/Household-v0",
        "bc",
        1.0,
        None,
    )
    assert result["baseline_mib"] > 0
    assert result["baseline_mib"] < row["peak_mib"] < memory.LIMIT_BYTES / 1024**2
    assert row["over_baseline_mib"] == pytest.approx(row["peak_mib"] - result["baseline_mib"])
    assert row["wall_s"] > row["run_s"] > 0
    assert result["largest"] == row and result["under_limit"] is True
    printed = capsys.readouterr().out
    assert "| earlyexp/Household-v0 | bc | 1.0 |" in printed
    assert "Largest run: earlyexp/Household-v0 bc (budget 1.0, seed 0)" in printed
    assert "under 4 GiB: yes" in printed


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_the_parents_memory_does_not_count_as_the_childs() -> None:
    # Linux carries a process's pre-exec high-water mark over to ru_maxrss, so a spawned
    # child's ru_maxrss is at least the parent's RSS at the fork; VmHWM is the child's own.
    held = bytearray(512 * 1024**2)
    held[::4096] = b"\1" * len(range(0, len(held), 4096))  # touch every page
    baseline = memory.measure_child()
    assert baseline["peak_source"] == "VmHWM"
    assert baseline["ru_maxrss_mib"] > 512
    assert baseline["peak_mib"] < baseline["ru_maxrss_mib"] - 256
    del held
