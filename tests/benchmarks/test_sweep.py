"""The benchmark sweep: its plan, the smoke profile end to end, resume after a kill, Ray."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import resolve_device
from benchmarks import sweep
from benchmarks.results import RESULTS_FILE, config_hash, read_results
from tests.envs.textworld_pools import CASES, GAMES

SMOKE = sweep.PROFILES["smoke"]
USER_LEARNER = "tests.learners.user_learner:bc-long"
ROOT = Path(__file__).parents[2]


ON_DEMOS = ["bc", "dagger", "iwm-matched", "iwm-extra"]
WARM_START = {"rl-from-bc": "bc", "rl-from-iwm": "iwm-matched"}


def test_plan_covers_the_grid_once() -> None:
    envs_ = ["earlyexp/Household-v0", "earlyexp/Shop-v0"]
    first, second = sweep.plan(SMOKE, envs_, list(SMOKE.learners))
    per_seed = len(ON_DEMOS) * len(SMOKE.budgets) + 1  # + rl-scratch
    assert len(first) == len(envs_) * len(SMOKE.seeds) * per_seed
    assert len(second) == len(envs_) * len(SMOKE.seeds) * 2
    hashes = [config_hash(spec) for spec in first + second]
    assert len(set(hashes)) == len(hashes)
    # every warm start names an imitation run of the first phase, at the profile's rl budget
    first_hashes = {config_hash(spec): spec for spec in first}
    for spec in second:
        source = first_hashes[spec["init_hash"]]
        assert source["learner"] == WARM_START[spec["learner"]] == spec["init_learner"]
        assert (source["env_id"], source["seed"]) == (spec["env_id"], spec["seed"])
        assert source["budget"] == SMOKE.rl_budget


def test_budgets_are_fractions_of_the_full_budget() -> None:
    quick = sweep.PROFILES["quick"]
    assert [sweep.episodes_at(quick, b) for b in quick.budgets] == [12, 25, 50]
    assert sweep.episodes_at(SMOKE, 0.01) == 1


def test_bad_selections_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown learner"):
        sweep.check_selection(SMOKE, ["bc", "ppo"])
    with pytest.raises(ValueError, match="rl-from-iwm warm-starts from iwm-matched"):
        sweep.check_selection(SMOKE, ["bc", "rl-from-iwm"])
    with pytest.raises(ValueError, match="unknown env id"):
        sweep.sweep(SMOKE, "unused", env_ids=["earlyexp/Nope-v0"], learners=["bc"])


def test_smoke_profile_end_to_end(
    tmp_path: Path, textworld_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every setting x every learner of the smoke profile, end to end, in its smallest real
    version (the suite's heaviest test): the full demo budget only, one evaluation episode
    per policy, and RL evaluated at its start and end only. The rest of the smoke profile is
    the same code on other numbers: its two budgets and three evaluation episodes run in
    test_a_killed_sweep_resumes_without_losing_or_duplicating and
    tests/test_readme.py::test_readme_user_learner_example, RL's evaluations in between in
    tests/benchmarks/test_interrupt.py and tests/learners/test_rl.py."""
    # the smoke profile's TextWorld pools are the tests' tiny pools: reuse their games
    for env_id, (_, difficulty) in CASES.items():
        assert SMOKE.env_kwargs[env_id] == {"games": GAMES, **difficulty}
    monkeypatch.setenv("EARLYEXP_CACHE_DIR", str(textworld_cache))
    steps = SMOKE.per_learner["rl-scratch"]["steps"]
    profile = sweep.customize(
        SMOKE,
        demos=[SMOKE.full_budget],
        values=[
            "eval_episodes=1",
            *(f"{learner}.eval_every={steps}" for learner in ("rl-scratch", *WARM_START)),
        ],
    )
    assert profile.budgets == (1.0,) and profile.rl_budget == 1.0
    outcome = sweep.sweep(profile, tmp_path, executor=sweep.local_executor(2), progress=False)
    assert outcome.failures == []
    rows = read_results(tmp_path / RESULTS_FILE).rows
    first, second = sweep.plan(profile, list(sweep.SETTINGS), list(SMOKE.learners))
    assert outcome.finished == len(rows) == len(first) + len(second)
    assert {row["env_id"] for row in rows} == set(sweep.SETTINGS)
    for env_id in sweep.SETTINGS:
        assert {row["learner"] for row in rows if row["env_id"] == env_id} == set(SMOKE.learners)
    for row in rows:
        assert 0.0 <= row["success"] <= 1.0 and row["expert_success"] == 1.0
        assert row["versions"]["torch"] and row["versions"]["commit"] and row["versions"]["cpu"]
        assert 0 < row["cpu_seconds"] < 1.5 * row["seconds"] + 1  # one torch thread a run
        assert row["device"].split(":")[0] == resolve_device("auto").type  # the default, auto
        assert "eval" not in row["metrics"] and row["metrics"].get("device") == row["device"]
        if row["kind"] != "rl":  # the learner's own record, kept in the results file
            assert row["metrics"]["updates"] == row["updates"] > 0
    rl = [row for row in rows if row["kind"] == "rl"]
    for row in rl:  # evaluated before training and after its last update
        assert len(row["curve"]) == 2 and row["curve"][0][0] == 0 <= steps <= row["curve"][1][0]
    assert list((tmp_path / "tensorboard").iterdir())
    # a second invocation finds everything done
    again = sweep.sweep(profile, tmp_path, executor=sweep.local_executor(2), progress=False)
    assert (again.finished, again.skipped) == (0, len(rows))


def _bench(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.cli",
        "bench",
        "--profile",
        "smoke",
        "--envs",
        "earlyexp/Household-v0",
        "earlyexp/Shop-v0",
        "--learners",
        "bc",
        "--seeds",
        "0",
        "1",
        "--jobs",
        "1",
        *("--reps", "100", "--poi-reps", "20"),  # the report's bootstraps: small, fast
        "--out",
        str(out),
    ]


def test_a_killed_sweep_resumes_without_losing_or_duplicating(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = tmp_path / RESULTS_FILE
    process = subprocess.Popen(
        _bench(tmp_path), env=env, start_new_session=True, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (results.exists() and results.read_text().count("\n") >= 1):
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no run finished within 2 minutes"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = len(read_results(results).rows)
    assert 1 <= killed_at < 8
    with results.open("ab") as f:
        f.write(b'{"hash": "torn')  # as if the kill had hit mid-append
    finished = subprocess.run(_bench(tmp_path), env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "torn" in finished.stderr
    rows = read_results(results).rows
    hashes = [row["hash"] for row in rows]
    assert len(rows) == 8 and len(set(hashes)) == 8  # 2 envs x 2 budgets x 2 seeds
    assert f"{8 - killed_at} runs finished, {killed_at} already done" in finished.stdout
    assert (tmp_path / "report.md").exists()


def test_ray_backend_on_a_local_instance_runs_a_user_env_and_learner(tmp_path: Path) -> None:
    # A user's env and learner, given as module:id and module:name, as `earlyexp bench`
    # takes them: fresh Ray workers must import the modules that register them (PYTHONPATH
    # stands in for a package).
    ray = pytest.importorskip("ray")
    envs_ = ["tests.envs.toy_env:toy/Corridor-v0"]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    try:
        remote = sweep.sweep(
            SMOKE,
            tmp_path / "ray",
            env_ids=envs_,
            learners=["bc", USER_LEARNER],
            executor=sweep.ray_executor(None),
            progress=False,
        )
    finally:
        ray.shutdown()
    local = sweep.sweep(
        SMOKE,
        tmp_path / "local",
        env_ids=envs_,
        learners=["bc", USER_LEARNER],
        executor=sweep.local_executor(1),
        progress=False,
    )
    assert remote.failures == [] and remote.finished == local.finished == 4
    by_hash = {r["hash"]: r for r in read_results(tmp_path / "local" / RESULTS_FILE).rows}
    for row in read_results(tmp_path / "ray" / RESULTS_FILE).rows:
        assert row["env_id"] == "toy/Corridor-v0"
        assert row["learner"] in ("bc", USER_LEARNER)
        twin = by_hash[row["hash"]]
        # the same run function on the same config: the same result, on either backend
        assert json.dumps([row["success"], row["updates"]]) == json.dumps(
            [twin["success"], twin["updates"]]
        )


def test_prepare_recollects_data_of_an_older_format(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0

    env_id = "toy/Corridor-v0"
    sweep.prepare(SMOKE, env_id, tmp_path, {"2"}, 3)
    data = sweep.data_dir(tmp_path, env_id)
    current = {name: (data / name).read_bytes() for name in ("demos.jsonl", "rollouts-k2.jsonl")}
    for name, content in current.items():  # what an earlier earlyexp (format version 1) left
        (data / name).write_bytes(content.replace(b'"version": 2', b'"version": 1', 1))
    sweep.prepare(SMOKE, env_id, tmp_path, {"2"}, 3)
    assert {name: (data / name).read_bytes() for name in current} == current
    err = capsys.readouterr().err
    assert err.count("written by an older earlyexp; collecting it again") == 2, err


def _hashes(profile: sweep.Profile, learner: str) -> list[str]:
    first, second = sweep.plan(profile, ["earlyexp/Household-v0"], list(profile.learners))
    return [config_hash(s) for s in first + second if s["learner"] == learner]


def test_a_run_hash_covers_only_its_learners_own_fields() -> None:
    more_wm = sweep.customize(SMOKE, values=["wm_updates=5"])
    assert _hashes(more_wm, "bc") == _hashes(SMOKE, "bc")
    assert _hashes(more_wm, "dagger") == _hashes(SMOKE, "dagger")
    assert _hashes(more_wm, "rl-scratch") == _hashes(SMOKE, "rl-scratch")
    assert set(_hashes(more_wm, "iwm-matched")).isdisjoint(_hashes(SMOKE, "iwm-matched"))
    # rl-from-iwm starts from a changed run, so it is a changed run too; rl-from-bc is not
    assert _hashes(more_wm, "rl-from-bc") == _hashes(SMOKE, "rl-from-bc")
    assert _hashes(more_wm, "rl-from-iwm") != _hashes(SMOKE, "rl-from-iwm")
    # a per-learner value changes that learner only
    one = sweep.customize(SMOKE, values=["iwm-extra.max_updates=9"])
    assert _hashes(one, "iwm-matched") == _hashes(SMOKE, "iwm-matched")
    assert set(_hashes(one, "iwm-extra")).isdisjoint(_hashes(SMOKE, "iwm-extra"))
    spec = sweep.run_spec(SMOKE, "earlyexp/Household-v0", "bc", 0, 1.0)
    assert "wm_updates" not in spec["config"] and "k" not in spec["config"]


def test_customize_sets_the_grid_and_values_per_field_type() -> None:
    custom = sweep.customize(
        SMOKE, demos=[25, 50, 200], seeds=[4], values=["k=3", "dagger.iterations=2"]
    )
    assert custom.full_budget == 200 and custom.budgets == (0.125, 0.25, 1.0)
    assert [sweep.episodes_at(custom, b) for b in custom.budgets] == [25, 50, 200]
    spec = sweep.run_spec(custom, "earlyexp/Household-v0", "iwm-matched", 4, 0.25)
    assert spec["config"]["k"] == "3" and spec["rollouts_k"] == "3"
    assert (
        sweep.run_spec(custom, "earlyexp/Household-v0", "dagger", 4, 1.0)["config"]["iterations"]
        == 2
    )
    with pytest.raises(ValueError, match="max_updates='many': expected int"):
        sweep.plan(sweep.customize(SMOKE, values=["max_updates=many"]), ["toy/x"], ["bc"])
    with pytest.raises(ValueError, match="max_update is no field of any learner's config"):
        sweep.check_selection(sweep.customize(SMOKE, values=["max_update=5"]), ["bc"])
    with pytest.raises(ValueError, match="unknown learner 'bc-typo'"):
        sweep.check_selection(sweep.customize(SMOKE, values=["bc-typo.k=2"]), ["bc"])


def test_a_rows_command_reproduces_its_run(tmp_path: Path, capsys) -> None:
    """The ``earlyexp train`` command stored in a results row trains the same agent."""
    from benchmarks.cli import main

    outcome = sweep.sweep(
        sweep.customize(SMOKE, seeds=[1], demos=[4]),
        tmp_path / "bench",
        env_ids=["tests.envs.toy_env:toy/Corridor-v0"],
        learners=["bc", "iwm-matched"],
        executor=sweep.local_executor(1),
        progress=False,
    )
    assert outcome.failures == []
    for row in read_results(tmp_path / "bench" / RESULTS_FILE).rows:
        words = shlex.split(row["command"])
        assert words[:2] == ["earlyexp", "train"] and "--d-model" in words
        again = tmp_path / row["learner"]
        assert words[2] == "tests.envs.toy_env:toy/Corridor-v0"  # as given: works anywhere
        assert main([*words[1:], "--out", str(again), "--log-dir", str(tmp_path / "tb")]) == 0
        first = json.loads((tmp_path / "bench" / "runs" / row["hash"] / "metrics.json").read_text())
        second = json.loads((again / "metrics.json").read_text())
        for key in ("updates", "val_accuracy", "val_nll", "eval"):
            assert first[key] == second[key], (row["learner"], key)
