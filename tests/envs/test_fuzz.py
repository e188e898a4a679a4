"""Property-based fuzzing (hypothesis) of the env contract over every built-in setting.

What is fuzzed, on the unwrapped env of every ``earlyexp/`` id (both splits, drawn seeds;
TextWorld ids play the tiny session pool of ``tests/envs/textworld_pools.py``):

* **Commands**: empty, whitespace, 10k-character, unicode (emoji, RTL overrides, combining
  marks, NUL and control characters, lone surrogates), bracket soup (``click[[x]]``,
  ``search[]]``, tool-call look-alikes) and near-misses of the admissible commands (a
  character dropped, duplicated or case-changed, whitespace inserted, punctuation
  appended), and each free-text template a setting declares filled with drawn text (valid
  free text or not; see :mod:`envs.contract`). None may raise. One that is valid now
  (:func:`envs.contract.is_valid_command`: admissible, or a free-text command the env
  accepts) is accepted; any other is an invalid step: reward 0.0,
  ``info["invalid_action"]``, the state unchanged (only the observation text says the
  command is not available).
* **Non-string actions** (None, numbers, bytes, lists, ...) raise ``TypeError``, and only
  ``TypeError``, changing nothing.
* **Interleavings** of valid steps, invalid steps, ``get_state`` and ``set_state``: a
  restored snapshot round-trips exactly, and the same command stepped twice from it gives
  identical results.
* **The expert** solves from any non-terminated state the fuzzer reaches.
* **Observations** (reset, valid and invalid steps) lie in the env's observation space.

The properties are plain functions of ``(env, seed, data)`` so that
``tests/envs/fuzz_counts.py`` runs them with a larger budget.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import hypothesis
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence  # what check_env compares with
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs import registered_ids
from envs.contract import FREE_TEXT_CHARS, TEXT, is_valid_command
from tests.envs.textworld_pools import CASES, pool_kwargs

BUILTIN_IDS = [env_id for env_id in registered_ids() if env_id.startswith("earlyexp/")]

#: Steps the expert gets from a fuzzed state (every registered cap is at most 100).
EXPERT_CAP = 200
#: Operations drawn per example by the interleaving and expert properties.
MAX_OPS = 40

# -- strategies -------------------------------------------------------------------------------
SEEDS = st.integers(0, 2**31 - 1)
SPLITS = st.sampled_from(envs.SPLITS)

#: Hand-picked nasty commands, tried first by hypothesis' ``sampled_from``.
SPECIAL_COMMANDS = (
    "",
    " ",
    "\t\n\r",
    "\x00",
    "look\x00",
    "\x1b[31mlook\x1b[0m",
    "\u202egnp kool",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew (RTL)
    "e\u0301\u0301\u0301",  # combining marks
    "\U0001f642",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a ZWJ emoji sequence
    "\ud800",  # a lone surrogate
    "\ufeffgo north",
    "click[[x]]",
    "search[]]",
    "search[",
    "click[]",
    "[[]]",
    "]]][[[",
    "ask[",
    "respond[]",
    "answer[[]]",
    "f(",
    'get_order_details(order_id="',
    "get_order_details(order_id=[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]])",
    "get_user_details(user_id=" + "9" * 5000 + ")",
    "get_user_details(user_id=" + "(" * 300 + ")",
    "get_user_details(**{})",
    "go_back()",
)
#: Verbs of the settings' command languages, for bracket soup.
VERBS = (
    "click",
    "search",
    "ask",
    "respond",
    "answer",
    "go_back",
    "go to",
    "take",
    "open",
    "get_order_details",
    "find_user_id_by_email",
    "move forward",
)
BRACKET_SOUP = st.builds(
    str.__add__,
    st.sampled_from(VERBS),
    st.text(alphabet="[](){}<>\"'=,#$.*\\ x0", max_size=16),
)
#: 10,000 characters: a short drawn string repeated.
LONG_COMMANDS = st.text(min_size=1, max_size=4).map(lambda s: (s * 10_000)[:10_000])
WHITESPACE = (" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u200b")
PUNCTUATION = ".!?,;:'\"])}>\\"


@st.composite
def near_miss(draw: st.DrawFn, command: str) -> str:
    """``command`` with one small edit: a character dropped, duplicated or case-changed,
    whitespace inserted, the whole case changed, or punctuation appended. The result may
    happen to be admissible; the properties check which it is."""
    if not command:
        return draw(st.sampled_from(WHITESPACE))
    i = draw(st.integers(0, len(command) - 1))
    edit = draw(st.sampled_from(("drop", "dup", "case", "space", "upper", "title", "punct")))
    if edit == "drop":
        return command[:i] + command[i + 1 :]
    if edit == "dup":
        return command[:i] + command[i] + command[i:]
    if edit == "case":
        return command[:i] + command[i].swapcase() + command[i + 1 :]
    if edit == "space":
        j = draw(st.integers(0, len(command)))
        return command[:j] + draw(st.sampled_from(WHITESPACE)) + command[j:]
    if edit == "upper":
        return command.upper()
    if edit == "title":
        return command.title()
    return command + draw(st.text(alphabet=PUNCTUATION, min_size=1, max_size=3))


def padded(command: str) -> st.SearchStrategy[str]:
    """``command`` with whitespace before, after or around it."""
    around = st.sampled_from(("", *WHITESPACE))
    return st.tuples(around, around).filter(any).map(lambda lr: lr[0] + command + lr[1])


#: Free text to fill a template with: mostly valid free text, sometimes any unicode.
FREE_TEXTS = st.one_of(
    st.text(alphabet=sorted(FREE_TEXT_CHARS), min_size=1, max_size=30),
    st.text(alphabet=sorted(FREE_TEXT_CHARS), min_size=190, max_size=210),
    st.text(max_size=20),
)


def filled(template: str) -> st.SearchStrategy[str]:
    """``template`` with drawn text in place of ``{text}``, as is or with a near-miss edit."""
    command = FREE_TEXTS.map(lambda text: template.replace(TEXT, text))
    return st.one_of(command, command.flatmap(near_miss))


def commands(admissible: list[str], templates: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Arbitrary command strings: near-misses of ``admissible``, ``admissible`` padded
    with whitespace and, now and then, one of ``admissible`` itself; and the free-text
    ``templates`` filled with drawn text."""
    free = (st.sampled_from(templates).flatmap(filled),) if templates else ()
    return st.one_of(
        *free,
        st.sampled_from(SPECIAL_COMMANDS),
        st.sampled_from(admissible).flatmap(near_miss),
        st.sampled_from(admissible).flatmap(padded),
        st.sampled_from(admissible),
        st.text(max_size=40),  # any unicode: control characters, emoji, RTL, combining
        BRACKET_SOUP,
        LONG_COMMANDS,
    )


#: Non-string actions tried in every example of the non-string property.
NON_STRING_EXAMPLES = (None, 3, b"go", ["look"], 1.5, True, ("look",), {"cmd": "look"})
NON_STRINGS = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=20),
    st.lists(st.text(max_size=8), max_size=3),
    st.builds(bytearray, st.binary(max_size=8)),
    st.complex_numbers(),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
    st.just(np.array(["look"])),
)

#: Operations of the interleaving and expert properties: a drawn admissible command, the
#: expert's command (to reach the ends of episodes too), an arbitrary command, get_state
#: and set_state. Valid steps are the most frequent.
OPERATIONS = st.sampled_from(("step", "step", "expert", "expert", "invalid", "save", "restore"))
#: An index into a list, taken modulo its length.
INDICES = st.integers(0, 1 << 16)


# -- helpers ----------------------------------------------------------------------------------
def _shared_types() -> tuple[type, ...]:
    """Types of the objects a TextWorld snapshot shares with the env, as TextWorld's own soft
    ``GameProgression.copy`` does: the static game definition (game, quests, events,
    knowledge base, logic, whose rules fill memo caches as the game is played) and its
    actions (immutable, but an action memoises its ``variables`` on first use)."""
    from textworld.generator.data import KnowledgeBase
    from textworld.generator.game import Event, Game, Quest
    from textworld.logic import Action, GameLogic

    return (Game, Quest, Event, KnowledgeBase, GameLogic, Action)


class _StatePickler(pickle.Pickler):
    """Pickles a snapshot by value, except the objects it shares with the env (see
    :func:`_shared_types`): by identity."""

    shared: tuple[type, ...] = ()

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, self.shared):
            return (type(obj).__qualname__, id(obj))
        return None


def pickled(state: Any) -> bytes:
    """The bytes of a ``get_state`` snapshot: equal bytes, equal states (RNG included)."""
    if not _StatePickler.shared:
        _StatePickler.shared = _shared_types()
    buffer = io.BytesIO()
    _StatePickler(buffer, pickle.HIGHEST_PROTOCOL).dump(state)
    return buffer.getvalue()


def same_state(a: Any, b: Any) -> bool:
    """Whether two ``get_state`` snapshots are equal, exactly.

    Snapshots hold engine objects (a Minigrid env, TextWorld progressions) that compare by
    identity, so ``data_equivalence`` (which ``check_env`` uses on step results) cannot
    compare them; their pickles compare every byte of the state (see :func:`pickled`).
    """
    return pickled(a) == pickled(b)


def without_text(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without its observation text: the one thing an invalid command changes
    (the observation says the command is not available)."""
    return {key: value for key, value in state.items() if key != "text"}


def _templates(env: gym.Env) -> tuple[str, ...]:
    """The free-text command templates ``env`` declares (none by default)."""
    return tuple(getattr(env, "free_text_commands", ()))


def _where(env: gym.Env, seed: int) -> str:
    env_id = env.spec.id if env.spec is not None else type(env).__name__
    return f"{env_id} ({getattr(env, 'split', '?')} split, reset seed {seed})"


def _walk(env: gym.Env, seed: int, data: st.DataObject, steps: int) -> tuple[dict, bool]:
    """Reset with ``seed`` and take up to ``steps`` drawn admissible commands; return the
    last info and whether the episode ended."""
    _, info = env.reset(seed=seed)
    for _ in range(steps):
        actions = info["admissible_actions"]
        *_, terminated, _, info = env.step(actions[data.draw(INDICES) % len(actions)])
        if terminated:
            return info, True
    return info, False


def _check_valid_step(env: gym.Env, command: str, result: tuple, where: str) -> None:
    _, reward, terminated, truncated, info = result
    assert not info["invalid_action"], f"{where}: valid {command!r} was refused"
    assert not truncated, f"{where}: the env truncated itself after {command!r}"
    assert reward == float(info["success"]), (
        f"{where}: reward {reward} with success {info['success']} after {command!r}"
    )
    assert terminated or not info["success"], f"{where}: success without terminated"


def check_command(env: gym.Env, command: str, info: dict, where: str) -> tuple[dict, bool]:
    """Step an arbitrary ``command`` from the current state (whose last info is ``info``)
    and check the contract's rule for it; return the new info and whether the episode ended.

    Valid (admissible, or a free-text command the env accepts now): accepted. Valid once
    stripped of surrounding whitespace: either refused as below or exactly the stripped
    command. Otherwise: an invalid step that changes nothing but the observation text.
    """
    admissible = info["admissible_actions"]
    stripped = command.strip()
    valid = is_valid_command(env, command, admissible)
    valid_stripped = is_valid_command(env, stripped, admissible)
    before = env.get_state()
    result = env.step(command)
    obs, reward, terminated, truncated, after = result
    if valid:
        _check_valid_step(env, command, result, where)
        return after, terminated
    if not after["invalid_action"] and valid_stripped:
        env.set_state(before)
        assert data_equivalence(result, env.step(stripped), exact=True), (
            f"{where}: {command!r} was accepted but differs from {stripped!r}"
        )
        return after, terminated
    assert after["invalid_action"] is True, f"{where}: invalid {command!r} was accepted"
    assert reward == 0.0, f"{where}: invalid {command!r} got reward {reward}"
    assert not terminated and not truncated, f"{where}: invalid {command!r} ended it"
    assert not after["success"], f"{where}: invalid {command!r} reported success"
    assert after["admissible_actions"] == info["admissible_actions"], (
        f"{where}: invalid {command!r} changed the admissible commands"
    )
    assert after["checklist"] == info["checklist"], (
        f"{where}: invalid {command!r} changed the checklist"
    )
    assert "not available" in obs["text"], (
        f"{where}: the observation does not say {command!r} is not available: {obs['text']!r}"
    )
    assert same_state(without_text(before), without_text(env.get_state())), (
        f"{where}: invalid {command!r} changed the state"
    )
    return after, False


def run_operations(
    env: gym.Env, seed: int, data: st.DataObject, max_ops: int = MAX_OPS
) -> tuple[dict, bool]:
    """Reset with ``seed``, then a drawn interleaving of valid steps (drawn or the
    expert's), arbitrary commands, ``get_state`` (push a snapshot) and ``set_state``
    (restore a pushed one, then step a command from it twice), checking each; return the
    last info and whether the episode has ended."""
    where = _where(env, seed)
    _, info = env.reset(seed=seed)
    done = False
    # (snapshot, its pickle when taken, info and ended-flag at that point)
    saved: list[tuple[Any, bytes, dict, bool]] = []

    def save() -> None:
        state = env.get_state()
        saved.append((state, pickled(state), info, done))

    save()
    for _ in range(data.draw(st.integers(0, max_ops), label="operations")):
        op = data.draw(OPERATIONS)
        if done and op not in ("save", "restore"):
            op = "restore"  # stepping an ended episode is an error: restore a snapshot
        if op == "save":
            save()
        elif op == "restore":
            # counted from the newest: shrinks towards restoring the last snapshot
            state, taken, info, done = saved[-1 - data.draw(INDICES) % len(saved)]
            env.set_state(state)
            assert pickled(env.get_state()) == taken, (
                f"{where}: get_state after set_state differs from the snapshot as taken"
            )
            if done:
                continue
            actions = info["admissible_actions"]
            command = actions[data.draw(INDICES) % len(actions)]
            first = env.step(command)
            env.set_state(state)
            assert pickled(env.get_state()) == taken, (
                f"{where}: the snapshot changed when restored and stepped: it is not reusable"
            )
            second = env.step(command)
            assert data_equivalence(first, second, exact=True), (
                f"{where}: {command!r} stepped twice from one snapshot gives different results"
            )
            _check_valid_step(env, command, second, where)
            *_, done, _, info = second
        elif op in ("step", "expert"):
            actions = info["admissible_actions"]
            if op == "expert":
                command = env.expert_action()
                assert command in actions, f"{where}: expert chose inadmissible {command!r}"
            else:
                command = actions[data.draw(INDICES) % len(actions)]
            result = env.step(command)
            _check_valid_step(env, command, result, where)
            *_, done, _, info = result
            if done:
                save()  # an ended episode must restore as ended
        else:
            info, done = check_command(
                env, data.draw(commands(info["admissible_actions"], _templates(env))), info, where
            )
    return info, done


# -- properties: (unwrapped env, reset seed, hypothesis data) -> None, raising on a failure --
def prop_arbitrary_commands(env: gym.Env, seed: int, data: st.DataObject) -> None:
    """Arbitrary command strings never raise; invalid ones (neither admissible nor accepted
    free text) are invalid steps that change nothing, valid ones are accepted."""
    where = _where(env, seed)
    info, done = _walk(env, seed, data, data.draw(st.integers(0, 8), label="walk"))
    for _ in range(data.draw(st.integers(1, 8), label="commands")):
        if done:
            break
        command = data.draw(commands(info["admissible_actions"], _templates(env)), label="command")
        info, done = check_command(env, command, info, where)


def prop_non_string_actions(env: gym.Env, seed: int, data: st.DataObject) -> None:
    """A non-string action raises TypeError (and nothing else) and changes nothing."""
    where = _where(env, seed)
    info, _ = _walk(env, seed, data, data.draw(st.integers(0, 8), label="walk"))
    drawn = data.draw(st.lists(NON_STRINGS, min_size=1, max_size=4), label="actions")
    before = env.get_state()
    for wrong in (*NON_STRING_EXAMPLES, [info["admissible_actions"][0]], *drawn):
        try:
            env.step(wrong)
        except TypeError as error:
            assert str(error), f"{where}: step({wrong!r}) raised a TypeError without a message"
        else:
            raise AssertionError(f"{where}: step({wrong!r}) did not raise TypeError")
        assert same_state(before, env.get_state()), f"{where}: step({wrong!r}) changed the state"


def prop_interleavings(env: gym.Env, seed: int, data: st.DataObject) -> None:
    """Interleaved valid steps, invalid steps, get_state and set_state keep snapshots
    exact: each restore round-trips and replays identically."""
    run_operations(env, seed, data)


def prop_expert_recovers(env: gym.Env, seed: int, data: st.DataObject) -> None:
    """From any non-terminated state the fuzzer reaches, the expert solves the task."""
    where = _where(env, seed)
    info, done = run_operations(env, seed, data)
    if done:
        return  # won, or an unrecoverable failure: nothing left to solve
    trace: list[str] = []
    reward = 0.0
    for _ in range(EXPERT_CAP):
        action = env.expert_action()
        assert action in info["admissible_actions"], (
            f"{where}: expert chose inadmissible {action!r} after {trace}"
        )
        trace.append(action)
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            break
    assert info["success"] and reward == 1.0, (
        f"{where}: the expert did not solve from a fuzzed state in {len(trace)} steps: {trace}"
    )


def prop_observations_in_space(env: gym.Env, seed: int, data: st.DataObject) -> None:
    """Every observation (reset, valid and invalid steps) lies in the observation space."""
    where = _where(env, seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs), f"{where}: reset observation {obs!r}"
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        actions = info["admissible_actions"]
        command = data.draw(st.one_of(st.sampled_from(actions), commands(actions, _templates(env))))
        obs, _, terminated, _, info = env.step(command)
        assert env.observation_space.contains(obs), (
            f"{where}: the observation after {command!r} is not in the observation space: "
            f"{obs['text']!r}"
        )
        if terminated:
            break


PROPERTIES: dict[str, Callable[[gym.Env, int, st.DataObject], None]] = {
    "arbitrary_commands": prop_arbitrary_commands,
    "non_string_actions": prop_non_string_actions,
    "interleavings": prop_interleavings,
    "expert_recovers": prop_expert_recovers,
    "observations_in_space": prop_observations_in_space,
}

# -- envs, made once per (id, split, pool) and reset inside each example ---------------------
_ENVS: dict[tuple[str, str, Path | None], gym.Env] = {}


def fuzz_env(env_id: str, split: str, textworld_cache: Path | None = None) -> gym.Env:
    """The unwrapped env of ``env_id`` on ``split`` (TextWorld ids play the tiny pool in
    ``textworld_cache``), made on first use and reused."""
    cache = textworld_cache if env_id in CASES else None
    key = (env_id, split, cache)
    if key not in _ENVS:
        if env_id in CASES and cache is None:
            raise ValueError(f"{env_id} needs a TextWorld pool cache")
        kwargs = pool_kwargs(env_id, cache) if cache is not None else {}
        _ENVS[key] = envs.make(env_id, split=split, **kwargs).unwrapped
    return _ENVS[key]


def close_envs() -> None:
    """Close and forget every env :func:`fuzz_env` made."""
    for env in _ENVS.values():
        env.close()
    _ENVS.clear()


@pytest.fixture(scope="module", autouse=True)
def _close_envs() -> Iterator[None]:
    yield
    close_envs()


def _env_factory(env_id: str, request: pytest.FixtureRequest) -> Callable[[str], gym.Env]:
    cache = request.getfixturevalue("textworld_cache") if env_id in CASES else None
    return lambda split: fuzz_env(env_id, split, cache)


#: Examples per test and id (CI budget: the file runs in about a minute). A TextWorld step
#: runs a Z-machine and costs ~100x the others; a BabyAI reset rejection-samples its level.
EXAMPLES = {"earlyexp/Cooking-v0": 15, "earlyexp/TreasureHunter-v0": 15, "earlyexp/BabyAI-v0": 30}
DEFAULT_EXAMPLES = 50


def fuzz(
    prop: Callable[[gym.Env, int, st.DataObject], None],
    env_for: Callable[[str], gym.Env],
    max_examples: int,
    *,
    random_seed: int | None = None,
    tally: Callable[[], None] | None = None,
    **overrides: Any,
) -> int:
    """Run ``prop`` under hypothesis on ``env_for(split)`` (drawn split, reset seed and
    data) for ``max_examples`` examples; return how many examples passed (hypothesis also
    starts examples it abandons, e.g. when one draws more than its data budget: those do
    not count, as in hypothesis' own ``max_examples``).

    Derandomized (the same examples on every run, so CI is reproducible) unless
    ``random_seed`` is given (then seeded with it: reproducible too, other examples). ``tally`` is called after each example that passed (it still counts when a
    later one fails); ``overrides`` are further hypothesis settings (e.g. ``phases``). A
    failure raises, as in a test.
    """
    ran = 0

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=random_seed is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        **overrides,
    )
    @given(split=SPLITS, seed=SEEDS, data=st.data())
    def run(split: str, seed: int, data: st.DataObject) -> None:
        nonlocal ran
        prop(env_for(split), seed, data)
        ran += 1
        if tally is not None:
            tally()

    if random_seed is not None:
        run = hypothesis.seed(random_seed)(run)
    run()
    return ran


# -- tests: one per property and id ----------------------------------------------------------
@pytest.mark.parametrize("env_id", BUILTIN_IDS)
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_fuzz(name: str, env_id: str, request: pytest.FixtureRequest) -> None:
    """Property ``name`` holds on ``env_id`` for its whole example budget."""
    examples = EXAMPLES.get(env_id, DEFAULT_EXAMPLES)
    ran = fuzz(PROPERTIES[name], _env_factory(env_id, request), examples)
    assert ran >= examples, f"only {ran} of {examples} examples passed"
