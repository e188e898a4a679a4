"""Tests of the ALFWorld-like household setting (earlyexp/Household-v0).

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

import envs
from envs.household import (
    OBJECTS,
    RECEPTACLES,
    TASK_TYPES,
    HouseholdEnv,
    compositions,
    goal_texts,
    layout_names,
)
from tests.envs.helpers import follow_expert, random_walk, walk_states

ENV_ID = "earlyexp/Household-v0"
CAP = 50


def _strip_numbers(text: str) -> str:
    return re.sub(r"\s*\d+", "", text)


def _world_key(env: HouseholdEnv) -> tuple:
    """The mutable state of an env, comparable with ``==``."""
    w = env.world
    return (
        w.loc,
        w.held,
        tuple(w.obj_loc),
        tuple(w.flags),
        tuple(w.is_open),
        tuple(w.lamp_on),
        w.seen,
    )


# -- expert --------------------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_instance(split: str) -> None:
    env = envs.make(ENV_ID, split=split)
    lengths = []
    for seed in range(200):
        _, info = env.reset(seed=seed)
        solved, n, info = follow_expert(env, info)
        assert solved, f"seed {seed}: expert failed, goal {env.unwrapped.goal!r}"
        assert all(info["checklist"].values())
        lengths.append(n)
    # the expert searches receptacles it has not looked in, so episodes vary in length,
    # but they stay well within the cap
    assert sum(lengths) / len(lengths) <= 12
    assert max(lengths) <= CAP * 2 // 3


def _search_order_from_text(goal_otype: str, goal_target: str, intro: str) -> list[str]:
    """The expert's search order rebuilt from what the agent reads: the goal and the room
    listing (receptacles where the object spawns first, openless before openable, then
    the listing order)."""
    names = re.findall(r"a ([a-z]+ \d+)", intro.partition("you see ")[2])
    homes = set(OBJECTS[goal_otype][1]) - {goal_target}

    def key(i: int) -> tuple:
        rtype = names[i].split()[0]
        return (rtype not in homes, RECEPTACLES[rtype][0], i)

    return [names[i] for i in sorted(range(len(names)), key=key)]


@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_searches_instead_of_peeking(split: str) -> None:
    """Where no goal object is in the first receptacle of the search order, the expert
    goes there first, not straight to the hidden object; the order follows from the text."""
    env = HouseholdEnv(split)
    checked = 0
    for seed in range(300):
        obs, info = env.reset(seed=seed)
        w = env.world
        t = w.task
        order = [w.layout.rnames[r] for r in t.search]
        assert order == _search_order_from_text(t.otype, t.target, obs["text"])
        hiding = {w.layout.rnames[w.obj_loc[o]] for o in t.goal_objs}
        if order[0] in hiding:
            continue
        action = env.expert_action()
        assert action == f"go to {order[0]}", (seed, action, order)
        assert all(action != f"go to {r}" for r in hiding)
        checked += 1
    assert checked >= 100


def _hide_elsewhere(env: HouseholdEnv, rng: random.Random) -> bool:
    """Move one goal object from a receptacle the agent has not observed to another
    unobserved receptacle where such objects spawn; False if there is no such move."""
    w = env.world
    t = w.task
    unseen = [r for r in range(len(w.layout.rnames)) if not w.seen >> r & 1]
    homes = [r for r in unseen if t.plausible >> r & 1]
    movable = [o for o in t.goal_objs if w.obj_loc[o] in unseen]
    if not movable:
        return False
    o = rng.choice(movable)
    others = [r for r in homes if r != w.obj_loc[o]]
    if not others:
        return False
    w.obj_loc[o] = rng.choice(others)
    return True


@pytest.mark.parametrize("split", envs.SPLITS)
@pytest.mark.parametrize("walk", [0, 6])
def test_expert_acts_on_the_agents_information_only(split: str, walk: int) -> None:
    """Two instances the agent cannot tell apart (same goal and observation history, a goal
    object hidden in different unobserved receptacles) get the same expert actions until
    their observations differ; both are still solved."""
    env, twin = HouseholdEnv(split), HouseholdEnv(split)
    shared_steps = diverged = 0
    for seed in range(100):
        rng = random.Random(seed)
        obs, info = env.reset(seed=seed)
        info, done = random_walk(env, info, walk, rng)
        if done:
            continue
        twin.set_state(env.get_state())
        if not _hide_elsewhere(twin, rng):
            continue
        assert _world_key(env) != _world_key(twin)
        # lockstep while what the agent sees (text, reward, end, commands) agrees
        for _ in range(CAP):
            action = env.expert_action()
            assert twin.expert_action() == action, (seed, walk)
            shared_steps += 1
            a, b = env.step(action), twin.step(action)
            differ = a[:3] != b[:3] or a[4]["admissible_actions"] != b[4]["admissible_actions"]
            if differ or a[2]:
                break
        diverged += differ
        # then each on its own: both instances are solved
        for e, out in ((env, a), (twin, b)):
            for _ in range(CAP):
                if out[2]:
                    break
                out = e.step(e.expert_action())
            assert out[2] and out[4]["success"], (seed, walk)
    assert diverged >= 20 and shared_steps >= 100


# -- splits --------------------------------------------------------------------------------
def test_composition_partition() -> None:
    train, test = set(compositions("train")), set(compositions("test"))
    assert train and test
    assert not train & test
    assert 0.1 < len(test) / (len(train) + len(test)) < 0.3
    for split in (train, test):
        assert {c[0] for c in split} == set(TASK_TYPES)
    # the partition is fixed: calling again gives the same answer
    assert compositions("train") == compositions("train")
    with pytest.raises(ValueError, match="unknown split"):
        compositions("validation")


def _generated(split: str, seeds: range) -> tuple[Counter, set[str], set[str]]:
    env = HouseholdEnv(split)
    kinds: Counter = Counter()
    goals, layouts = set(), set()
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        kinds[env.world.task.kind] += 1
        goals.add(_strip_numbers(obs["goal"]))
        layouts.add(env.world.layout.name)
    return kinds, goals, layouts


def test_test_goals_never_generated_in_train() -> None:
    train_kinds, train_goals, train_layouts = _generated("train", range(3000))
    test_kinds, test_goals, test_layouts = _generated("test", range(1000))
    assert set(train_kinds) == set(test_kinds) == set(TASK_TYPES)
    assert not train_goals & test_goals
    # every generated goal phrases a composition of its own split
    for split, goals in (("train", train_goals), ("test", test_goals)):
        allowed = {g for c in compositions(split) for g in goal_texts(c)}
        assert goals <= allowed
    # some layouts occur only in test
    assert train_layouts <= set(layout_names("train"))
    assert test_layouts - set(layout_names("train"))


# -- commands ------------------------------------------------------------------------------
def test_admissible_list_sizes() -> None:
    """Every state offers 10 to 45 commands (that they are valid: tests/envs/test_contract.py)."""
    sizes = [len(info["admissible_actions"]) for info in walk_states(HouseholdEnv(), range(30), 12)]
    assert min(sizes) >= 10 and max(sizes) <= 45


# -- text and checklist --------------------------------------------------------------------
def _first(actions: list[str], prefix: str) -> str | None:
    return next((a for a in actions if a.startswith(prefix)), None)


def test_text_format() -> None:
    env = HouseholdEnv()
    obs, info = env.reset(seed=0)
    assert obs["text"].startswith("You are in the middle of a room. Looking quickly around you")
    assert env.step("inventory")[0]["text"] == "You are not carrying anything."

    # a closed receptacle, opened, an object taken from it, put back
    for seed in range(100):
        obs, info = env.reset(seed=seed)
        lay = env.world.layout
        # an openable receptacle (closed at reset) with something in it
        filled = [r for r in range(len(lay.rnames)) if lay.openable[r] and r in env.world.obj_loc]
        if filled:
            break
    rn = lay.rnames[filled[0]]
    obs, _, _, _, info = env.step(f"go to {rn}")
    assert obs["text"] == f"You arrive at {rn}. The {rn} is closed."
    assert _first(info["admissible_actions"], "take") is None
    obs, _, _, _, info = env.step(f"open {rn}")
    assert obs["text"].startswith(f"You open the {rn}. The {rn} is open. In it, you see a ")
    take = _first(info["admissible_actions"], "take ")
    obj = take[len("take ") : take.index(" from ")]
    obs, _, _, _, info = env.step(take)
    assert obs["text"] == f"You pick up the {obj} from the {rn}."
    assert env.step("inventory")[0]["text"] == f"You are carrying: a {obj}."
    assert _first(info["admissible_actions"], "take ") is None  # one object at a time
    obs, _, _, _, info = env.step(f"put {obj} in {rn}")
    assert obs["text"] == f"You put the {obj} in the {rn}."
    obs, _, _, _, info = env.step(f"close {rn}")
    assert obs["text"] == f"You close the {rn}."

    # a surface: "On the countertop 1, you see ..."
    for seed in range(100):
        obs, info = env.reset(seed=seed)
        surface = _first(info["admissible_actions"], "go to countertop")
        if surface:
            break
    rn = surface[len("go to ") :]
    obs, *_ = env.step(surface)
    assert re.fullmatch(
        rf"You arrive at {rn}\. On the {rn}, you see (nothing|a [a-z]+ \d+(, a [a-z]+ \d+)*)\.",
        obs["text"],
    )


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("pick_clean_then_place", r"You clean the [a-z]+ \d+ using the sinkbasin \d+\."),
        ("pick_heat_then_place", r"You heat the [a-z]+ \d+ using the microwave \d+\."),
        ("pick_cool_then_place", r"You cool the [a-z]+ \d+ using the fridge \d+\."),
        ("look_at_obj_in_light", r"You turn on the (desklamp|floorlamp) \d+\."),
    ],
)
def test_transformation_text_and_checklist(kind: str, pattern: str) -> None:
    env = HouseholdEnv()
    for seed in range(200):
        _, info = env.reset(seed=seed)
        if env.world.task.kind == kind:
            break
    task = env.world.task
    keys = list(info["checklist"])
    if kind == "look_at_obj_in_light":
        assert keys == [
            f"holding {task.otype}",
            f"{task.target} is on",
            f"next to the {task.target}",
        ]
    else:
        word = {"pick_clean_then_place": "clean", "pick_heat_then_place": "hot"}.get(kind, "cool")
        assert keys[0] == f"{task.otype} is {word}"
        assert re.fullmatch(rf"a {word} {task.otype} is (in|on) {task.target}", keys[1])
    texts = []
    while True:
        obs, reward, terminated, _, info = env.step(env.expert_action())
        texts.append(obs["text"])
        if terminated:
            break
    assert any(re.fullmatch(pattern, t) for t in texts), texts
    assert reward == 1.0 and all(info["checklist"].values())


def test_two_object_checklist() -> None:
    env = HouseholdEnv()
    for seed in range(200):
        _, info = env.reset(seed=seed)
        if env.world.task.kind == "pick_two_obj_and_place":
            break
    first, second = info["checklist"]
    assert first.startswith("first ") and second.startswith("second ")
    seen = []
    while not info["success"]:
        _, _, _, _, info = env.step(env.expert_action())
        seen.append(tuple(info["checklist"].values()))
    assert (True, False) in seen and seen[-1] == (True, True)
