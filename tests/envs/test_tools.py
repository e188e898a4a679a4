"""Tests of the tau-bench-retail-like tool-use setting (earlyexp/Tools-v0).

The contract's generic properties are tested for every setting in tests/envs/test_contract.py.
"""

from __future__ import annotations

import copy
import random

import pytest

import envs
from envs.tools import (
    KINDS,
    QUESTIONS,
    ToolsEnv,
    cancel_cmd,
    compositions,
    exchange_cmd,
    order_cmd,
    product_cmd,
    return_cmd,
    user_cmd,
)
from tests.envs.helpers import follow_expert, random_walk, walk_states

ENV_ID = "earlyexp/Tools-v0"
CAP = 30


def _reset_kind(env: ToolsEnv, kind: str, cond=lambda env: True, start: int = 0) -> dict:
    """Reset to the first seed (from ``start``) whose task is ``kind`` and meets ``cond``."""
    for seed in range(start, start + 500):
        _, info = env.reset(seed=seed)
        if env.world.task.kind == kind and cond(env):
            return info
    raise AssertionError(f"no {kind} instance found")


def _step(env: ToolsEnv, command: str) -> tuple[str, float, bool, dict]:
    """Step an admissible command; return (text, reward, terminated, info)."""
    assert command in env.admissible_actions(), (command, env.admissible_actions())
    obs, reward, terminated, _, info = env.step(command)
    assert not info["invalid_action"]
    return obs["text"], reward, terminated, info


def _identify(env: ToolsEnv) -> None:
    """Follow the expert until the customer is identified."""
    while not env.world.identified:
        _step(env, env.expert_action())


# -- expert ----------------------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_expert_solves_every_instance(split: str) -> None:
    env = envs.make(ENV_ID, split=split)
    lengths, kinds = [], set()
    for seed in range(100):
        _, info = env.reset(seed=seed)
        solved, n, info = follow_expert(env, info, CAP)
        assert solved, f"seed {seed}: expert failed, goal {env.unwrapped.goal!r}"
        assert all(info["checklist"].values())
        u = env.unwrapped
        assert u.db_key() == u.goal_db_key()  # success means the goal database
        lengths.append(n)
        kinds.add(u.world.task.kind)
    assert kinds == set(KINDS)
    assert 4 <= sum(lengths) / len(lengths) <= 7 and max(lengths) <= 10


# -- domain rules --------------------------------------------------------------------------
def _other_order(env: ToolsEnv, status: str) -> str | None:
    t = env.world.task
    user = env.world.db.users[t.user_id]
    return next((o for o in user.order_ids if env.world.db.orders[o].status == status), None)


def test_cancel_non_pending_order_is_an_error_and_changes_nothing() -> None:
    env = ToolsEnv()
    _reset_kind(env, "cancel", lambda e: _other_order(e, "delivered") is not None)
    _identify(env)
    _step(env, user_cmd(env.world.task.user_id))
    delivered = _other_order(env, "delivered")
    _step(env, order_cmd(delivered))
    _step(env, "ask[reason]")
    before = env.db_key()
    text, reward, terminated, _ = _step(env, cancel_cmd(delivered, env.world.task.reason))
    assert text == "Result: Error: non-pending order cannot be cancelled"
    assert env.db_key() == before and reward == 0.0 and not terminated
    # and the task is still solvable
    assert follow_expert(env, {"admissible_actions": env.admissible_actions()}, CAP)[0]


def test_write_before_authentication_is_an_error() -> None:
    env = ToolsEnv()
    _reset_kind(env, "cancel")
    t = env.world.task
    for question in ("order id", "reason"):
        _step(env, f"ask[{question}]")
    _step(env, order_cmd(t.order_id))
    text, _, terminated, _ = _step(env, cancel_cmd(t.order_id, t.reason))
    assert text.startswith("Result: Error: authenticate the customer first")
    assert env.world.changes == {} and not terminated


def test_return_needs_a_delivered_order() -> None:
    env = ToolsEnv()
    _reset_kind(env, "return", lambda e: _other_order(e, "pending") is not None)
    _identify(env)
    _step(env, user_cmd(env.world.task.user_id))
    pending = _other_order(env, "pending")
    _step(env, order_cmd(pending))
    item = env.world.db.orders[pending].items[0].item_id
    text, _, terminated, _ = _step(env, return_cmd(pending, (item,)))
    assert text == "Result: Error: non-delivered order cannot be returned"
    assert env.db_key()[0] == () and not terminated


def _mixed_exchange(env: ToolsEnv) -> bool:
    t = env.world.task
    return len(env.world.db.orders[t.order_id].product_ids) > 1


def test_exchange_to_another_product_is_an_error() -> None:
    env = ToolsEnv()
    _reset_kind(env, "exchange", _mixed_exchange)
    t = env.world.task
    _identify(env)
    _step(env, "ask[order id]")
    _step(env, order_cmd(t.order_id))
    other = next(p for p in env.world.db.orders[t.order_id].product_ids if p != t.product_id)
    _step(env, product_cmd(other))
    new = env.world.db.products[other].available[0].item_id
    before = env.db_key()
    text, _, terminated, _ = _step(env, exchange_cmd(t.order_id, t.item_ids, (new,)))
    assert text == (
        f"Result: Error: new item {new} is not a variant of the same product "
        f"as item {t.item_ids[0]}"
    )
    assert env.db_key() == before and not terminated
    # the right product and variant: the exchange succeeds
    _step(env, product_cmd(t.product_id))
    text, reward, terminated, info = _step(env, exchange_cmd(t.order_id, t.item_ids, t.new_ids))
    assert text.startswith(f"Result: exchange requested for order {t.order_id}")
    assert reward == 1.0 and terminated and info["success"]


def test_wrong_irreversible_write_fails_the_episode() -> None:
    env = ToolsEnv()
    _reset_kind(env, "return", lambda e: len(e.world.db.orders[e.world.task.order_id].items) > 1)
    t = env.world.task
    _identify(env)
    _step(env, "ask[order id]")
    _step(env, order_cmd(t.order_id))
    wrong = next(
        v.item_id for v in env.world.db.orders[t.order_id].items if v.item_id != t.item_ids[0]
    )
    text, reward, terminated, info = _step(env, return_cmd(t.order_id, (wrong,)))
    assert text.startswith("Result: return requested")  # the tool did what it was told
    assert terminated and reward == 0.0 and not info["success"]
    assert env.db_key() != env.goal_db_key()


def test_answers_end_the_conversation() -> None:
    env = ToolsEnv()
    _reset_kind(env, "total")
    t = env.world.task
    _identify(env)
    _step(env, "ask[order id]")
    _step(env, order_cmd(t.order_id))
    snap = env.get_state()
    status = env.world.db.orders[t.order_id].status
    _, reward, terminated, info = _step(env, f"respond[{status}]")  # the wrong answer
    assert terminated and reward == 0.0 and not info["success"]
    env.set_state(snap)
    _, reward, terminated, info = _step(env, f"respond[{t.answer}]")
    assert terminated and reward == 1.0 and info["checklist"]["order total told"]
    # a transfer in a task a tool handles ends the conversation without success
    env.set_state(snap)
    transfer = env.admissible_actions()[-1]
    assert transfer == 'transfer_to_human_agents(summary="order total question")'
    _, reward, terminated, info = _step(env, transfer)
    assert terminated and reward == 0.0 and not info["success"]


# -- the scripted user ---------------------------------------------------------------------
@pytest.mark.parametrize("split", envs.SPLITS)
def test_user_reveals_details_only_when_asked(split: str) -> None:
    env = ToolsEnv(split)
    for seed in range(60):
        obs, info = env.reset(seed=seed)
        t = env.world.task
        user = env.world.db.users[t.user_id]
        secrets = {
            "email": [user.email],
            "name and zip": [user.last, user.address[2]],
            "order id": [t.order_id] if t.order_id else [],
            "reason": [t.reason] if t.reason else [],
            "new address": list(t.new_address[::2]) if t.new_address else [],
        }
        shown = obs["goal"] + obs["text"] + " ".join(info["admissible_actions"])
        for values in secrets.values():
            assert not any(v in shown for v in values), (seed, values)
        rng = random.Random(seed)
        for question in rng.sample(QUESTIONS, len(QUESTIONS)):
            obs, _, _, _, info = env.step(f"ask[{question}]")
            assert obs["text"].startswith("Customer: ")
            if question == "email" and not t.email_known:
                assert "don't remember" in obs["text"]
                continue
            for v in secrets.get(question, []):
                assert v in obs["text"], (seed, question, obs["text"])
                # a revealed value becomes a seen argument value (usable in a call once
                # the call's other arguments are seen too)
                w = env.world
                seen = str((w.emails, w.names, w.zips, w.order_ids, w.reasons, w.addresses))
                assert v in seen, (seed, question)
            for other, values in secrets.items():
                if other != question and not env.world.asked & (1 << QUESTIONS.index(other)):
                    assert not any(v in obs["text"] for v in values), (seed, question, other)


# -- splits --------------------------------------------------------------------------------
def test_test_compositions_never_in_train() -> None:
    train, test = set(compositions("train")), set(compositions("test"))
    assert train and test and not train & test
    assert 0.1 < len(test) / (len(train) + len(test)) < 0.3
    assert {c[0] for c in train} == {c[0] for c in test} == set(KINDS)
    seen: dict[str, set] = {}
    goals: dict[str, set] = {}
    for split, n in (("train", 1500), ("test", 500)):
        env = ToolsEnv(split)
        seen[split], goals[split] = set(), set()
        for seed in range(n):
            obs, _ = env.reset(seed=seed)
            seen[split].add(env.world.task.comp)
            goals[split].add(obs["goal"])
    assert seen["train"] <= train and seen["test"] <= test
    assert len(seen["test"]) >= 0.8 * len(test)
    assert not goals["train"] & goals["test"]
    with pytest.raises(ValueError, match="unknown split"):
        compositions("validation")


# -- commands, bad input, snapshots --------------------------------------------------------
def test_admissible_commands_are_bounded() -> None:
    """8 to 40 short commands, in deep states too (that they are valid:
    tests/envs/test_contract.py)."""
    sizes = []
    # mostly the expert, sometimes a random command: reach deep states
    for info in walk_states(ToolsEnv(), range(40), 12, expert=0.6):
        sizes.append(len(info["admissible_actions"]))
        assert all(len(a.split()) < 20 for a in info["admissible_actions"])
    assert min(sizes) >= 8 and max(sizes) <= 40


def test_bad_input_is_inadmissible_with_a_clear_text() -> None:
    env = ToolsEnv()
    _reset_kind(env, "cancel")
    _identify(env)
    _, _, _, info = _step(env, "ask[order id]")
    before = copy.deepcopy(env.get_state())
    cases = {
        "get_order_details(": "not a tool call",
        "please cancel it": "not a tool call",
        'delete_order(order_id="#W1")': "Unknown tool delete_order",
        "get_order_details(order_id=)": "Malformed arguments",
        'get_order_details("#W1234567")': "Malformed arguments",
        'get_order_details(id="#W1234567")': "Wrong arguments: get_order_details(order_id)",
        "get_order_details(order_id=1234567)": "Argument order_id must be a string",
        'return_delivered_order_items(order_id="#W1", item_ids="1")': "must be a list",
        'get_order_details(order_id="#W0000000")': "have not appeared",
        "ask[favourite color]": "You can ask about",
        "respond[42]": "Answers come from the order in view",
    }
    for command, why in cases.items():
        obs, reward, terminated, truncated, step_info = env.step(command)
        assert step_info["invalid_action"] and reward == 0.0 and not terminated, command
        assert "not available" in obs["text"] and why in obs["text"], (command, obs["text"])
        assert step_info["admissible_actions"] == info["admissible_actions"]
        state = env.get_state()
        assert state["world"].__slots__ and all(
            getattr(state["world"], f) == getattr(before["world"], f)
            for f in state["world"].__slots__
        ), command


def test_snapshots_share_the_database() -> None:
    """A snapshot copies the episode's few short lists, not the immutable database (that
    snapshots are exact: tests/envs/test_contract.py)."""
    env = ToolsEnv()
    for seed in range(10):
        _, info = env.reset(seed=seed)
        random_walk(env, info, 3, random.Random(seed))
        assert env.get_state()["world"].db is env.world.db


def test_seeds_draw_different_databases() -> None:
    env = ToolsEnv()
    env.reset(seed=0)
    first = env.world.db.orders
    env.reset(seed=1)
    assert set(first) != set(env.world.db.orders)
