"""A profile's focus: the baseline runs on every setting, the other learners on the focus."""

from __future__ import annotations

from dataclasses import replace

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
