"""The benchmark report: per-cell CIs, IQM, probability of improvement, savings, RL, files;
paired differences with their MDE, the converged and learned flags, and the headline."""

from __future__ import annotations

import csv
import dataclasses
import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from rliable import metrics

from benchmarks import cli
from benchmarks import report as rep
from benchmarks.report import (
    CAPPED,
    CONVERGED,
    UNKNOWN,
    ImitationRow,
    RLRow,
    build_report,
    improvement_ci,
    iqm_ci,
    iqm_cis,
    load_rows,
    mean_ci,
    min_detectable_effect,
    paired_difference,
    plots,
    stopping,
    update_caps,
    write_report,
)

FIXTURE = Path(__file__).parent / "fixtures" / "report_results.jsonl"
SHOP, GRID = "earlyexp/Shop-v0", "earlyexp/Grid-v0"
REPS = 300  # enough for the checks below, keeps the file fast


#: A learner config that trains once, up to 1,000 updates, validating every 50 with
#: patience 2: a run of 300 updates was stopped early, one of 1,000 hit its cap.
ONE_STAGE = {"max_updates": 1000, "val_every": 50, "patience": 2, "eval_episodes": 20}
EARLY, CAP = 300, 1000


def _stopped_early(row: dict) -> dict:
    """``row`` as the sweep writes it for a run that early stopping ended."""
    if row.get("kind") != "imitation":
        return row
    return dict(row, updates=EARLY, config={"config": ONE_STAGE})


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    # The fixture's rows predate the update counts; here every run stopped early, so the
    # headline keeps every cell of the settings bc learned (both of them).
    path = tmp_path_factory.mktemp("results")
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    _write(path, [_stopped_early(r) for r in rows])
    return path


@pytest.fixture(scope="module")
def report(fixture_dir) -> rep.Report:
    return build_report(fixture_dir, reps=REPS, poi_reps=100, seed=0)


def _imitation(
    env: str,
    learner: str,
    budget: float,
    seed: int,
    success: float,
    *,
    updates: int = EARLY,
    random: float = 0.0,
) -> dict:
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
        "random_success": random,
        "updates": updates,
        "config": {"config": ONE_STAGE},
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
        _imitation("e/A-v0", learner, 1.0, seed, 0.5)
        for learner in ("bc", "iwm-matched")
        for seed in (0, 1)
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
    cells = (fixture_dir / "cells.csv").read_text()
    paired = (fixture_dir / "paired.csv").read_text()
    # Deterministic: the same results give the same report.
    assert write_report(fixture_dir, reps=REPS, poi_reps=50).read_text() == text
    assert (fixture_dir / "cells.csv").read_text() == cells
    assert (fixture_dir / "paired.csv").read_text() == paired


def test_unknown_kinds_are_warned_and_skipped(report, fixture_dir, capsys) -> None:
    assert any("unknown kind" in w and "sweep-meta" in w for w in report.warnings)
    assert report.n_rows == 23
    # fewer resamples than the defaults keep the test fast
    assert cli.main(["report", str(fixture_dir), "--reps", "50", "--poi-reps", "10"]) == 0
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
        {**_imitation("e/C-v0", learner, budget, seed, 0.0), "expert_success": 1.0}
        for learner in ("bc", "iwm-matched")
        for budget in (0.5, 1.0)
        for seed in (0, 1)
    ]
    r = build_report(_write(tmp_path, rows), reps=50, poi_reps=20)
    saving = r.savings["iwm-matched"]["e/C-v0"]
    assert saving.reached_budget == 0.5  # the means reach bc's, but bc learned nothing
    assert saving.text() == "left out: bc did not learn this setting"


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
    # One dagger seed cannot show that dagger beats the random policy.
    assert shop.text() == "left out: dagger did not learn this setting"
    assert "one seed gives no CI" in r.learned[SHOP].text()
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
    assert "## Headline: `iwm-matched` vs `dagger`" in text
    assert "### Expert-data saving over dagger" in text
    assert "| P(learner > dagger) [95% CI] |" in text  # over every cell (a diagnostic)
    assert r.headline_improvement == []
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
    assert r.learned == {} and r.paired == [] and r.headline_aggregate == []
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
    assert {p.learner for p in r.headline_improvement} == {USER}
    assert f"| budget | {USER} - bc [95% CI] | MDE |" in text  # paired differences
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


def test_the_committed_small_model_quick_results_still_build(tmp_path) -> None:
    # The quick profile before it trained the default model (README: memory, and why).
    quick = Path(__file__).parents[2] / "docs" / "benchmark" / "quick-small-model"
    shutil.copy(quick / "results.jsonl", tmp_path / "results.jsonl")
    path = write_report(tmp_path, reps=50, poi_reps=10)
    text = path.read_text()
    assert "456 runs over 8 setting(s)" in text and "Warnings" not in text
    assert "## Headline: `dagger`, `iwm-extra`, `iwm-matched` vs `bc`" in text
    # The quick profile's 128-update cap ended every imitation run (the rows before the
    # learner registry: a flat config, translated): nothing is left for the headline.
    assert "384 of 384 imitation runs hit their update cap" in text
    assert "Nothing to aggregate" in text
    assert "## Aggregate over every cell (diagnostic, not a claim)" in text
    assert "| setting | init budget | shared step | rl-scratch | rl-from-bc | rl-from-iwm |" in text
    for name in ("data_efficiency.png", "rl_curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- MDE
def test_mde_matches_a_hand_computation_with_scipy() -> None:
    a = [0.50, 0.40, 0.70, 0.55]
    b = [0.40, 0.45, 0.50, 0.50]
    d = np.array(a) - np.array(b)  # 0.10, -0.05, 0.20, 0.05
    sd = np.sqrt(np.sum((d - d.mean()) ** 2) / 3)  # sample SD, by hand
    # Two-sided paired t-test, alpha 0.05, power 0.8, 3 degrees of freedom.
    multiplier = scipy.stats.t.ppf(0.975, 3) + scipy.stats.t.ppf(0.8, 3)
    assert multiplier == pytest.approx(3.182446 + 0.978472, abs=1e-6)  # t tables
    expected = multiplier * sd / np.sqrt(4)
    assert min_detectable_effect(sd, 4) == pytest.approx(expected)
    paired = paired_difference(a, b, reps=REPS, rng=np.random.default_rng(0))
    assert paired.difference.mean == pytest.approx(0.075) and paired.difference.n == 4
    assert paired.sd == pytest.approx(sd) and paired.mde_observed == pytest.approx(expected)
    assert paired.mde_floor is None and paired.mde == pytest.approx(expected)  # no episodes
    assert paired.mde_text() == f"{expected:.2f}"
    assert paired.difference.low <= 0.075 <= paired.difference.high
    # A stricter test needs a larger effect; more power too.
    assert min_detectable_effect(sd, 4, alpha=0.01) > expected
    assert min_detectable_effect(sd, 4, power=0.9) > expected


def test_mde_with_one_pair_or_no_spread() -> None:
    assert min_detectable_effect(0.1, 1) is None and min_detectable_effect(float("nan"), 3) is None
    one = paired_difference([0.5], [0.3], reps=REPS, rng=np.random.default_rng(0))
    assert one.sd is None and one.mde is None and one.mde_text() == "n/a (1 pair)"
    # Every pair differs by the same 0.1: the observed SD is 0, which is not a design that
    # sees everything; without episode counts there is nothing to floor it with.
    same = paired_difference([0.3, 0.5], [0.2, 0.4], reps=REPS, rng=np.random.default_rng(0))
    assert same.sd == pytest.approx(0.0, abs=1e-12) and same.mde_text() == "n/a (sd 0)"
    # With 20 test episodes per run, binomial sampling floors it (p shrunk to (k+1/2)/(E+1)).
    floored = paired_difference(
        [0.3, 0.5], [0.2, 0.4], episodes=[(20, 20)] * 2, reps=REPS, rng=np.random.default_rng(0)
    )

    def var(p: float) -> float:
        shrunk = (p * 20 + 0.5) / 21
        return shrunk * (1 - shrunk) / 20

    floor_sd = np.sqrt(np.mean([var(0.3) + var(0.2), var(0.5) + var(0.4)]))
    multiplier = scipy.stats.t.ppf(0.975, 1) + scipy.stats.t.ppf(0.8, 1)
    assert floored.mde_floor == pytest.approx(multiplier * floor_sd / np.sqrt(2))
    assert floored.mde == floored.mde_floor > 0.5  # two seeds of 20 episodes see little
    # Both runs always fail: still not a perfect design.
    zeros = paired_difference(
        [0.0] * 3, [0.0] * 3, episodes=[(20, 20)] * 3, reps=REPS, rng=np.random.default_rng(0)
    )
    assert zeros.mde is not None and zeros.mde > 0


def test_paired_differences_pair_by_seed_and_show_their_mde(report) -> None:
    shop = {(p.budget, p.learner): p for p in report.paired if p.env_id == SHOP}
    assert set(shop) == {(0.25, "iwm-matched"), (1.0, "iwm-matched"), (1.0, "dagger")}
    quarter = shop[(0.25, "iwm-matched")]  # iwm 0.6, 0.7 minus bc 0.2, 0.4: 0.4, 0.3
    assert quarter.seeds == [0, 1] and quarter.paired.difference.mean == pytest.approx(0.35)
    sd = np.std([0.4, 0.3], ddof=1)
    assert quarter.paired.mde_observed == pytest.approx(min_detectable_effect(sd, 2))
    dagger = shop[(1.0, "dagger")]  # dagger ran seed 0 only: one pair
    assert dagger.seeds == [0] and dagger.paired.mde_text() == "n/a (1 pair)"
    text = report.markdown()
    assert "| budget | dagger - bc [95% CI] | MDE | iwm-matched - bc [95% CI] | MDE |" in text
    assert f"+0.35 [+0.30, +0.40] (n=2) | {quarter.paired.mde_text()} |" in text
    assert "-0.10 (1 seed, no CI) | n/a (1 pair) |" in text


# ---------------------------------------------------------------- converged
def test_update_caps_follow_each_learners_config() -> None:
    base = {"max_updates": 1000, "wm_updates": 400}
    assert update_caps({"max_updates": 1000}) == (1000,)  # bc
    assert update_caps(base) == (600,)  # bc-short: iwm-matched's imitation budget
    assert update_caps({"max_updates": 1000, "iterations": 2}) == (1000, 1000, 1000)  # dagger
    iwm = {**base, "mode": "sequential"}
    assert update_caps({**iwm, "budget": "matched"}) == (400, 600)
    assert update_caps({**iwm, "budget": "extra"}) == (400, 1000)
    assert update_caps({**base, "budget": "matched", "mode": "joint"}) == (1000,)
    assert update_caps({"budget": "matched"}) is None and update_caps({}) is None
    assert update_caps({"max_updates": 100, "wm_updates": 100}) is None  # no BC stage left


def test_stopping_tells_capped_from_stopped_early() -> None:
    early = {"val_every": 50, "patience": 2}  # a stage stops early after >= 150 updates
    assert stopping(1000, (1000,), **early) == CAPPED
    assert stopping(300, (1000,), **early) == CONVERGED
    assert stopping(100, (1000,), **early) == UNKNOWN  # too few to have stopped early
    assert stopping(1200, (1000,), **early) == UNKNOWN  # more than the cap: misread config
    assert stopping(None, (1000,)) == UNKNOWN and stopping(300, None) == UNKNOWN
    # Two stages (IWM 400 + 600): only the total is in the row.
    assert stopping(1000, (400, 600), **early) == CAPPED  # both ran to their caps
    assert stopping(500, (400, 600), **early) == CONVERGED  # 400 + >=150 or 600 + >=150 > 500
    assert stopping(800, (400, 600), **early) == UNKNOWN  # 400 + 400, or 200 + 600
    assert stopping(500, (400, 600)) == UNKNOWN  # without val_every/patience: 400 + 100?
    # A stage too short to stop early (150 >= its cap of 100) always hits its cap.
    assert stopping(400, (100, 600), **early) == CAPPED


def test_a_run_that_hit_its_cap_is_flagged_and_kept_out_of_the_headline(tmp_path) -> None:
    rows = [
        _imitation(env, learner, budget, seed, success + 0.1 * seed)
        for env in ("e/A-v0", "e/B-v0")
        for learner, success in (("bc", 0.3), ("iwm-matched", 0.4))
        for budget in (0.5, 1.0)
        for seed in (0, 1)
    ]
    # On B, one iwm-matched run at budget 1/2 ran to its cap instead of stopping early.
    capped = rows.index(_imitation("e/B-v0", "iwm-matched", 0.5, 1, 0.5))
    rows[capped] = dict(rows[capped], updates=CAP)
    assert ImitationRow.from_dict(rows[capped]).stopping == CAPPED
    assert ImitationRow.from_dict(rows[capped - 1]).stopping == CONVERGED
    r = build_report(_write(tmp_path, rows), compare=["iwm-matched"], reps=50, poi_reps=20)
    cell = r.cell("e/B-v0", 0.5, "iwm-matched")
    assert (cell.capped, cell.converged, cell.flag()) == (1, False, "capped 1/2")
    assert r.cell("e/B-v0", 0.5, "bc").converged and r.cell("e/B-v0", 1.0, "iwm-matched").converged
    assert r.is_learned("e/B-v0") and not r.in_headline("e/B-v0", 0.5, "iwm-matched")
    assert r.in_headline("e/B-v0", 1.0, "iwm-matched") and r.in_headline("e/A-v0", 0.5, "bc")
    # The headline aggregate at 1/2 leaves B out (for every learner, so they stay comparable);
    # the diagnostic over every cell keeps it.
    head = {(a.budget, a.learner): a.tasks for a in r.headline_aggregate}
    every = {(a.budget, a.learner): a.tasks for a in r.aggregate}
    assert head[(0.5, "bc")] == head[(0.5, "iwm-matched")] == ["e/A-v0"]
    assert head[(1.0, "bc")] == every[(0.5, "bc")] == ["e/A-v0", "e/B-v0"]
    poi = {p.budget: p.tasks for p in r.headline_improvement}
    assert poi == {0.5: ["e/A-v0"], 1.0: ["e/A-v0", "e/B-v0"]}
    saving = r.savings["iwm-matched"]["e/B-v0"]
    assert saving.text() == "left out: iwm-matched not converged at 1/2"
    assert r.savings["iwm-matched"]["e/A-v0"].text().startswith("reaches bc@1.0 with 1/2")
    text = r.markdown()
    assert "(valid 1.00) capped 1/2 |" in text  # the count in its cell
    assert "`capped k/n`: k of the cell's n runs ran to their update cap" in text  # footnote
    assert "1 of 16 imitation runs hit their update cap" in text
    assert "  - `iwm-matched` at 1/2: e/B-v0 (capped 1/2)" in text


def test_legacy_rows_derive_their_caps_from_the_flat_config() -> None:
    # The sweep before the learner registry: one flat config of the profile's values.
    flat = {"max_updates": 128, "wm_updates": 64, "dagger_iterations": 1, "eval_episodes": 20}
    base = {"hash": "h", "env_id": "e/A-v0", "budget": 1.0, "seed": 0, "success": 0.1}
    base["config"] = flat
    for learner, updates in (
        ("bc", 128),
        ("dagger", 256),
        ("iwm-matched", 128),
        ("iwm-extra", 192),
    ):
        row = ImitationRow.from_dict(dict(base, learner=learner, updates=updates))
        assert row.stopping == CAPPED and row.eval_episodes == 20, learner
    row = ImitationRow.from_dict(dict(base, learner="bc", updates=100))
    assert row.update_caps == (128,) and row.stopping == CONVERGED  # one stage, under its cap
    assert ImitationRow.from_dict(dict(base, learner="bc", config={})).stopping == UNKNOWN


# ---------------------------------------------------------------- learned
def test_a_setting_bc_does_not_learn_is_marked_and_kept_out_of_the_headline(tmp_path) -> None:
    rows = []
    for seed in (0, 1, 2):
        for budget in (0.5, 1.0):
            # A: bc beats the random policy (0.1) on every seed. B: bc is at or below it
            # (0.2) -- iwm-matched's higher means there must not become a headline saving.
            rows += [
                _imitation("e/A-v0", "bc", budget, seed, 0.5 + 0.05 * seed, random=0.1),
                _imitation("e/A-v0", "iwm-matched", budget, seed, 0.55 + 0.05 * seed, random=0.1),
                _imitation("e/B-v0", "bc", budget, seed, 0.1 + 0.05 * seed, random=0.2),
                _imitation("e/B-v0", "iwm-matched", budget, seed, 0.6, random=0.2),
            ]
    r = build_report(_write(tmp_path, rows), compare=["iwm-matched"], reps=200, poi_reps=20)
    a, b = r.learned["e/A-v0"], r.learned["e/B-v0"]
    assert a.learned and a.budget == 1.0 and a.paired.difference.low > 0
    assert a.paired.difference.mean == pytest.approx(0.45)
    assert not b.learned and b.paired.difference.mean == pytest.approx(-0.05)
    assert b.text().startswith("not learned: bc@1 - random -0.05 [")
    assert b.text().endswith("the 95% CI is not above 0")
    # Every cell of B converged, yet none counts.
    assert all(c.converged for cells in r.imitation["e/B-v0"].values() for c in cells.values())
    assert not r.in_headline("e/B-v0", 1.0, "iwm-matched") and "e/B-v0" not in r.headline_table()
    assert {tuple(a.tasks) for a in r.headline_aggregate} == {("e/A-v0",)}
    assert {tuple(p.tasks) for p in r.headline_improvement} == {("e/A-v0",)}
    assert {tuple(a.tasks) for a in r.aggregate} == {("e/A-v0", "e/B-v0")}  # diagnostic
    saving = r.savings["iwm-matched"]["e/B-v0"]
    assert (
        saving.reached_budget == 0.5 and saving.text() == "left out: bc did not learn this setting"
    )
    assert r.savings["iwm-matched"]["e/A-v0"].saving == 2.0
    text = r.markdown()
    head = text.split("## Aggregate over every cell", 1)[0]
    assert "- Settings bc did not learn (all their cells left out):" in head
    assert "  - e/B-v0: bc@1 - random -0.05 [" in head
    assert "2x saving" in head and "left out: bc did not learn this setting" in head
    assert "`bc` vs the random policy: not learned: bc@1 - random -0.05" in text
    # The CSVs say the same.
    path = write_report(tmp_path, compare=["iwm-matched"], reps=200, poi_reps=20)
    cells = list(csv.DictReader((path.parent / "cells.csv").open()))
    assert {(c["env_id"], c["learned"], c["in_headline"]) for c in cells} == {
        ("e/A-v0", "True", "True"),
        ("e/B-v0", "False", "False"),
    }
    paired = list(csv.DictReader((path.parent / "paired.csv").open()))
    vs_random = {p["env_id"]: p for p in paired if p["versus"] == "random"}
    assert vs_random["e/B-v0"]["learned"] == "False"
    assert float(vs_random["e/A-v0"]["mean_difference"]) == pytest.approx(0.45)
    vs_bc = [p for p in paired if p["versus"] == "bc"]
    assert len(vs_bc) == 4 and all(float(p["mde"]) > 0 for p in vs_bc)
    assert {p["in_headline"] for p in vs_bc if p["env_id"] == "e/B-v0"} == {"False"}
    one = next(p for p in r.paired if (p.env_id, p.budget) == ("e/A-v0", 1.0))
    row = next(p for p in vs_bc if (p["env_id"], p["budget"]) == ("e/A-v0", "1.0"))
    assert float(row["mde"]) == pytest.approx(one.paired.mde)
    assert float(row["mde_observed"]) == pytest.approx(one.paired.mde_observed)


def test_the_baseline_alone_is_aggregated_over_every_setting_it_ran(tmp_path) -> None:
    # A focus profile: bc and dagger at two budgets on Shop, bc alone at 1.0 on Grid.
    rows = [
        _imitation(SHOP, learner, budget, seed, 0.4 + 0.1 * seed, random=0.0)
        for learner in ("bc", "dagger")
        for budget in (0.5, 1.0)
        for seed in range(3)
    ]
    rows += [_imitation(GRID, "bc", 1.0, seed, 0.8, random=0.1) for seed in range(3)]
    report = build_report(_write(tmp_path, rows), reps=REPS, poi_reps=20, seed=0)
    assert [r.tasks for r in report.aggregate if r.budget == 1.0] == [[SHOP], [SHOP]]
    (everywhere,) = [r for r in report.baseline_aggregate if r.budget == 1.0]
    assert everywhere.tasks == [GRID, SHOP]
    runs_by_tasks = np.array([[0.8, 0.4], [0.8, 0.5], [0.8, 0.6]])
    assert everywhere.iqm.mean == pytest.approx(metrics.aggregate_iqm(runs_by_tasks))
    text = report.markdown()
    assert "### `bc` on every setting" in text
    assert f"| 1 | 2 | {everywhere.iqm.text()} (3 runs) | 2 of 2 |" in text


def test_the_committed_quick_results_still_build(tmp_path) -> None:
    quick = Path(__file__).parents[2] / "docs" / "benchmark" / "quick"
    shutil.copy(quick / "results.jsonl", tmp_path / "results.jsonl")
    text = write_report(tmp_path, reps=50, poi_reps=10).read_text()
    assert "80 runs over 8 setting(s)" in text and "Warnings" not in text
    assert "## Headline: `dagger`, `iwm-matched` vs `bc`" in text
    assert "### `bc` on every setting" in text and "| 1 | 8 |" in text
    assert "earlyexp/BabyAI-v0: bc@1 - random" in text  # not learned: out of the headline
    assert "1 of 80 imitation runs hit their update cap" in text
