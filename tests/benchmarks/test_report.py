"""The benchmark report: per-cell CIs, IQM, probability of improvement, savings, RL, files."""

from __future__ import annotations

import dataclasses
import json
import runpy
import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from rliable import metrics

from benchmarks import cli
from benchmarks import report as rep
from benchmarks.report import (
    ImitationRow,
    RLRow,
    build_report,
    improvement_ci,
    iqm_ci,
    iqm_cis,
    load_rows,
    mean_ci,
    plots,
    write_report,
)

FIXTURE = Path(__file__).parent / "fixtures" / "report_results.jsonl"
SHOP, GRID = "earlyexp/Shop-v0", "earlyexp/Grid-v0"
REPS = 300  # enough for the checks below, keeps the file fast


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("results")
    shutil.copy(FIXTURE, path / "results.jsonl")
    return path


@pytest.fixture(scope="module")
def report(fixture_dir) -> rep.Report:
    return build_report(fixture_dir, reps=REPS, poi_reps=100, seed=0)


def _imitation(env: str, learner: str, budget: float, seed: int, success: float) -> dict:
    return {
        "hash": f"{env}-{learner}-{budget}-{seed}",
        "kind": "imitation",
        "profile": "t",
        "env_id": env,
        "learner": learner,
        "budget": budget,
        "episodes": int(100 * budget),
        "seed": seed,
        "success": success,
        "valid_action_rate": 1.0,
    }


def _write(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- per-cell statistics
def test_identical_seeds_collapse_the_ci_to_the_point(report) -> None:
    cell = report.cell(SHOP, 1.0, "bc")  # seeds: 0.6, 0.6
    assert cell.values == [0.6, 0.6]
    assert (cell.success.mean, cell.success.low, cell.success.high) == pytest.approx((0.6,) * 3)


def test_two_value_cell_ci_lies_within_min_and_max(report) -> None:
    cell = report.cell(SHOP, 0.25, "bc")  # seeds: 0.2, 0.4
    assert cell.success.mean == pytest.approx(0.3)
    assert 0.2 - 1e-12 <= cell.success.low < 0.3 < cell.success.high <= 0.4 + 1e-12
    # A mean of 2 resampled values is 0.2, 0.3 or 0.4: the 95% percentile CI spans the extremes.
    assert (cell.success.low, cell.success.high) == pytest.approx((0.2, 0.4))
    assert cell.episodes == [10] and cell.valid_action_rate == pytest.approx(0.98)


def test_valid_action_rate_is_the_mean_over_seeds(report) -> None:
    assert report.cell(SHOP, 1.0, "bc").valid_action_rate == pytest.approx(0.91)


def test_one_seed_is_its_own_ci_and_the_report_says_so(report) -> None:
    est = report.cell(SHOP, 1.0, "dagger").success
    assert est.n == 1 and est.point_only and est.low == est.high == est.mean == 0.5
    assert "1 seed, no CI" in report.markdown()


def test_mean_ci_is_seeded() -> None:
    values = [0.1, 0.5, 0.3, 0.9]
    a = mean_ci(values, reps=REPS, rng=np.random.default_rng(3))
    b = mean_ci(values, reps=REPS, rng=np.random.default_rng(3))
    assert a == b and a.mean == pytest.approx(0.45) and 0.1 <= a.low < a.high <= 0.9


# ---------------------------------------------------------------- aggregate
def test_iqm_of_a_hand_made_matrix() -> None:
    # 8 values 0.0 .. 0.7: the IQM drops the lowest and highest two, mean(0.2..0.5) = 0.35.
    scores = np.arange(8, dtype=float).reshape(2, 4) / 10
    est = iqm_ci(scores, reps=REPS, seed=0)
    assert est.mean == pytest.approx(0.35) == pytest.approx(metrics.aggregate_iqm(scores))
    assert est.low <= est.mean <= est.high and est.n == 2


def test_stacked_iqm_equals_rliable_aggregate_iqm_per_matrix() -> None:
    rng = np.random.default_rng(0)
    mats = {k: rng.random((3, 5)) for k in "abc"} | {"d": rng.random((2, 5))}
    cis = iqm_cis(mats, reps=REPS, seed=0)
    for k, m in mats.items():
        assert cis[k].mean == pytest.approx(metrics.aggregate_iqm(m))
        assert cis[k].low <= cis[k].mean <= cis[k].high
    assert cis == iqm_cis(mats, reps=REPS, seed=0)  # seeded


def test_probability_of_improvement_dominance_and_identity() -> None:
    bc = np.array([[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]])
    dominated = improvement_ci(bc + 0.5, bc, reps=50, seed=0)
    assert (dominated.mean, dominated.low, dominated.high) == (1.0, 1.0, 1.0)
    same = improvement_ci(bc, bc.copy(), reps=50, seed=0)
    assert same.mean == 0.5


def test_fixture_aggregate_and_improvement(report) -> None:
    agg = {(r.budget, r.learner): r for r in report.aggregate}
    # Budget 1/4: both settings, 2 runs each; bc's 4 values sorted are 0.1 0.2 0.2 0.4, and
    # trimming 25% (one) from each end leaves mean(0.2, 0.2) = 0.2.
    assert agg[(0.25, "bc")].tasks == [GRID, SHOP]
    assert agg[(0.25, "bc")].iqm.mean == pytest.approx(0.2)
    # Budget 1: dagger ran only on Shop, so Grid is left out for every learner.
    assert agg[(1.0, "bc")].tasks == [SHOP] and agg[(1.0, "dagger")].iqm.n == 1
    poi = {r.budget: r.probability for r in report.improvement if r.learner == "iwm-matched"}
    assert all(r.baseline == "bc" for r in report.improvement)
    assert poi[0.25].mean == 1.0  # iwm-matched beats bc in every run of both settings
    assert poi[1.0].mean == pytest.approx(0.5)  # wins Shop (1.0), loses Grid (0.0)


# ---------------------------------------------------------------- headline
def test_expert_data_saving(report) -> None:
    shop, grid = report.savings["iwm-matched"][SHOP], report.savings["iwm-matched"][GRID]
    assert shop.reached_budget == 0.25 and shop.saving == 4.0 and "4x" in shop.text()
    assert grid.reached_budget is None and grid.text() == "not reached"


def test_saving_at_full_budget_and_missing_bc(tmp_path) -> None:
    rows = [
        _imitation("e/A-v0", "bc", 1.0, 0, 0.5),
        _imitation("e/A-v0", "iwm-matched", 1.0, 0, 0.5),
    ]
    rows += [_imitation("e/B-v0", "iwm-matched", 0.5, 0, 0.9)]
    r = build_report(_write(tmp_path, rows), reps=50, poi_reps=20)
    savings = r.savings["iwm-matched"]
    assert savings["e/A-v0"].saving == 1.0 and "no saving" in savings["e/A-v0"].text()
    assert savings["e/B-v0"].reached_budget is None and "no bc" in savings["e/B-v0"].text()


def test_rl_equal_steps_comparison(report) -> None:
    (cmp,) = report.rl
    assert cmp.env_id == SHOP and cmp.init_budget == 1.0
    assert cmp.shared_step == 200  # rl-from-bc ran to 300, the others stopped at 200
    at = {k: v.mean for k, v in cmp.at_shared_step.items()}
    assert at == pytest.approx({"rl-scratch": 0.4, "rl-from-bc": 0.7, "rl-from-iwm": 0.8})
    final = cmp.final
    assert final["rl-from-bc"].mean == pytest.approx(0.8)
    assert final["rl-from-iwm"].mean == pytest.approx(0.8)
    assert (final["rl-from-iwm"].low, final["rl-from-iwm"].high) == pytest.approx((0.7, 0.9))
    curves = {c.label: c for c in report.rl_curves}
    assert set(curves) == {"rl-scratch", "rl-from-bc (init 1)", "rl-from-iwm (init 1)"}
    assert curves["rl-from-iwm (init 1)"].mean == pytest.approx([0.6, 0.7, 0.8])


# ---------------------------------------------------------------- files and bad input
def test_write_report_files(fixture_dir) -> None:
    path = write_report(fixture_dir, reps=REPS, poi_reps=50)
    assert path == fixture_dir / "report.md"
    text = path.read_text()
    for name in ("data_efficiency.png", "rl_curves.png"):
        png = fixture_dir / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f"({name})" in text  # linked by relative path
    assert "0.30 [0.20, 0.40] (valid 0.98)" in text
    assert "4x saving" in text and "not reached" in text
    assert not list(fixture_dir.glob(".*.tmp")) and not list(fixture_dir.glob(".*.png"))
    # Deterministic: the same results give the same report.
    assert write_report(fixture_dir, reps=REPS, poi_reps=50).read_text() == text


def test_unknown_kinds_are_warned_and_skipped(report, fixture_dir, capsys, monkeypatch) -> None:
    assert any("unknown kind" in w and "sweep-meta" in w for w in report.warnings)
    assert report.n_rows == 23
    # `earlyexp report` calls report.write_report; fewer resamples keep the test fast (an
    # explicit --reps from the command line would still win over these).
    monkeypatch.setattr(rep, "write_report", partial(write_report, reps=50, poi_reps=10))
    assert cli.main(["report", str(fixture_dir)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped rows of unknown kind" in captured.err
    assert captured.out.strip() == str(fixture_dir / "report.md")


def test_missing_dir_and_empty_file(tmp_path, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="run a sweep"):
        build_report(tmp_path / "nope")
    with pytest.raises(ValueError, match="run a sweep"):
        build_report(tmp_path)  # no results.jsonl
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(ValueError, match="no finished runs"):
        build_report(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_only_unknown_kinds_torn_tail_and_mixed_profiles(tmp_path) -> None:
    only_meta = _write(tmp_path / "a", [{"hash": "m", "kind": "meta"}])
    with pytest.raises(ValueError, match="no imitation or RL rows"):
        build_report(only_meta)
    rows = [_imitation("e/A-v0", "bc", 1.0, s, 0.5) for s in range(2)]
    torn = _write(tmp_path / "b", rows)
    with (torn / "results.jsonl").open("a") as f:
        f.write('{"hash": "x", "kin')
    r = build_report(torn, reps=50, poi_reps=10)
    assert r.n_rows == 2 and any("torn" in w for w in r.warnings)
    mixed = _write(tmp_path / "c", rows + [dict(rows[0], hash="z", profile="other")])
    with pytest.raises(ValueError, match="mixes profiles"):
        build_report(mixed)
    assert build_report(mixed, profile="other", reps=50).n_rows == 1


def test_imitation_only_results_still_write_both_plots(tmp_path) -> None:
    rows = [_imitation("e/A-v0", lr, 1.0, 0, 0.5) for lr in ("bc", "iwm-matched")]
    path = write_report(_write(tmp_path, rows), reps=50, poi_reps=10)
    assert "No RL runs." in path.read_text()
    assert (tmp_path / "rl_curves.png").stat().st_size > 0


def test_rl_only_results(tmp_path) -> None:
    rl_rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    rl_rows = [r for r in rl_rows if r.get("kind") == "rl"]
    path = write_report(_write(tmp_path, rl_rows), reps=50, poi_reps=10)
    text = path.read_text()
    assert "No imitation runs." in text and "(rl_curves.png)" in text
    assert (tmp_path / "data_efficiency.png").stat().st_size > 0


def test_no_saving_is_claimed_when_bc_is_at_chance(tmp_path) -> None:
    rows = [
        {
            **_imitation("e/C-v0", learner, budget, 0, 0.0),
            "random_success": 0.0,
            "expert_success": 1.0,
        }
        for learner in ("bc", "iwm-matched")
        for budget in (0.5, 1.0)
    ]
    r = build_report(_write(tmp_path, rows), reps=50, poi_reps=20)
    assert r.savings["iwm-matched"]["e/C-v0"].text() == "bc@1.0 is at chance (0.00 <= random 0.00)"


def test_module_entry_point_delegates_to_the_cli(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    monkeypatch.setattr(sys, "argv", ["benchmarks.report", "DIR", "--baseline", "dagger"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("benchmarks.report", run_name="__main__")
    assert exit_.value.code == 0 and seen == [["report", "DIR", "--baseline", "dagger"]]


# ---------------------------------------------------------------- typed rows
def test_rows_are_typed_and_keep_only_what_the_report_uses(tmp_path) -> None:
    command = "earlyexp train earlyexp/Shop-v0 --learner bc --seed 0 | tee log"
    rows = [
        dict(_imitation("e/A-v0", "bc", 1.0, 0, 0.5), command=command, extra={"x": 1}),
        _imitation("e/A-v0", "bc", 1.0, 1, 0.7),
        dict(_imitation("e/A-v0", "bc", 1.0, 2, 0.7), hash="bad", success="0.7"),
    ]
    loaded = load_rows(_write(tmp_path, rows))
    first = loaded.imitation[0]
    assert isinstance(first, ImitationRow) and len(loaded) == 2 and loaded.rl == []
    assert (first.learner, first.budget, first.seed, first.command) == ("bc", 1.0, 0, command)
    assert not hasattr(first, "extra")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.success = 1.0  # type: ignore[misc]
    (warning,) = loaded.warnings
    assert "1 rows with a malformed field" in warning and "bad: 'success'" in warning
    text = build_report(tmp_path, reps=50, poi_reps=10).markdown()
    assert command not in text and "malformed" in text


def test_rl_scratch_follows_init_learner_then_the_old_rule() -> None:
    base = {"hash": "h", "env_id": "e/A-v0", "seed": 0, "curve": [[0, 0.1]], "success": 0.1}
    new_scratch = RLRow.from_dict(dict(base, learner="ppo", init_learner=None, init_budget=0.5))
    assert new_scratch.scratch and new_scratch.init_budget is None
    # The row's init_learner decides, whatever the learner is called.
    warm = RLRow.from_dict(dict(base, learner="rl-scratch", init_learner="bc", init_budget=0.5))
    assert not warm.scratch and (warm.init_learner, warm.init_budget) == ("bc", 0.5)
    legacy = [
        RLRow.from_dict(dict(base, learner="rl-scratch", init_budget=1.0)),
        RLRow.from_dict(dict(base, learner="rl-from-bc", init_budget=None)),
        RLRow.from_dict(dict(base, learner="rl-from-bc", init_budget=1.0)),
    ]
    assert [r.scratch for r in legacy] == [True, True, False]


# ---------------------------------------------------------------- chosen learners
USER = "mypkg.mylearner:bc-long"


def test_baseline_and_compare_choose_the_headline(report, fixture_dir) -> None:
    assert report.baseline == "bc" and report.compared == ["dagger", "iwm-matched"]
    r = build_report(
        fixture_dir, baseline="dagger", compare=["iwm-matched"], reps=REPS, poi_reps=100
    )
    assert r.baseline == "dagger" and r.compared == ["iwm-matched"]
    assert r.imitation_learners == ["dagger", "iwm-matched", "bc"]  # then the rest, sorted
    assert set(r.savings) == {"iwm-matched"}
    shop, grid = r.savings["iwm-matched"][SHOP], r.savings["iwm-matched"][GRID]
    assert shop.baseline_full.mean == 0.5 and shop.reached_budget == 0.25
    assert shop.text() == "reaches dagger@1.0 with 1/4 of the demos -> 4x saving"
    assert grid.text() == "no dagger run at budget 1.0"
    (poi,) = r.improvement  # dagger ran only at budget 1 on Shop
    assert (poi.learner, poi.baseline, poi.budget, poi.tasks) == (
        "iwm-matched",
        "dagger",
        1.0,
        [SHOP],
    )
    assert poi.probability.mean == 1.0
    text = r.markdown()
    assert "## Headline: expert-data saving over dagger" in text
    assert "| P(learner > dagger) [95% CI] |" in text
    assert "| budget | dagger | iwm-matched | bc |" in text  # per-setting, in display order
    # The aggregate does not depend on which learner is the baseline.
    assert r.aggregate != [] and sorted(r.aggregate, key=lambda a: (a.budget, a.learner)) == sorted(
        report.aggregate, key=lambda a: (a.budget, a.learner)
    )
    with pytest.raises(TypeError, match="sequence of learner names"):
        build_report(fixture_dir, compare="iwm-matched")


def test_absent_baseline_or_compared_learner_is_a_warning(fixture_dir) -> None:
    r = build_report(fixture_dir, baseline="nope", compare=["iwm-matched", "gone"], reps=50)
    assert r.baseline is None and r.improvement == [] and r.savings == {}
    assert r.compared == ["iwm-matched"]
    assert any(
        "baseline nope has no imitation runs" in w and "bc, dagger, iwm-matched" in w
        for w in r.warnings
    )
    assert any("compared learner(s) gone have no imitation runs" in w for w in r.warnings)
    text = r.markdown()
    assert "No headline: no baseline with runs." in text and "baseline nope" in text
    assert r.cell(SHOP, 1.0, "bc").success.mean == pytest.approx(0.6)  # the tables remain
    # No baseline asked for: no headline and nothing to warn about.
    quiet = build_report(fixture_dir, baseline=None, reps=50)
    assert quiet.baseline is None and not any("baseline" in w for w in quiet.warnings)


def test_a_user_named_learner_shows_like_any_other(tmp_path, monkeypatch) -> None:
    rows = [
        _imitation(env, learner, budget, seed, success + 0.1 * seed)
        for env in ("e/A-v0", "e/B-v0")
        for learner, success in (("bc", 0.3), (USER, 0.5))
        for budget in (0.5, 1.0)
        for seed in (0, 1)
    ]
    r = build_report(_write(tmp_path, rows), compare=[USER], reps=50, poi_reps=20)
    assert r.imitation_learners == ["bc", USER] and r.compared == [USER]
    assert r.savings[USER]["e/A-v0"].reached_budget == 0.5
    assert {p.learner for p in r.improvement} == {USER}
    assert {a.learner for a in r.aggregate} == {"bc", USER}
    text = r.markdown()
    assert f"| budget | bc | {USER} |" in text  # per-setting tables
    assert f"| budget | settings | bc | {USER} |" in text  # aggregate
    assert f"| e/A-v0 | 0.35 [0.30, 0.40] | {USER} |" in text  # headline
    assert f"| {USER} | 1/2 | 2 |" in text  # probability of improvement
    legends = []
    monkeypatch.setattr(
        plots,
        "_save_png",
        lambda fig, path: legends.append([t.get_text() for t in fig.legends[0].get_texts()]),
    )
    plots.plot_data_efficiency(r, tmp_path / "x.png")
    assert legends == [["bc", USER]]


def test_awkward_learner_names_keep_tables_and_legends_whole(tmp_path) -> None:
    names = ["a|b", "_private", "cost$"]
    rows = [_imitation("e/A-v0", lr, 1.0, 0, 0.5) for lr in ["bc", *names]]
    path = write_report(_write(tmp_path, rows), reps=50, poi_reps=10)
    assert "| budget | bc | _private | a\\|b | cost$ |" in path.read_text()
    assert plots._legend_label("_private") == " _private"
    assert plots._legend_label("cost$") == "cost\\$"


def test_rl_rows_with_init_learner(tmp_path) -> None:
    def rl(learner: str, init: str | None, budget: float | None, seed: int, curve: list) -> dict:
        return {
            "hash": f"{learner}-{init}-{budget}-{seed}",
            "kind": "rl",
            "profile": "t",
            "env_id": "e/A-v0",
            "learner": learner,
            "init_learner": init,
            "init_budget": budget,
            "seed": seed,
            "curve": curve,
            "success": curve[-1][1],
        }

    rows = [_imitation("e/A-v0", lr, 1.0, 0, 0.5) for lr in ("bc", USER)]
    for seed in (0, 1):
        rows += [
            rl("ppo", None, 0.5, seed, [[0, 0.0], [100, 0.2]]),  # scratch: init_budget ignored
            rl("ppo-warm", USER, 0.5, seed, [[0, 0.3], [100, 0.5]]),
            rl("rl-from-bc", "bc", 0.5, seed, [[0, 0.2], [100, 0.4]]),
            rl("rl-from-bc", "bc", 1.0, seed, [[0, 0.4], [100, 0.6], [200, 0.7]]),
        ]
    r = build_report(_write(tmp_path, rows), compare=[USER], reps=50, poi_reps=10)
    # Scratch first, then the warm starts in the order of the learners they started from.
    assert r.rl_learners == ["ppo", "rl-from-bc", "ppo-warm"]
    assert r.rl_init == {"ppo": None, "rl-from-bc": "bc", "ppo-warm": USER}
    half, full = r.rl
    assert (half.init_budget, full.init_budget) == (0.5, 1.0)
    assert list(half.final) == ["ppo", "rl-from-bc", "ppo-warm"]
    assert list(full.final) == ["ppo", "rl-from-bc"]  # scratch stands beside every budget
    assert full.shared_step == 100 and full.at_shared_step["rl-from-bc"].mean == pytest.approx(0.6)
    assert [c.label for c in r.rl_curves] == [
        "ppo",
        "rl-from-bc (init 1/2)",
        "rl-from-bc (init 1)",
        "ppo-warm (init 1/2)",
    ]
    text = r.markdown()
    assert "## RL: warm starts vs scratch" in text
    assert f"Warm starts: `rl-from-bc` from `bc`, `ppo-warm` from `{USER}`." in text
    assert "| setting | init budget | shared step | ppo | rl-from-bc | ppo-warm |" in text
    # One name that ran both from scratch and warm-started is shown as two learners.
    both = _write(
        tmp_path / "both", [rl("rl", None, None, 0, [[0, 0.1]]), rl("rl", "bc", 1.0, 0, [[0, 0.2]])]
    )
    assert build_report(both, reps=50).rl_learners == ["rl (scratch)", "rl (from bc)"]


def test_the_committed_quick_results_still_build(tmp_path) -> None:
    quick = Path(__file__).parents[2] / "docs" / "benchmark" / "quick" / "results.jsonl"
    shutil.copy(quick, tmp_path / "results.jsonl")
    path = write_report(tmp_path, reps=50, poi_reps=10)
    text = path.read_text()
    assert "456 runs over 8 setting(s)" in text and "Warnings" not in text
    assert "## Headline: expert-data saving over bc" in text
    assert "| setting | init budget | shared step | rl-scratch | rl-from-bc | rl-from-iwm |" in text
    for name in ("data_efficiency.png", "rl_curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
