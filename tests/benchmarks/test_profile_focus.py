"""A profile's focus: the baseline runs on every setting, the other learners on the focus."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import sweep

SMOKE = sweep.PROFILES["smoke"]
HOUSEHOLD, SHOP = "earlyexp/Household-v0", "earlyexp/Shop-v0"
IMITATION = ["bc", "bc-short", "iwm-matched"]


def test_only_the_baseline_runs_outside_the_focus() -> None:
    profile = replace(SMOKE, focus=(HOUSEHOLD,))
    first, second = sweep.plan(profile, [HOUSEHOLD, SHOP], IMITATION)
    assert not second
    ran = {(spec["env_id"], spec["learner"]) for spec in first}
    assert ran == {(HOUSEHOLD, name) for name in IMITATION} | {(SHOP, "bc")}
    per_setting = len(SMOKE.seeds) * len(SMOKE.budgets)
    assert len(first) == per_setting * (len(IMITATION) + 1)


def test_no_focus_runs_every_learner_everywhere() -> None:
    first, _ = sweep.plan(SMOKE, [HOUSEHOLD, SHOP], IMITATION)
    assert {(spec["env_id"], spec["learner"]) for spec in first} == {
        (env_id, name) for env_id in (HOUSEHOLD, SHOP) for name in IMITATION
    }
    assert SMOKE.learners_at(SHOP, IMITATION) == IMITATION


def test_settings_chosen_by_hand_drop_the_focus() -> None:
    profile = replace(SMOKE, focus=(HOUSEHOLD,))
    chosen = sweep.customize(profile, settings=[SHOP])
    assert chosen.focus == ()
    assert chosen.learners_at(SHOP, IMITATION) == IMITATION
    # Other changes keep it.
    assert sweep.customize(profile, seeds=[3]).focus == (HOUSEHOLD,)


def test_baseline_budgets_limit_the_baseline_outside_the_focus() -> None:
    profile = replace(SMOKE, focus=(HOUSEHOLD,), baseline_budgets=(1.0,))
    first, _ = sweep.plan(profile, [HOUSEHOLD, SHOP], IMITATION)
    outside = [(spec["learner"], spec["budget"]) for spec in first if spec["env_id"] == SHOP]
    assert outside == [("bc", 1.0)] * len(SMOKE.seeds)
    inside = {spec["budget"] for spec in first if spec["env_id"] == HOUSEHOLD}
    assert inside == set(SMOKE.budgets)
    # Budgets chosen by hand: the baseline runs at each of them everywhere.
    chosen = sweep.customize(profile, demos=[1, 2])
    assert chosen.baseline_budgets == () and chosen.budgets_at(SHOP) == (0.5, 1.0)


def test_baseline_budgets_must_be_budgets_of_the_profile() -> None:
    profile = replace(SMOKE, focus=(HOUSEHOLD,), baseline_budgets=(0.3,))
    with pytest.raises(ValueError, match=r"baseline_budgets \(0.3,\) must be some of its budgets"):
        sweep.check_selection(profile, ["bc"])


def test_the_quick_profile_compares_on_its_focus_and_runs_bc_everywhere() -> None:
    quick = sweep.PROFILES["quick"]
    sweep.check_selection(quick, list(quick.learners))
    first, second = sweep.plan(quick, list(quick.settings), list(quick.learners))
    assert not second and len(quick.budgets) >= 3 and len(quick.seeds) >= 5
    for env_id in quick.settings:
        mine = {(spec["learner"], spec["budget"]) for spec in first if spec["env_id"] == env_id}
        if env_id in quick.focus:
            assert mine == {(n, b) for n in quick.learners for b in quick.budgets}
        else:
            assert mine == {("bc", 1.0)}
    for spec in first:  # at least 50 test episodes, stopped early, never by a binding cap
        config = spec["config"]
        assert config["eval_episodes"] >= 50 and config["max_updates"] == 3000


def test_the_standard_profile_runs_bc_everywhere_and_the_rest_on_its_focus() -> None:
    standard = sweep.PROFILES["standard"]
    sweep.check_selection(standard, list(standard.learners))
    first, second = sweep.plan(standard, list(standard.settings), list(standard.learners))
    assert [sweep.episodes_at(standard, b) for b in standard.budgets] == [25, 50, 100, 200]
    for env_id in standard.settings:
        mine = {(s["learner"], s.get("budget")) for s in first if s["env_id"] == env_id}
        on_demos = ("bc", "iwm-matched", "dagger") if env_id in standard.focus else ("bc",)
        expected = {(n, b) for n in on_demos for b in standard.budgets}
        assert mine - {("rl-scratch", None)} == expected
    # RL from scratch and both warm starts, on the focus only, 5 seeds each.
    assert {(s["env_id"], s["learner"]) for s in second} == {
        (HOUSEHOLD, "rl-from-bc"),
        (HOUSEHOLD, "rl-from-iwm"),
    }
    assert len(second) == 2 * len(standard.seeds)
    scratch = [s for s in first if s["learner"] == "rl-scratch"]
    assert {s["env_id"] for s in scratch} == {HOUSEHOLD} and len(scratch) == len(standard.seeds)
