"""The benchmark report: per-cell CIs, IQM, probability of improvement, savings, RL, files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rliable import metrics

from benchmarks import report as rep
from benchmarks.report import build_report, improvement_ci, iqm_ci, iqm_cis, mean_ci, write_report

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
    poi = {r.budget: r.probability for r in report.improvement}
    assert poi[0.25].mean == 1.0  # iwm-matched beats bc in every run of both settings
    assert poi[1.0].mean == pytest.approx(0.5)  # wins Shop (1.0), loses Grid (0.0)


# ---------------------------------------------------------------- headline
def test_expert_data_saving(report) -> None:
    shop, grid = report.savings[SHOP], report.savings[GRID]
    assert shop.reached_budget == 0.25 and shop.saving == 4.0 and "4x" in shop.text()
    assert grid.reached_budget is None and grid.text() == "not reached"


def test_saving_at_full_budget_and_missing_bc(tmp_path) -> None:
    rows = [
        _imitation("e/A-v0", "bc", 1.0, 0, 0.5),
        _imitation("e/A-v0", "iwm-matched", 1.0, 0, 0.5),
    ]
    rows += [_imitation("e/B-v0", "iwm-matched", 0.5, 0, 0.9)]
    r = build_report(_write(tmp_path, rows), reps=50, poi_reps=20)
    assert r.savings["e/A-v0"].saving == 1.0 and "no saving" in r.savings["e/A-v0"].text()
    assert r.savings["e/B-v0"].reached_budget is None and "no bc" in r.savings["e/B-v0"].text()


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


def test_unknown_kinds_are_warned_and_skipped(report, fixture_dir, capsys) -> None:
    assert any("unknown kind" in w and "sweep-meta" in w for w in report.warnings)
    assert report.n_rows == 23
    assert rep.main([str(fixture_dir), "--reps", "50", "--poi-reps", "10"]) == 0
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
    assert rep.main([str(tmp_path)]) == 1
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
    assert r.savings["e/C-v0"].text() == "BC@1.0 is at chance (0.00 <= random 0.00)"
