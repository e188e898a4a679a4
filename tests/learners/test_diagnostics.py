"""Diagnostics: revealed tokens, the count-table baseline, token F1, the failure taxonomy
(each category from a constructed episode, some played in the real settings), and both
reports end to end on tiny trained agents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import envs
from agents import Agent, ModelConfig
from learners.data import collect_demos
from learners.diagnostics import (
    CATEGORIES,
    CountTable,
    EpisodeTrace,
    F1Tally,
    StepRecord,
    classify,
    command_kind,
    entity_vocabulary,
    failure_taxonomy,
    first_unmet,
    format_taxonomy,
    format_wm_report,
    goal_family,
    main,
    record_episode,
    reveal_class,
    revealed_tokens,
    token_f1,
    world_model_report,
)
from learners.imitation import BCConfig, train_bc
from learners.rollouts import collect_rollouts
from learners.world_model import IWMConfig, train_iwm

HOUSEHOLD, LAB, WEBNAV = "earlyexp/Household-v0", "earlyexp/Lab-v0", "earlyexp/WebNav-v0"
SMALL = ModelConfig(d_model=32, n_layers=1, ff_dim=64)


# -- revealed tokens ------------------------------------------------------------------------


def test_revealed_tokens_are_what_the_state_and_command_did_not_say() -> None:
    goal = "put a clean apple in fridge."
    text = "You arrive at fridge 1. The fridge 1 is closed."
    history = [
        ("You are in the middle of a room. You see a fridge 1, a cabinet 1.", "go to fridge 1")
    ]
    nxt = "You open the fridge 1. The fridge 1 is open. In it, you see a tomato 1, a apple 2."
    assert revealed_tokens(goal, text, history, "open fridge 1", nxt) == {"it", "tomato", "2"}
    # Without the history, what only the history said is revealed too.
    assert revealed_tokens(goal, text, [], "open fridge 1", nxt) == {
        "it",
        "tomato",
        "2",
        ",",
        "see",
    }
    # The command's own words are not revealed (nor are they when only the command says them).
    assert "open" not in revealed_tokens(goal, text, [], "open fridge 1", nxt)
    # In an agent's hashed id space: the same tokens, as ids.
    agent = Agent()
    ids = agent.tokenizer.token_ids
    got = revealed_tokens(goal, text, history, "open fridge 1", nxt, ids)
    assert got == {ids(w)[0] for w in ("it", "tomato", "2")}


@pytest.mark.parametrize(
    ("env_id", "command", "reveal", "kind"),
    [
        (HOUSEHOLD, "go to fridge 1", "arrive", "search"),
        (HOUSEHOLD, "open fridge 1", "open", "search"),
        (HOUSEHOLD, "examine cabinet 2", "examine", "search"),
        (HOUSEHOLD, "look", "look", "search"),
        (HOUSEHOLD, "take apple 1 from fridge 1", None, "take"),
        (HOUSEHOLD, "heat apple 1 with microwave 1", None, "transform"),
        (HOUSEHOLD, "use desklamp 1", None, "transform"),
        (HOUSEHOLD, "put apple 1 in fridge 1", None, "place"),
        (HOUSEHOLD, "close fridge 1", None, "other"),
        (HOUSEHOLD, "inventory", None, "other"),
        (LAB, "use thermometer on soup", "examine", "search"),
        (LAB, "close freezer", None, "transform"),
        (LAB, "focus on milk", None, "answer"),
        (LAB, "wait", None, "other"),
        (WEBNAV, "click[Orders]", "arrive", "search"),
        (WEBNAV, "go_back", "arrive", "search"),
        (WEBNAV, "click[Cancel order]", None, "transform"),
        (WEBNAV, "type[City][Boston]", None, "transform"),
        (WEBNAV, "answer[kofi]", None, "answer"),
        ("earlyexp/Tools-v0", "get_order_details(order_id='#W1')", "examine", "search"),
        ("earlyexp/Tools-v0", "cancel_pending_order(order_id='#W1')", None, "transform"),
        ("earlyexp/Shop-v0", "click[Buy Now]", None, "answer"),
    ],
)
def test_command_vocabularies(env_id: str, command: str, reveal, kind: str) -> None:
    assert reveal_class(command, env_id) == reveal
    assert command_kind(command, env_id) == kind


# -- F1 ---------------------------------------------------------------------------------------


def test_f1_against_hand_computed_values() -> None:
    assert token_f1({"a", "b", "c"}, {"b", "c", "d", "e"}) == pytest.approx(4 / 7)
    assert token_f1(set(), {"x"}) == 0.0
    assert token_f1(set(), set()) == 1.0
    tally = F1Tally()
    tally.add({"a", "b", "c"}, {"b", "c", "d", "e"})
    tally.add(set(), {"x"})
    tally.add(set(), set())  # nothing revealed, nothing predicted: counts in neither
    tally.add({"y"}, set())  # a predicted token where nothing was revealed: a false positive
    assert (tally.hits, tally.predicted, tally.actual) == (2, 4, 5)
    assert tally.precision == pytest.approx(2 / 4)
    assert tally.recall == pytest.approx(2 / 5)
    assert tally.micro == pytest.approx(2 * 2 / 9)
    assert tally.macro == pytest.approx((4 / 7 + 0) / 2)
    assert np.isnan(F1Tally().macro) and F1Tally().micro == 1.0


def test_entity_vocabulary_names_what_commands_act_on() -> None:
    from learners.data import Dataset, Episode, Step

    step = Step("x", ["take bowl 1 from shelf 1", "go to drawer 2", "look"], "look")
    dataset = Dataset(HOUSEHOLD, "train", 0, [Episode(0, "goal", False, "", [step])])
    agent = Agent()
    vocab = entity_vocabulary(agent, dataset)
    ids = agent.tokenizer.token_ids
    assert vocab == {ids(w)[0] for w in ("bowl", "1", "shelf", "drawer", "2")}


# -- the count-table baseline --------------------------------------------------------------


def _toy_world(episodes: int, seed: int = 0) -> list[tuple[int, str, set, set]]:
    """A deterministic world: each command always reveals the same tokens."""
    effects = {
        "open red box 1": {"ruby"},
        "open blue box 2": {"sapphire", "ring"},
        "go to hall": {"lamp", "rug"},
        "examine lamp": {"brass"},
    }
    rng = np.random.default_rng(seed)
    items = []
    for e in range(episodes):
        for command in rng.permutation(list(effects)):
            items.append((e, str(command), {"you", "see"}, set(effects[str(command)])))
    return items


def test_count_table_predicts_a_deterministic_world_perfectly() -> None:
    train, test = _toy_world(10), _toy_world(4, seed=1)
    table = CountTable.tuned(train)
    tally = F1Tally()
    for _, command, state, revealed in test:
        tally.add(table.predict(command, state), revealed)
    assert tally.micro == 1.0 and tally.macro == 1.0


def test_count_table_thresholds_back_off_and_exclude_the_state() -> None:
    items = [
        ("open box 1", {"gem"}),
        ("open box 1", {"gem", "dust"}),
        ("open box 1", {"gem"}),
        ("open box 1", {"coin"}),
        ("open crate 7", {"hay"}),
    ]
    table = CountTable(threshold=0.5, min_count=1).fit(items)
    assert table.predict("open box 1") == {"gem"}  # 3/4 >= 0.5; dust, coin 1/4
    assert CountTable(threshold=0.25).fit(items).predict("open box 1") == {"gem", "dust", "coin"}
    assert table.predict("open box 1", exclude={"gem"}) == set()  # the state already says it
    assert table.predict("open box 9") == {"gem"}  # unseen number: backs off to "open box"
    assert table.predict("open chest 2") == {"gem"}  # unseen object: the verb (gem 3/5)
    assert table.predict("close box 1") == set()  # nothing known
    # min_count: a key seen fewer times defers to a more general one
    assert CountTable(threshold=0.5, min_count=2).fit(items).predict("open crate 7") == {"gem"}


# -- the failure taxonomy on constructed episodes ------------------------------------------


def _step(text, command, expert, before=None, after=None, next_text="Nothing new."):
    before = before or {"done": False}
    return StepRecord(text, command, expert, before, after or dict(before), next_text)


def _trace(env_id, goal, steps, *, terminated=False, truncated=True, first="You are here."):
    checklist = steps[0].before if steps else {"done": False}
    return EpisodeTrace(env_id, 0, goal, first, checklist, steps, False, terminated, truncated)


HH_GOAL = "cool some apple and put it in fridge."
HH_LIST = {"apple is cool": False, "a cool apple is in fridge": False}
HH_FOUND = "You arrive at countertop 1. On the countertop 1, you see a apple 1."


def _hh(steps, **kw) -> EpisodeTrace:
    return _trace(HOUSEHOLD, HH_GOAL, steps, **kw)


def test_wrong_answer() -> None:
    goal = "Your task is to boil milk. First, focus on the substance. Then, take actions."
    steps = [
        _step(
            "You are in the kitchen. You see a glass cup (milk).", "focus on water", "focus on milk"
        )
    ]
    d = classify(_trace(LAB, goal, steps, terminated=True, truncated=False))
    assert d.category == "wrong answer" and "focus on water" in d.flags["wrong answer"]


def test_wrong_transformation() -> None:
    steps = [
        _step("x", "go to countertop 1", "go to countertop 1", HH_LIST, next_text=HH_FOUND),
        _step(
            HH_FOUND, "take apple 1 from countertop 1", "take apple 1 from countertop 1", HH_LIST
        ),
        _step("You pick up the apple 1.", "go to microwave 1", "go to fridge 1", HH_LIST),
        _step(
            "You arrive at microwave 1.", "heat apple 1 with microwave 1", "go to fridge 1", HH_LIST
        ),
    ]
    d = classify(_hh(steps))
    assert d.category == "wrong transformation"
    assert "heat apple 1" in d.flags["wrong transformation"]
    assert first_unmet(_hh(steps)) == "apple is cool"
    cooled = {**HH_LIST, "apple is cool": True}
    steps.append(
        _step("c", "cool apple 1 with fridge 1", "cool apple 1 with fridge 1", after=cooled)
    )
    assert first_unmet(_hh(steps)) == "a cool apple is in fridge"
    assert "ran out of steps" in d.flags


def test_transformations_that_are_not_wrong() -> None:
    # Switching a lamp in a task that names none: irrelevant, not a wrong transformation.
    pick = {"a keychain is on shelf": False}
    steps = [_step("x", "use floorlamp 1", "go to sofa 1", pick)]
    trace = _trace(HOUSEHOLD, "put some keychain on shelf.", steps)
    assert "wrong transformation" not in classify(trace).flags
    # ... but turning off the lamp a look-at-in-light task needs on undoes a checklist item.
    light = {"holding book": True, "desklamp is on": True, "next to the desklamp": True}
    off = {**light, "desklamp is on": False}
    steps = [_step("x", "use floorlamp 1", "look", light, off)]
    trace = _trace(HOUSEHOLD, "examine the book with the desklamp.", steps)
    assert "undid" in classify(trace).flags["wrong transformation"]
    # Toggling it on and off in a loop is the loop's.
    on = "You turn on the desklamp 1."
    steps = []
    for _ in range(3):
        steps += [
            _step("You arrive at desk 1.", "use desklamp 1", "go to bed 1", off, light),
            _step(
                on, "use desklamp 1", "go to bed 1", light, off, next_text="You arrive at desk 1."
            ),
        ]
    d = classify(_trace(HOUSEHOLD, "examine the book with the desklamp.", steps))
    assert d.category == "loop" and "wrong transformation" not in d.flags


def test_the_earliest_step_error_is_the_primary_category() -> None:
    cooled = {**HH_LIST, "apple is cool": True}
    steps = [
        _step("x", "go to countertop 1", "go to countertop 1", HH_LIST, next_text=HH_FOUND),
        _step("a", "put apple 1 in cabinet 2", "go to fridge 1", cooled),
        _step("b", "heat apple 1 with microwave 1", "go to fridge 1", cooled, HH_LIST),
    ]
    d = classify(_hh(steps))
    assert d.category == "wrong placement"
    assert list(d.flags) == ["wrong transformation", "wrong placement", "ran out of steps"]
    steps[1], steps[2] = steps[2], steps[1]
    assert classify(_hh(steps)).category == "wrong transformation"


def test_a_transformation_that_advances_the_checklist_is_not_wrong() -> None:
    cooled = {**HH_LIST, "apple is cool": True}
    steps = [
        _step("x", "go to countertop 1", "go to countertop 1", HH_LIST, next_text=HH_FOUND),
        # the second fridge instead of the expert's first: a deviation, but progress
        _step(
            "You arrive at fridge 2.",
            "cool apple 1 with fridge 2",
            "go to fridge 1",
            HH_LIST,
            cooled,
        ),
    ]
    d = classify(_hh(steps))
    assert "wrong transformation" not in d.flags and d.category == "ran out of steps"


def test_wrong_placement() -> None:
    cooled = {**HH_LIST, "apple is cool": True}
    steps = [
        _step("x", "go to countertop 1", "go to countertop 1", HH_LIST, next_text=HH_FOUND),
        _step("You arrive at cabinet 2.", "put apple 1 in cabinet 2", "go to fridge 1", cooled),
    ]
    d = classify(_hh(steps))
    assert d.category == "wrong placement"
    assert "does not name" in d.flags["wrong placement"]
    # Right destination, object not ready (not cooled): the transformation was skipped.
    steps[1] = _step(
        "You arrive at fridge 1.", "put apple 1 in fridge 1", "cool apple 1 with fridge 1", HH_LIST
    )
    d = classify(_hh(steps))
    assert d.category == "skipped transformation" and "not ready" in d.flags[d.category]
    # Another object is not the goal's: no wrong placement.
    steps[1] = _step(
        "You arrive at cabinet 2.", "put mug 1 in cabinet 2", "go to countertop 1", HH_LIST
    )
    assert "wrong placement" not in classify(_hh(steps)).flags


def test_placing_a_container_of_the_goal_substance_is_the_goal_object() -> None:
    goal = "Your task is to boil milk. First, focus on the substance. Then, take actions."
    listing = "You are in the kitchen. You see a counter on which is a glass cup (milk)."
    checklist = {"focused on the milk": True, "the milk is on the stove": False}
    steps = [_step(listing, "put glass cup in cupboard", "put glass cup on stove", checklist)]
    d = classify(_trace(LAB, goal, steps, first=listing))
    assert d.category == "wrong placement"


def test_loop() -> None:
    a = "You arrive at countertop 1. On the countertop 1, you see a apple 1."
    b = "You arrive at cabinet 1. The cabinet 1 is closed."
    steps = []
    for _ in range(3):
        steps += [
            _step(a, "go to cabinet 1", "take apple 1 from countertop 1", HH_LIST, next_text=b),
            _step(b, "go to countertop 1", "go to fridge 1", HH_LIST, next_text=a),
        ]
    d = classify(_hh(steps, first=a))
    assert d.category == "loop" and "3 times" in d.flags["loop"]
    assert classify(_hh(steps, first=a), loop_threshold=4).category == "ran out of steps"
    # The same command from the same observation where the expert does it too is no loop
    # (waiting for a freezer to work).
    waits = [_step("You wait.", "wait", "wait", HH_LIST) for _ in range(5)]
    assert "loop" not in classify(_hh(waits, first=a)).flags


def test_search_order() -> None:
    rooms = ["countertop 1", "cabinet 1", "drawer 1", "shelf 1"]
    steps = [
        _step("x", f"go to {r}", "go to countertop 2", HH_LIST, next_text=f"You arrive at {r}.")
        for r in rooms
    ]
    d = classify(_hh(steps))
    assert d.category == "search order" and "never observed 1 apple" in d.flags["search order"]
    # Two-object tasks need two instances seen.
    two = {"first apple on countertop": False, "second apple on countertop": False}
    seen_one = [_step("x", "go to shelf 1", "go to shelf 2", two, next_text="you see a apple 3.")]
    trace = _trace(HOUSEHOLD, "put two apple on countertop.", seen_one)
    assert classify(trace).category == "search order"
    # The lamp of a look-at-in-light task is needed too.
    light = {"holding book": False, "desklamp is on": False, "next to the desklamp": False}
    found_book = [_step("x", "go to bed 1", "go to desk 1", light, next_text="you see a book 1.")]
    trace = _trace(HOUSEHOLD, "examine the book with the desklamp.", found_book)
    d = classify(trace)
    assert d.category == "search order" and "desklamp" in d.flags["search order"]


def test_ran_out_of_steps_and_other() -> None:
    steps = [
        _step("x", "go to countertop 1", "go to countertop 1", HH_LIST, next_text=HH_FOUND),
        _step(HH_FOUND, "go to shelf 1", "take apple 1 from countertop 1", HH_LIST),
    ]
    d = classify(_hh(steps))
    assert d.category == "ran out of steps" and list(d.flags) == ["ran out of steps"]
    # An unrecoverable failure on a command of no decided kind, in a setting with no search rule.
    other = [_step("x", "look", "go north", {"done": False})]
    d = classify(_trace("user/Anything-v0", "do it", other, terminated=True, truncated=False))
    assert d.category == "other" and "look" in d.flags["other"]


def test_every_failure_gets_exactly_one_primary_category() -> None:
    with pytest.raises(ValueError, match="succeeded"):
        trace = _hh([])
        trace.success = True
        classify(trace)
    d = classify(_hh([], truncated=False))
    assert d.category in CATEGORIES and d.category in d.flags


# -- the taxonomy in the real settings -----------------------------------------------------


def _scripted(commands):
    """Play ``commands``, then look until the end."""
    queue = list(commands)

    def act(obs, info):
        return queue.pop(0) if queue else "look"

    return act


def test_real_household_loop_and_search_order() -> None:
    env = envs.make(HOUSEHOLD, split="test")
    trace = record_episode(env, 10_000, _scripted([]), HOUSEHOLD)  # "look" until the cap
    assert trace.truncated and not trace.success and len(trace.steps) == 50
    d = classify(trace)
    assert d.category == "loop"
    assert "search order" in d.flags  # it never went anywhere
    env.close()


def _household_seed(kind: str, objects: tuple[str, ...] = ()) -> int:
    env = envs.make(HOUSEHOLD, split="train").unwrapped
    for seed in range(500):
        env.reset(seed=seed)
        task = env.world.task
        if task.kind == kind and (not objects or task.otype in objects):
            return seed
    raise AssertionError(f"no {kind} task in 500 seeds")


def _deviating(env, deviate):
    """A policy that follows the expert until ``deviate(expert, info)`` returns a command
    (or a callable of ``info`` giving one) list, plays them, then looks until the end."""
    plan: list = []
    state = {"deviated": False}

    def act(obs, info):
        if plan:
            step = plan.pop(0)
            return step(info) if callable(step) else step
        if state["deviated"]:
            return "look"
        expert = env.unwrapped.expert_action()
        commands = deviate(expert, info)
        if commands:
            state["deviated"] = True
            plan.extend(commands)
            return act(obs, info)
        return expert

    return act


def _first(prefix: str):
    def pick(info):
        return next(a for a in info["admissible_actions"] if a.startswith(prefix))

    return pick


def test_real_household_wrong_transformation() -> None:
    seed = _household_seed("pick_cool_then_place", ("apple", "tomato", "potato", "mug", "cup"))
    env = envs.make(HOUSEHOLD, split="train")

    def heat_instead(expert, info):  # at the fridge to cool it: heat it in the microwave
        if expert.startswith("cool "):
            return [_first("go to microwave"), _first("heat ")]
        return None

    d = classify(record_episode(env, seed, _deviating(env, heat_instead), HOUSEHOLD))
    assert d.category == "wrong transformation" and "heat" in d.flags["wrong transformation"]


OPENABLE = ("fridge", "microwave", "safe", "cabinet", "drawer")


def test_real_household_wrong_placement() -> None:
    seed = _household_seed("pick_and_place")
    env = envs.make(HOUSEHOLD, split="train")

    def elsewhere(expert, info):  # holding the goal object: put it on the wrong receptacle
        world = env.unwrapped.world
        if world.held < 0 or not expert.startswith("go to "):
            return None
        target = world.task.target
        for go in info["admissible_actions"]:
            rtype = go.split()[2] if go.startswith("go to ") else ""
            if rtype and rtype != target and rtype not in OPENABLE:
                return [go, _first("put ")]
        return None

    trace = record_episode(env, seed, _deviating(env, elsewhere), HOUSEHOLD)
    assert not any(s.invalid for s in trace.steps)
    d = classify(trace)
    assert d.category == "wrong placement", d.flags
    assert "does not name" in d.flags["wrong placement"]


def test_real_lab_wrong_answer_and_webnav_search() -> None:
    env = envs.make(LAB, split="test")
    for seed in range(10_000, 10_050):  # an instance with a wrong thing to focus on at reset
        obs, info = env.reset(seed=seed)
        expert = env.unwrapped.expert_action()
        wrong = [a for a in info["admissible_actions"] if a.startswith("focus on") and a != expert]
        if wrong:
            break
    trace = record_episode(env, seed, _scripted([wrong[0]]), LAB)
    assert trace.terminated and not trace.success
    assert classify(trace).category == "wrong answer"
    # WebNav: its checklist says whether the task's page was visited.
    web = envs.make(WEBNAV, split="test")
    trace = record_episode(web, 10_000, lambda obs, info: info["admissible_actions"][0], WEBNAV)
    d = classify(trace)
    assert d.category in CATEGORIES
    visited = [k for k in trace.first_checklist if k.startswith("visited")]
    ever = any(s.after[visited[0]] for s in trace.steps)
    assert ("search order" in d.flags) == (not ever)


@pytest.mark.parametrize(
    ("env_id", "families"),
    [
        (HOUSEHOLD, {"pick", "clean", "heat", "cool", "look at in light", "two objects"}),
        (
            LAB,
            {"melt", "boil", "freeze", "measure temperature", "melting point", "mix paint"}
            | {"power component", "grow plant"},
        ),
        (
            WEBNAV,
            {"ask about account", "ask about order", "ask about thread", "address saved"}
            | {"order cancelled", "reply posted"},
        ),
    ],
)
def test_goal_families(env_id: str, families: set[str]) -> None:
    env = envs.make(env_id, split="train")
    seen = set()
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        seen.add(goal_family(env_id, obs["goal"], info["checklist"]))
    assert seen == families


# -- end to end on tiny trained agents ------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diag")
    demos, rollouts = root / "demos.jsonl", root / "rollouts.jsonl"
    dataset = collect_demos(HOUSEHOLD, 10, demos, progress=False)
    collect_rollouts(dataset, demos, rollouts, k=3, progress=False)
    return demos, rollouts


def test_failure_taxonomy_of_a_trained_agent(files, tmp_path: Path) -> None:
    demos, _ = files
    common = dict(env_id=HOUSEHOLD, demos=str(demos), eval_episodes=0, progress=False)
    train_bc(
        BCConfig(
            **common,
            out=str(tmp_path / "bc"),
            max_updates=20,
            val_every=10,
            model=SMALL,
            log_dir=str(tmp_path / "runs"),
        )
    )
    agent = Agent.load(tmp_path / "bc" / "agent.pt")
    report = failure_taxonomy(agent, HOUSEHOLD, episodes=6)
    assert report["successes"] + len(report["failures"]) == 6 == sum(report["families"].values())
    for failure in report["failures"]:
        assert failure["category"] in CATEGORIES
        assert failure["category"] in failure["flags"]
        assert next(c for c in CATEGORIES if c in failure["flags"]) == failure["category"]
    text = format_taxonomy(report)
    assert "| Household | 6 |" in text
    # The command line prints the same table and writes the JSON report.
    out = tmp_path / "failures.json"
    argv = ["failures", "--agent", str(tmp_path / "bc" / "agent.pt"), "--env", HOUSEHOLD]
    assert main([*argv, "--episodes", "6", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["failures"] == json.loads(json.dumps(report["failures"]))


def test_world_model_report_of_a_trained_agent(files, tmp_path: Path, capsys) -> None:
    demos, rollouts = files
    metrics = train_iwm(
        IWMConfig(
            env_id=HOUSEHOLD,
            demos=str(demos),
            rollout_file=str(rollouts),
            out=str(tmp_path / "iwm"),
            max_updates=20,
            wm_updates=10,
            val_every=5,
            eval_episodes=0,
            log_dir=str(tmp_path / "runs"),
            progress=False,
            model=SMALL,
        )
    )
    agent = Agent.load(tmp_path / "iwm" / "agent.pt")
    report = world_model_report(agent, demos, rollouts)
    rows = {r["group"].strip(): r for r in report["rows"]}
    assert report["val_episodes"] == 2 and report["demo_episodes"] == 10
    everything = rows["all transitions"]
    # Over every validation transition the head's all-token F1 is the run's own number.
    assert everything["head_all_f1"] == pytest.approx(metrics["wm_final_val_f1"], abs=1e-6)
    assert everything["copy_all_f1"] == pytest.approx(metrics["wm_final_copy_f1"], abs=1e-6)
    revealing = rows["revealing commands"]
    assert revealing["revealing"] > 0
    assert (
        revealing["transitions"] + rows["other commands"]["transitions"]
        == everything["transitions"]
    )
    assert (
        sum(rows[c]["transitions"] for c in ("arrive", "open", "examine", "look") if c in rows)
        == (revealing["transitions"])
    )
    for row in report["rows"]:
        for key, value in row.items():
            if key.endswith("f1") and not np.isnan(value):
                assert 0.0 <= value <= 1.0, (key, value)
    text = format_wm_report(report)
    assert re.search(r"\| revealing commands \| \d+ \|", text) and "(as saved;" in text
    # Stage 1 rebuilt alone is the run's stage 1: the same world-model validation F1.
    stage = tmp_path / "stage1"
    argv = ["stage1", "--demos", str(demos), "--rollouts", str(rollouts), "--out", str(stage)]
    argv += ["--like", str(tmp_path / "iwm" / "agent.pt"), "--set", "max_updates=20"]
    argv += ["wm_updates=10", "val_every=5", f"log_dir={tmp_path / 'runs'}"]
    assert main(argv) == 0
    rebuilt = json.loads((stage / "metrics.json").read_text())
    assert rebuilt["wm_val_f1"] == pytest.approx(metrics["wm_val_f1"], abs=1e-9)
    assert rebuilt["wm_updates"] == metrics["wm_updates"]
    first = world_model_report(Agent.load(stage / "agent.pt"), demos, rollouts)
    assert first["agent_stage"] == "after stage 1"
    assert first["rows"][-1]["head_all_f1"] == pytest.approx(metrics["wm_val_f1"], abs=1e-6)
    assert (
        main(
            [
                "wm",
                "--agent",
                str(tmp_path / "iwm" / "agent.pt"),
                "--demos",
                str(demos),
                "--rollouts",
                str(rollouts),
            ]
        )
        == 0
    )
    assert "revealing commands" in capsys.readouterr().out
