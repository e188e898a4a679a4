"""Tests of the ScienceWorld-like lab setting (earlyexp/Lab-v0).

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

import envs
from envs.lab import (
    FAMILIES,
    FREEZER,
    GROWLIGHT,
    KITCHEN,
    POT1,
    RECIPES,
    STOVE,
    STUDIO,
    TEST_COMPOSITIONS,
    WORKSHOP,
    LabEnv,
    compositions,
)
from tests.envs.helpers import follow_expert, random_walk, walk_states

ENV_ID = "earlyexp/Lab-v0"
CAP = 60


def _no_focus(action: str) -> bool:
    """Whether a random walk may take ``action``: not ``focus`` or ``mix``, which mostly end
    an episode (a wrong focus, a spoiled paint)."""
    return not action.startswith(("focus", "mix"))


def _instance(family: str, subject: str, split: str = "train") -> tuple[LabEnv, dict, dict]:
    """A fresh env reset to the first seed whose task is ``(family, subject)``."""
    env = LabEnv(split)
    for seed in range(2000):
        obs, info = env.reset(seed=seed)
        t = env.world.task
        if (t.family, t.subject_key) == (family, subject):
            return env, obs, info
    raise AssertionError(f"no {family} {subject} instance in 2000 seeds")


def _until(env: LabEnv, info: dict, done) -> dict:
    """Follow the expert until ``done()`` holds (at most CAP steps); return the last info."""
    for _ in range(CAP):
        if done():
            return info
        _, _, terminated, _, info = env.step(env.expert_action())
        assert not terminated
    raise AssertionError("condition never reached")


# -- expert and commands ---------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_instance(split: str) -> None:
    env = envs.make(ENV_ID, split=split)
    lengths = []
    families: Counter = Counter()
    for seed in range(100):
        _, info = env.reset(seed=seed)
        families[env.unwrapped.world.task.family] += 1
        solved, n, info = follow_expert(env, info)
        assert solved, f"seed {seed}: expert failed, goal {env.unwrapped.goal!r}"
        assert all(info["checklist"].values()), info["checklist"]  # from reset: every sub-goal
        lengths.append(n)
    assert set(families) == set(FAMILIES)
    assert sum(lengths) / len(lengths) <= 12 and max(lengths) <= 25


@pytest.mark.parametrize("split", envs.SPLITS)
@pytest.mark.parametrize("walk", [40, 120])
def test_expert_solves_after_long_walks(split: str, walk: int) -> None:
    """After long random walks without ``focus`` or ``mix`` (which mostly end an episode),
    deeper than the contract suite's (things moved, devices on, substances half heated,
    wires connected), the expert still solves every instance the walk did not end.
    Unwrapped, so that long walks are not truncated by the step cap."""
    env = envs.make(ENV_ID, split=split).unwrapped
    solved_after_walk = 0
    for seed in range(60):
        _, info = env.reset(seed=seed)
        rng = random.Random(seed * 31 + walk)
        info, done = random_walk(env, info, walk, rng, keep=_no_focus)
        if done:  # solved, or failed by spoiled paint: nothing left to do
            continue
        solved, _, _ = follow_expert(env, info)
        assert solved, f"seed {seed}, after {walk} random steps: expert failed"
        solved_after_walk += 1
    assert solved_after_walk >= 10


def test_admissible_commands_are_bounded_and_named_uniquely() -> None:
    """5 to 64 short ASCII commands, and every thing has its own name, so that no two
    operations share a command (that they are valid: tests/envs/test_contract.py)."""
    env = LabEnv()
    sizes = []
    for info in walk_states(env, range(30), 15):
        actions = info["admissible_actions"]
        sizes.append(len(actions))
        assert all(len(a.split()) < 20 and a.isascii() for a in actions)
        w = env.world
        alive = [t for t in range(len(w.loc)) if w.loc[t] != -2]
        assert len({env._name(t) for t in alive}) == len(alive)
    assert min(sizes) >= 5 and max(sizes) <= 64


def test_text_is_compact() -> None:
    env = LabEnv()
    words = []
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        random_walk(env, info, 10, random.Random(seed), keep=_no_focus)
        obs = env._obs()
        assert obs["text"].isprintable() and obs["goal"].isprintable()
        words.append(len(obs["text"].split()) + len(obs["goal"].split()))
    assert max(words) <= 140


# -- splits --------------------------------------------------------------------------------
def test_composition_partition() -> None:
    train, test = set(compositions("train")), set(compositions("test"))
    assert not train & test
    assert test == set(TEST_COMPOSITIONS)
    for split in (train, test):
        assert {f for f, _ in split} == set(FAMILIES)
    assert 0.1 < len(test) / (len(train) + len(test)) < 0.3
    with pytest.raises(ValueError, match="unknown split"):
        compositions("validation")


def _generated(split: str, seeds: range) -> tuple[set, set[str]]:
    env = LabEnv(split)
    comps, goals = set(), set()
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        t = env.world.task
        comps.add((t.family, t.subject_key))
        # the goal without its random threshold and box colours
        goals.add(re.sub(r"\d+|\w+ box", "#", obs["goal"]))
    return comps, goals


def test_test_goals_never_generated_in_train() -> None:
    train_comps, train_goals = _generated("train", range(2000))
    test_comps, test_goals = _generated("test", range(600))
    assert train_comps == set(compositions("train"))  # every train composition occurs
    assert test_comps == set(TEST_COMPOSITIONS)
    assert not train_goals & test_goals


# -- mechanics -----------------------------------------------------------------------------
def test_heating_changes_state_after_exact_ticks() -> None:
    """Water at 20 C on the lit stove: +20 C per tick, steam at 100 C, i.e. on the fourth
    tick counting the one of ``activate stove``."""
    env, _, info = _instance("boil", "water")
    w = env.world
    s = w.task.subject
    info = _until(env, info, lambda: w.loc[w.loc[s]] == STOVE)
    assert not w.on[STOVE] and w.temp[s] == 20
    obs, *_ = env.step("activate stove")
    assert obs["text"] == "The stove is now on." and w.temp[s] == 40
    for expected in (60, 80):
        obs, _, terminated, _, _ = env.step("wait")
        assert w.temp[s] == expected and not terminated
        assert "(water)" in obs["text"]
    obs, reward, terminated, _, info = env.step("wait")
    assert w.temp[s] == 100
    assert obs["text"].startswith("You wait. The water boils into steam.")
    assert "(steam)" in obs["text"]
    assert reward == 1.0 and terminated  # the expert focused on the water first
    assert info["checklist"] == {
        "focused on the water": True,
        "the water is on the stove": True,
        "the stove is on": True,
        "the water is gas": True,
    }


def test_freezing_needs_a_closed_freezer() -> None:
    """Water at 20 C in the freezer: nothing while it is open, -10 C per tick once closed,
    ice at 0 C (two ticks)."""
    env, _, info = _instance("freeze", "water")
    w = env.world
    s = w.task.subject
    _until(env, info, lambda: w.loc[w.loc[s]] == FREEZER)
    assert w.is_open[FREEZER] and w.temp[s] == 20
    env.step("look")
    assert w.temp[s] == 20
    env.step("close freezer")
    assert w.temp[s] == 10 and env._name(s) == "water"
    _, reward, terminated, _, info = env.step("wait")
    assert w.temp[s] == 0 and env._name(s) == "ice" and reward == 1.0
    assert info["checklist"]["the water is solid"]


def test_thermometer_reading_and_answer_box() -> None:
    env, _, info = _instance("measure temperature", "water")
    w = env.world
    t = w.task
    s = t.subject
    info = _until(env, info, lambda: f"use thermometer on {env._name(s)}" in env._admissible)
    assert not info["checklist"]["the water is measured"]
    temp = w.temp[s]
    obs, *_ = env.step(f"use thermometer on {env._name(s)}")
    assert obs["text"] == f"The thermometer measures a temperature of {temp} degrees celsius."
    assert w.reading == temp
    right = t.above if temp > t.threshold else t.below
    wrong = t.below if right == t.above else t.above
    assert re.search(rf"above {t.threshold} degrees .* the {env._name(t.above)}\.", env.goal)
    snap = env.get_state()
    _, reward, terminated, _, _ = env.step(f"focus on {env._name(wrong)}")
    assert terminated and reward == 0.0 and env._failed()
    env.set_state(snap)
    _, reward, terminated, _, info = env.step(f"focus on {env._name(right)}")
    assert terminated and reward == 1.0 and info["success"]


def test_answering_before_measuring_fails() -> None:
    env, _, info = _instance("measure melting point", "chocolate")
    t = env.world.task
    info = _until(env, info, lambda: env.world.room == KITCHEN)  # the boxes are here
    box = t.above if t.threshold < 30 else t.below  # the right box for chocolate (30 C)
    _, reward, terminated, _, _ = env.step(f"focus on {env._name(box)}")
    assert terminated and reward == 0.0  # right box, but nothing was measured


@pytest.mark.parametrize("target", sorted(RECIPES.values()))
def test_paint_mixing(target: str) -> None:
    split = "test" if ("mix paint", target) in TEST_COMPOSITIONS else "train"
    env, _, info = _instance("mix paint", target, split)
    w = env.world
    a, b = w.task.colors
    assert RECIPES[frozenset((a, b))] == target
    info = _until(env, info, lambda: any(x.startswith("mix ") for x in env._admissible))
    obs, *_ = env.step(next(x for x in info["admissible_actions"] if x.startswith("mix ")))
    assert obs["text"] == f"The {a} paint and {b} paint mix into {target} paint." or (
        obs["text"] == f"The {b} paint and {a} paint mix into {target} paint."
    )
    _, reward, terminated, _, info = env.step(f"focus on {target} paint")
    assert reward == 1.0 and terminated and all(info["checklist"].values())


def test_mixing_away_an_ingredient_fails_and_non_recipes_do_not_mix() -> None:
    env, _, info = _instance("mix paint", "violet")
    w = env.world
    info = _until(env, info, lambda: w.room == STUDIO)
    jars = {env._name(s): w.loc[s] for s in w.layout.substances if w.color[s]}
    other = next(c for c in ("yellow", "white", "black") if f"{c} paint" in jars)
    jar = env._name(jars["red paint"])
    env.step(f"put {other} paint in {jar}")
    snap = env.get_state()
    obs, _, terminated, _, _ = env.step(f"mix {jar}")
    if other == "black":  # red + black is no recipe
        assert obs["text"] == "The paints do not mix into a new color." and not terminated
    else:  # the red paint became orange or pink: violet can no longer be made
        assert terminated and env._failed()
    env.set_state(snap)
    assert not env._failed()


def test_circuit_lights_the_component() -> None:
    env, _, info = _instance("power component", "motor")
    w = env.world
    info = _until(env, info, lambda: w.focus == w.task.subject)
    assert "Connections: none." in env.step("look")[0]["text"]
    obs, *_ = env.step("connect battery to wire 1")
    assert obs["text"] == "The battery is now connected to the wire 1."
    env.step("connect motor to wire 1")
    env.step("connect motor to wire 2")
    snap = env.get_state()
    assert "connect battery to wire 2" in env._admissible
    assert "connect motor to wire 3" not in env._admissible  # both motor terminals in use
    obs, reward, terminated, _, info = env.step("connect battery to wire 2")
    assert obs["text"].endswith("The motor turns on.")
    assert reward == 1.0 and terminated and all(info["checklist"].values())
    # a loop through two wires only (a short circuit) powers nothing
    env.set_state(snap)
    env.step("disconnect motor")
    env.step("connect wire 1 to wire 2")
    obs, reward, terminated, _, _ = env.step("connect battery to wire 2")
    assert "turns on" not in obs["text"] and not terminated and env._powered() == set()


def test_wrong_focus_fails() -> None:
    env, _, info = _instance("power component", "motor")
    other = next(c for c in env.world.layout.comps if c != env.world.task.subject)
    _until(env, info, lambda: env.world.room == WORKSHOP)
    _, reward, terminated, _, info = env.step(f"focus on {env._name(other)}")
    assert terminated and reward == 0.0 and not info["success"]


def test_plant_grows_with_water_and_light() -> None:
    env, _, info = _instance("grow plant", "bean")
    w = env.world
    s = w.task.subject
    info = _until(env, info, lambda: w.loc[s] == POT1 and w.loc[w.layout.water] == POT1)
    assert not w.on[GROWLIGHT]
    env.step("wait")
    assert w.growth[s] == 0  # no light, no growth
    env.step("activate grow light")
    assert env._name(s) == "bean seed"
    obs, *_ = env.step("wait")
    assert env._name(s) == "bean seedling"
    assert obs["text"].startswith("You wait. The bean seed grows into a bean seedling.")
    env.step("wait")
    _, reward, terminated, _, info = env.step("wait")
    assert env._name(s) == "bean plant" and reward == 1.0 and terminated
    assert all(info["checklist"].values())
