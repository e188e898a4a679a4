"""Free-text commands (issue 19, item 3): the contract's exception to "not admissible means
invalid", Shop's free search, Tools' free answer and transfer summary, WebNav's menus,
and what the checker and the fuzz property make of them."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import data_equivalence

from envs import ContractError, check_env
from envs.checker import FREE_TEXT_CHECK
from envs.contract import (
    FREE_TEXT_MAX_LENGTH,
    free_text_accepted,
    free_text_of,
    is_valid_command,
)
from envs.shop import BACK, NEXT, SEARCH_TEMPLATE, ShopEnv
from envs.tools import (
    RESPOND_TEMPLATE,
    TRANSFER_TEMPLATE,
    ToolsEnv,
    order_cmd,
    told,
    transfer_cmd,
)
from envs.webnav import WebNavEnv
from tests.envs.test_fuzz import check_command
from tests.envs.toy_env import Corridor, CorridorEnv

QUERY = "lightweight running shoes with arch support"


# -- the contract -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("search[red shoes]", "red shoes"),
        ("search[ red shoes ]", " red shoes "),
        ("search[50% off, size 9!]", "50% off, size 9!"),
        ("search[" + "x" * FREE_TEXT_MAX_LENGTH + "]", "x" * FREE_TEXT_MAX_LENGTH),
        ("search[]", None),  # empty
        ("search[   ]", None),  # blank
        ("search[" + "x" * (FREE_TEXT_MAX_LENGTH + 1) + "]", None),  # too long: not truncated
        ("search[two\nlines]", None),
        ("search[caf\u00e9]", None),  # not ASCII
        ("search[a]b]", None),  # a bracket inside
        ('search[say "hi"]', None),  # a double quote inside
        ("search[red shoes", None),  # the frame broken
        ("Search[red shoes]", None),
        ("search[red shoes].", None),
        (" search[red shoes]", None),  # exactly as given (step strips it first)
    ],
)
def test_free_text_rule(command: str, text: str | None) -> None:
    assert free_text_of(SEARCH_TEMPLATE, command) == text


def test_envs_without_templates_keep_the_old_rule() -> None:
    env = CorridorEnv()
    _, info = env.reset(seed=0)
    assert env.free_text_commands == () and not env.accepts_free_text("go right please")
    assert not free_text_accepted(env, "anything")
    assert is_valid_command(env, "go right", info["admissible_actions"])
    assert not is_valid_command(env, "go north", info["admissible_actions"])


# -- Shop: any query on the search page ---------------------------------------------------------
@pytest.fixture(scope="module")
def shop() -> ShopEnv:
    return ShopEnv()


def test_shop_accepts_a_novel_query_and_runs_bm25(shop: ShopEnv) -> None:
    _, info = shop.reset(seed=3)
    assert shop.free_text_commands == (SEARCH_TEMPLATE,)
    suggested = info["admissible_actions"]
    assert len(suggested) == 5 and all(a.startswith("search[") for a in suggested)
    command = f"search[{QUERY}]"
    assert command not in suggested and shop.accepts_free_text(command)
    obs, reward, terminated, truncated, info = shop.step(command)
    assert not info["invalid_action"] and reward == 0.0 and not terminated and not truncated
    results = shop.catalog.search(QUERY)
    assert results and shop.world.results == results and shop.world.query == QUERY
    products = shop.catalog.products
    assert obs["text"].startswith("Results page 1 of")
    assert all(products[pid].line in obs["text"] for pid in results[:5])
    assert info["admissible_actions"][0] == BACK
    assert products[results[0]].click in info["admissible_actions"]
    assert shop.observation_space.contains(obs)


def test_shop_free_query_is_deterministic_and_round_trips(shop: ShopEnv) -> None:
    command = f"search[{QUERY}]"
    shop.reset(seed=5)
    before = shop.get_state()
    first = shop.step(command)
    after = shop.get_state()
    assert after["world"].query == QUERY  # the snapshot holds the free query
    follow = [NEXT, BACK]
    expected = [shop.step(c) for c in follow]
    shop.set_state(before)
    assert data_equivalence(first, shop.step(command), exact=True)
    shop.set_state(after)
    assert data_equivalence(expected, [shop.step(c) for c in follow], exact=True)
    # into a second env, reset elsewhere
    twin = ShopEnv()
    twin.reset(seed=99)
    twin.set_state(after)
    assert twin.world.query == QUERY
    assert data_equivalence(expected, [twin.step(c) for c in follow], exact=True)
    # the same free query from the same seed, in a fresh env: identical
    twin.reset(seed=5)
    assert data_equivalence(first, twin.step(command), exact=True)


@pytest.mark.parametrize(
    "command",
    [
        "search[]",
        "search[   ]",
        "search[" + "shoes " * 40 + "]",  # 240 characters: refused, not truncated
        "search[caf\u00e9]",
        "search[a]b]",
        "search[red\tshoes]",
    ],
)
def test_shop_refuses_bad_queries(shop: ShopEnv, command: str) -> None:
    _, info = shop.reset(seed=1)
    before = shop.get_state()
    obs, reward, terminated, _, step_info = shop.step(command)
    assert step_info["invalid_action"] and reward == 0.0 and not terminated
    assert "not available" in obs["text"]
    assert step_info["admissible_actions"] == info["admissible_actions"]
    assert shop.world.query == before["world"].query == "" and shop.world.results == ()


def test_shop_search_only_on_the_search_page(shop: ShopEnv) -> None:
    shop.reset(seed=2)
    shop.step(f"search[{QUERY}]")
    command = "search[organic granola bar]"
    assert not shop.accepts_free_text(command)
    _, _, _, _, info = shop.step(command)
    assert info["invalid_action"] and shop.world.query == QUERY


def test_shop_query_without_matches_shows_no_results(shop: ShopEnv) -> None:
    shop.reset(seed=0)
    obs, _, _, _, info = shop.step("search[zzqx qqvv]")
    assert not info["invalid_action"] and shop.world.results == ()
    assert obs["text"].startswith("No results")
    assert info["admissible_actions"] == [BACK]


@pytest.mark.parametrize("split", ["train", "test"])
def test_shop_expert_solves_after_free_queries(split: str) -> None:
    env = ShopEnv(split)
    for seed in range(15):
        _, info = env.reset(seed=seed)
        env.step(f"search[{QUERY}]")
        _, _, _, _, info = env.step(env.catalog.products[env.world.results[0]].click)
        for _ in range(20):
            action = env.expert_action()
            assert action in info["admissible_actions"]
            _, reward, terminated, _, info = env.step(action)
            if terminated:
                break
        assert info["success"] and reward == 1.0, (split, seed)


def test_fuzz_property_uses_the_new_rule(shop: ShopEnv) -> None:
    _, info = shop.reset(seed=4)
    # a novel query: valid, so the property checks it as a valid step
    info, done = check_command(shop, f"search[{QUERY}]", info, "shop")
    assert not info["invalid_action"] and not done
    # on the results page a search is a near-miss of nothing: an invalid step
    after, _ = check_command(shop, "search[more shoes]", info, "shop")
    assert after["invalid_action"]


# -- Tools: free answer and transfer summary; tool arguments stay a menu ------------------------
def _tools(kind: str) -> ToolsEnv:
    env = ToolsEnv()
    for seed in range(500):
        env.reset(seed=seed)
        if env.world.task.kind == kind:
            return env
    raise AssertionError(kind)


def _to_order(env: ToolsEnv) -> None:
    """Follow the expert until the task's order is in view."""
    while env.world.focus_order != env.world.task.order_id:
        assert not env.step(env.expert_action())[4]["invalid_action"]


@pytest.mark.parametrize(
    ("reply", "answer", "ok"),
    [
        ("45.20", "45.20", True),
        ("Your order total was $45.20.", "45.20", True),
        ("You paid $45.2 for order #W1234567.", "45.20", True),
        ("Either 45.20 or 12.00.", "45.20", False),
        ("About 45 dollars.", "45.20", False),
        ("delivered", "delivered", True),
        ("Your order has been Delivered!", "delivered", True),
        ("It was canceled.", "cancelled", True),
        ("It is delivered, not pending.", "delivered", False),
        ("pending", "delivered", False),
        ("return requested", "return requested", True),
    ],
)
def test_told_judges_a_reply_by_its_value(reply: str, answer: str, ok: bool) -> None:
    assert told(reply, answer) is ok


@pytest.mark.parametrize("kind", ["total", "status"])
def test_tools_free_answer(kind: str) -> None:
    env = _tools(kind)
    t = env.world.task
    assert env.free_text_commands == (RESPOND_TEMPLATE, TRANSFER_TEMPLATE)
    # before an order is in view an answer is refused, free or not
    assert not env.accepts_free_text("respond[I am not sure]")
    _to_order(env)
    snapshot = env.get_state()
    value = f"${t.answer}" if kind == "total" else t.answer.capitalize()
    command = f"respond[Thanks for waiting: {value}, as the order shows.]"
    assert command not in env.admissible_actions() and env.accepts_free_text(command)
    obs, reward, terminated, _, info = env.step(command)
    assert not info["invalid_action"] and terminated and reward == 1.0 and info["success"]
    assert obs["text"].startswith("You answered: Thanks for waiting")
    env.set_state(snapshot)
    _, reward, terminated, _, info = env.step("respond[I could not find that, sorry.]")
    assert not info["invalid_action"] and terminated and reward == 0.0 and not info["success"]
    env.set_state(snapshot)
    obs, reward, terminated, _, info = env.step("respond[]")
    assert info["invalid_action"] and not terminated and "free text" in obs["text"]


def test_tools_free_transfer_summary() -> None:
    env = _tools("transfer")
    while not env.world.identified:
        env.step(env.expert_action())
    summary = "The customer reports a problem no tool handles; please follow up today."
    command = transfer_cmd(summary)
    assert command not in env.admissible_actions() and env.accepts_free_text(command)
    obs, reward, terminated, _, info = env.step(command)
    assert reward == 1.0 and terminated and info["success"]  # the summary is not judged
    assert summary in obs["text"]
    env.reset(seed=0)
    obs, _, _, _, info = env.step('transfer_to_human_agents(summary="")')
    assert info["invalid_action"] and "The summary is free text" in obs["text"]


def test_tools_arguments_and_questions_stay_a_menu() -> None:
    env = _tools("cancel")
    _to_order(env)
    t = env.world.task
    before = env.get_state()
    for command in (
        order_cmd("#W0000000"),  # an id that has not appeared: a guess
        'find_user_id_by_email(email="someone@example.com")',
        f'cancel_pending_order(order_id="{t.order_id}", reason="changed my mind")',
        'modify_user_address(user_id="x", address1="1 Main St", city="Austin", zip="78700")',
        "ask[what is your email address]",
    ):
        assert not env.accepts_free_text(command), command
        obs, reward, terminated, _, info = env.step(command)
        assert info["invalid_action"] and reward == 0.0 and not terminated, command
        assert env.world.changes == before["world"].changes


# -- WebNav: menus, on purpose ------------------------------------------------------------------
def test_webnav_declares_no_free_text() -> None:
    env = WebNavEnv()
    env.reset(seed=0)
    assert env.free_text_commands == () and not env.accepts_free_text("type[City][Atlantis]")
    assert "No free-text commands" in WebNavEnv.__doc__


# -- the checker --------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["earlyexp/Shop-v0", "earlyexp/Tools-v0"])
def test_checker_checks_free_text(env_id: str) -> None:
    passed = check_env(env_id, instances=3)
    assert len(passed) == 8 and any(FREE_TEXT_CHECK in name for name in passed)


def test_checker_skips_envs_without_templates() -> None:
    assert not any(FREE_TEXT_CHECK in name for name in check_env("earlyexp/WebNav-v0", instances=3))


@dataclass
class Talk(Corridor):
    said: str = ""


class TalkingCorridor(CorridorEnv):
    """The corridor, where the agent may also say anything: ``say[<text>]``."""

    free_text_commands = ("say[{text}]",)

    def _generate(self) -> tuple[str, str]:
        goal, text = super()._generate()
        self.world = Talk(self.world.length, self.world.door)
        return goal, text

    def _execute(self, command: str) -> str:
        if command.startswith("say["):
            self.world.said = command[4:-1]
            return f"You say: {self.world.said}"
        return super()._execute(command)


class Chatterbox(TalkingCorridor):
    """Anything at all is something to say (the template is the bare text)."""

    free_text_commands = ("{text}",)

    def _execute(self, command: str) -> str:
        if command not in self.admissible_actions():
            self.world.said = command
            return f"You say: {command}"
        return super()._execute(command)


class NeverListens(TalkingCorridor):
    def _free_text_available(self, template: str) -> bool:
        return False


class SaysNothing(TalkingCorridor):
    def accepts_free_text(self, command: str) -> bool:
        return command.startswith("say[")  # an empty say[] too


class DeafStep(TalkingCorridor):
    def step(self, action):
        if isinstance(action, str) and action.startswith("say[") and "probe" in action:
            self._text = "Nothing happens: the command is not available here."
            return self._obs(), 0.0, False, False, self._info(invalid=True, success=False)
        return super().step(action)


def test_checker_passes_free_text_envs() -> None:
    assert any(FREE_TEXT_CHECK in name for name in check_env(TalkingCorridor(), instances=3))
    # every text is valid: the "invalid commands" check skips the ones that are free text
    assert any(FREE_TEXT_CHECK in name for name in check_env(Chatterbox(), instances=3))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (NeverListens, "never accepted"),
        (SaysNothing, "fills no template"),
        (DeafStep, "step refused it"),
    ],
)
def test_checker_catches_broken_free_text(broken: type[gym.Env], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        check_env(broken(), instances=3)
