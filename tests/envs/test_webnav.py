"""Tests of the WebArena-like site navigation setting (earlyexp/WebNav-v0).

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

import envs
from envs.webnav import (
    CANCELLABLE,
    FAMILIES,
    INFO_FAMILIES,
    ORDER,
    TEST_SLOTS,
    THREAD,
    TOPICS,
    VARIANTS,
    WebNavEnv,
    compositions,
    goal_templates,
    variant_names,
)
from tests.envs.helpers import follow_expert, walk_states

ENV_ID = "earlyexp/WebNav-v0"
CAP = 30


def _world_key(env: WebNavEnv) -> tuple:
    """The mutable state of an env, comparable with ``==``."""
    w = env.world
    return (
        w.page,
        w.history,
        tuple(w.address),
        tuple(w.draft),
        w.message,
        tuple(w.status),
        w.posted,
        w.visited,
        w.answered,
        w.failed,
    )


def _instance(family: str, split: str = "train", slot: str | None = None, where=None) -> tuple:
    """A reset env whose task is of ``family`` (and ``slot``, and for which ``where(env)``
    holds), with its reset info."""
    env = WebNavEnv(split)
    for seed in range(500):
        _, info = env.reset(seed=seed)
        t = env.world.task
        if t.family == family and slot in (None, t.slot) and (where is None or where(env)):
            return env, info
    raise AssertionError(f"no {family}/{slot} instance in 500 seeds")


def _goto(env: WebNavEnv, page: int) -> dict:
    """Navigate to ``page`` along its chain of links (the expert's route)."""
    info = {}
    for target in env.world.site.pages[page].chain:
        *_, info = env.step(env.world.site.pages[env.world.page].click_to[target])
    assert env.world.page == page
    return info


# -- contract ------------------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_instance(split: str) -> None:
    env = envs.make(ENV_ID, split=split)
    lengths, families = [], Counter()
    for seed in range(100):
        _, info = env.reset(seed=seed)
        solved, n, info = follow_expert(env, info, CAP)
        assert solved, f"seed {seed}: expert failed, goal {env.unwrapped.goal!r}"
        assert all(info["checklist"].values())
        lengths.append(n)
        families[env.unwrapped.world.task.family] += 1
    assert set(families) == set(FAMILIES)
    # up to 5 orders searched for one named by an item (test split): 2 clicks per order
    assert min(lengths) >= 2 and max(lengths) <= (6 if split == "train" else 11)


def test_expert_searches_the_orders_for_an_item() -> None:
    """An order named by an item is found by opening the orders in the list's order (an
    order's items show only on its page), never by going straight to it; orders the agent
    already opened are skipped, and one it saw the item in is gone back to."""
    env = WebNavEnv("test")
    first = lambda: 5 + len(env.world.site.forums) + len(env.world.site.threads)  # noqa: E731
    positions = set()
    for seed in range(300):
        _, info = env.reset(seed=seed)
        t = env.world.task
        if t.slot != "item":
            continue
        target = t.page - first()
        positions.add(target)
        opened = []
        while True:
            before = env.world.page
            _, _, terminated, _, info = env.step(env.expert_action())
            page = env.world.page
            if page != before and env.world.site.pages[page].kind == ORDER:
                opened.append(page - first())
            if terminated:
                break
        assert info["success"] and opened == list(range(target + 1)), (seed, opened)
    assert len(positions) >= 4
    # from a state where the agent has seen the item's order and left it: straight back
    env, _ = _instance("cancel_order", "test", "item", lambda e: e.world.task.page > first())
    _goto(env, env.world.task.page)
    env.step("go_back")
    assert env.expert_action() == env.world.site.pages[env.world.page].click_to[env.world.task.page]


def test_never_solved_or_failed_at_reset() -> None:
    for split in envs.SPLITS:
        env = WebNavEnv(split)
        for seed in range(200):
            _, info = env.reset(seed=seed)
            assert not list(info["checklist"].values())[-1]
            assert not info["success"] and not env.world.failed


# -- programmatic checks per family ---------------------------------------------------------
_INFO_CASES = [
    (split, family, slot)
    for split in envs.SPLITS
    for family, slot in compositions(split)
    if family in INFO_FAMILIES
]


@pytest.mark.parametrize(("split", "family", "slot"), _INFO_CASES)
def test_info_tasks_check_the_answer(split: str, family: str, slot: str) -> None:
    env, info = _instance(family, split, slot)
    _goto(env, env.world.task.page)
    snap = env.get_state()
    truth = env._truth()
    obs, reward, terminated, _, info = env.step(f"answer[{truth}]")
    assert reward == 1.0 and terminated and info["success"]
    assert obs["text"] == f"You answered '{truth}'."
    # any other value shown on the page is wrong and ends the episode as a failure
    env.set_state(snap)
    wrong = next(
        a for a in info["admissible_actions"] if a.startswith("answer[") and a != f"answer[{truth}]"
    )
    _, reward, terminated, _, info = env.step(wrong)
    assert reward == 0.0 and terminated and not info["success"]


def test_address_answer_follows_the_saved_state() -> None:
    env, _ = _instance("ask_address", slot="city")
    _goto(env, 3)  # the address form
    new_city = next(
        a
        for a in env.admissible_actions()
        if a.startswith("type[City]") and env.world.address[1] not in a
    )
    env.step(new_city)
    env.step("submit")
    value = new_city[len("type[City][") : -1]
    assert f"text 'City: {value}'" in env._text
    _, reward, terminated, *_ = env.step(f"answer[{value}]")
    assert reward == 1.0 and terminated


def test_update_address_is_judged_by_the_saved_state() -> None:
    env, info = _instance("update_address", slot="city")
    t = env.world.task
    labels = list(info["checklist"])
    assert labels == ["visited the address form", f"City field = '{t.value}'", "address saved"]
    info = _goto(env, t.page)
    others = [
        a for a in info["admissible_actions"] if a.startswith("type[City]") and t.value not in a
    ]
    # typing alone changes nothing on the site; leaving the form discards the draft
    _, reward, _, _, info = env.step(f"type[City][{t.value}]")
    assert reward == 0.0 and info["checklist"][labels[1]] and not info["checklist"][labels[2]]
    env.step("go_back")
    assert env.world.address[1] != t.value and not env.checklist()[labels[1]]
    # saving a wrong value is reversible: the episode goes on and can still succeed
    _goto(env, t.page)
    env.step(others[0])
    _, reward, terminated, _, info = env.step("submit")
    assert reward == 0.0 and not terminated and env.world.page == 2
    _goto(env, t.page)
    env.step(f"type[City][{t.value}]")
    _, reward, terminated, _, info = env.step("submit")
    assert reward == 1.0 and terminated and all(info["checklist"].values())
    # an answer to a state-changing task is a failure
    env, _ = _instance("update_address")
    _goto(env, 2)
    answer = next(a for a in env.admissible_actions() if a.startswith("answer["))
    _, reward, terminated, _, info = env.step(answer)
    assert reward == 0.0 and terminated and not info["success"]


def _other_cancellable(env: WebNavEnv) -> list[int]:
    """Order pages other than the task's that show a cancel button."""
    pages = env.world.site.pages
    return [
        p
        for p in range(len(pages))
        if pages[p].kind == ORDER
        and p != env.world.task.page
        and env.world.status[pages[p].ref] in CANCELLABLE
    ]


def test_cancel_order_checks_which_order() -> None:
    env, info = _instance("cancel_order", where=_other_cancellable)
    t = env.world.task
    number = env.world.site.orders[t.index].number
    assert list(info["checklist"]) == [f"visited order {number}", f"order {number} cancelled"]
    cancel = f"click[{env.world.site.variant.cancel}]"
    # cancelling another order is irreversible and fails the task
    snap = env.get_state()
    _goto(env, _other_cancellable(env)[0])
    _, reward, terminated, _, info = env.step(cancel)
    assert reward == 0.0 and terminated and not info["success"]
    env.set_state(snap)
    info = _goto(env, t.page)
    assert cancel in info["admissible_actions"]
    obs, reward, terminated, _, info = env.step(cancel)
    assert reward == 1.0 and terminated and env.world.status[t.index] == "Cancelled"
    assert "text 'Status: Cancelled'" in obs["text"] and "button" not in obs["text"]


def test_post_reply_checks_thread_and_text() -> None:
    env, info = _instance("post_reply")
    t = env.world.task
    snap = env.get_state()
    info = _goto(env, t.page)
    n_before = env._text.count("\ntext '")
    # an empty reply box posts nothing
    obs, reward, terminated, _, info = env.step("submit")
    assert "The reply is empty." in obs["text"] and not terminated
    # another message in the right thread is a wrong, irreversible post
    other = next(
        a for a in info["admissible_actions"] if a.startswith("type[Message]") and t.value not in a
    )
    env.step(other)
    _, reward, terminated, _, info = env.step("submit")
    assert reward == 0.0 and terminated and not info["success"]
    # the right message in another thread fails too
    env.set_state(snap)
    pages = env.world.site.pages
    wrong = next(p for p in range(len(pages)) if pages[p].kind == THREAD and p != t.page)
    _goto(env, wrong)
    env.step(f"type[Message][{t.value}]")
    _, reward, terminated, *_ = env.step("submit")
    assert reward == 0.0 and terminated
    # the right message in the right thread succeeds and shows up on the page
    env.set_state(snap)
    _goto(env, t.page)
    env.step(f"type[Message][{t.value}]")
    obs, reward, terminated, _, info = env.step("submit")
    assert reward == 1.0 and terminated and all(info["checklist"].values())
    assert f"text '{env.world.site.username}: {t.value}'" in obs["text"]
    assert obs["text"].count("\ntext '") == n_before + 1


def test_unrequested_cancel_fails_an_info_task() -> None:
    env, _ = _instance("ask_order", slot="status")
    t = env.world.task
    env.world.status[t.index] = "Pending"  # make its cancel button available
    _goto(env, t.page)
    _, reward, terminated, _, info = env.step(f"click[{env.world.site.variant.cancel}]")
    assert reward == 0.0 and terminated and not info["success"]


# -- splits --------------------------------------------------------------------------------
def test_composition_partition() -> None:
    train, test = set(compositions("train")), set(compositions("test"))
    assert train and test and not train & test
    for split in (train, test):
        assert {f for f, _ in split} == set(FAMILIES)
    assert {(f, s) for f, slots in TEST_SLOTS.items() for s in slots} == test
    assert set(variant_names("test")) - set(variant_names("train")) == {
        v.name for v in VARIANTS if v.test_only
    }
    with pytest.raises(ValueError, match="unknown split"):
        compositions("validation")


def _matches(template: str, goal: str, slot: str) -> bool:
    """Whether ``goal`` is ``template`` filled in, its field word (if any) being ``slot``."""
    pattern = re.escape(template).replace(re.escape("{f}"), re.escape(slot))
    pattern = re.sub(r"\\\{[a-z]\\\}", ".+", pattern)
    return re.fullmatch(pattern, goal) is not None


def test_test_compositions_never_generated_in_train() -> None:
    for split, n in (("train", 1500), ("test", 500)):
        env = WebNavEnv(split)
        comps, variants = set(), set()
        for seed in range(n):
            obs, _ = env.reset(seed=seed)
            w = env.world
            t = w.task
            comps.add((t.family, t.slot))
            variants.add(w.site.variant.name)
            # the goal phrases its own composition and no composition of the other split;
            # a reply task's held-out part is the topic of the thread its goal names
            assert any(_matches(g, obs["goal"], t.slot) for g in goal_templates((t.family, t.slot)))
            other = "test" if split == "train" else "train"
            if t.family == "post_reply":
                thread = w.site.threads[t.index]
                assert w.site.forums[thread.forum] == t.slot and thread.title in obs["goal"]
                assert thread.title not in {
                    x for c in compositions(other) for x in TOPICS.get(c[1], ())
                }
            else:
                for c in compositions(other):
                    assert not any(_matches(g, obs["goal"], c[1]) for g in goal_templates(c))
        # every composition and variant of the split occurs, and none of the other split
        assert comps == set(compositions(split)), split
        assert variants == set(variant_names(split)), split


# -- text and commands ----------------------------------------------------------------------
FEEDBACK = re.compile(
    r"You typed '[^']+' into '[^']+'\.|Your (address was saved|reply was posted)\."
    r"|The reply is empty\.|Order #\d+ was cancelled\."
)
ELEMENT = re.compile(r"(link|heading|text|button) '[^'\[\]]+'|textbox '[^']+' value='[^']*'")


def test_page_rendering_format() -> None:
    env = WebNavEnv()
    obs, info = env.reset(seed=0)
    v = env.world.site.variant
    nav = f"link '{v.home}'  link '{v.forums}'  link '{v.account}'  link '{v.orders}'"
    assert obs["text"].split("\n")[:2] == [nav, f"heading 'Welcome to {v.site}'"]
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        rng = random.Random(seed)
        for _ in range(12):
            lines = obs["text"].split("\n")
            if not lines[0].startswith("link '"):  # a line of feedback, then the page
                assert FEEDBACK.fullmatch(lines.pop(0)), obs["text"]
            for line in lines:
                for element in line.split("  "):
                    assert ELEMENT.fullmatch(element), (element, obs["text"])
            assert len(obs["text"].split()) <= 120 and obs["text"].isascii()
            # every answer candidate is a value the page shows
            for a in info["admissible_actions"]:
                if a.startswith("answer["):
                    assert a[7:-1] in obs["text"]
            obs, _, terminated, _, info = env.step(rng.choice(info["admissible_actions"]))
            if terminated:
                break
    # the address form shows drafts as textbox values
    env, info = _instance("update_address", slot="city")
    info = _goto(env, 3)
    t = env.world.task
    obs, *_ = env.step(f"type[City][{t.value}]")
    assert obs["text"].startswith(f"You typed '{t.value}' into 'City'.\n")
    assert f"textbox 'City' value='{t.value}'" in obs["text"]
    assert obs["text"].endswith(f"button '{env.world.site.variant.save}'")


def test_admissible_commands_are_bounded() -> None:
    """At most 40 short commands (that they are valid: tests/envs/test_contract.py)."""
    sizes = []
    for info in walk_states(WebNavEnv("test"), range(30), 10):
        sizes.append(len(info["admissible_actions"]))
        assert all(len(a.split()) < 20 for a in info["admissible_actions"])
    assert max(sizes) <= 40


def test_bad_input_is_inadmissible_and_changes_nothing() -> None:
    env, info = _instance("update_address", slot="city")
    info = _goto(env, 3)  # the address form
    before = _world_key(env)
    bad = (
        "click[Orders",  # malformed
        "click[Nowhere]",  # unknown element
        "type[Heading][x]",  # not a field
        "type[City][Atlantis]",  # a value outside the candidates
        "click[City]",  # a text box is not clickable
        "answer[anything]",  # the form shows no answer values
        "hello",
        "",
    )
    for command in bad:
        obs, reward, terminated, truncated, step_info = env.step(command)
        assert step_info["invalid_action"], command
        assert reward == 0.0 and not terminated and not truncated
        assert "not available" in obs["text"]
        assert _world_key(env) == before
        assert step_info["admissible_actions"] == info["admissible_actions"]
    # typing into a page without a form, and go_back with an empty history
    env.reset(seed=0)
    assert env.step("type[City][Boston]")[4]["invalid_action"]
    assert env.step("go_back")[4]["invalid_action"]


def test_go_back_follows_the_history() -> None:
    env = WebNavEnv()
    env.reset(seed=1)
    v = env.world.site.variant
    env.step(f"click[{v.forums}]")
    forum = env.world.site.forums[0]
    env.step(f"click[{forum}]")
    assert env.world.history == (0, 1)
    env.step("go_back")
    assert env.world.page == 1 and env.world.history == (0,)
    env.step("go_back")
    assert env.world.page == 0 and "go_back" not in env.admissible_actions()
