"""``check_env``: Gymnasium's own env checker plus the earlyexp contract (see envs.contract)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence

from envs.contract import (
    FREE_TEXT_MAX_LENGTH,
    KNOWLEDGE_SPLIT,
    TEXT,
    env_splits,
    free_text_of,
    is_valid_command,
    names_entity,
)
from envs.registration import make, resolve_id

INFO_KEYS = ("admissible_actions", "invalid_action", "success", "checklist")
NOT_A_COMMAND = "xyzzy plugh frobnicate"
#: What the actions check adds to its name for an env that declares free-text templates.
FREE_TEXT_CHECK = "free-text commands accepted, near-misses refused"
#: The text the checker fills a free-text template with: no setting suggests it.
FREE_TEXT_PROBE = "earlyexp checker probe 42"
#: Texts that break the contract's free-text rule: never accepted in any template.
BAD_FREE_TEXTS = (
    "",
    "   ",
    "two\nlines",
    "tab\there",
    "caf\u00e9",
    'a "quoted" word',
    "a ] bracket",
    "x" * (FREE_TEXT_MAX_LENGTH + 1),
)
#: What the splits check adds to its name for an env that declares a knowledge split.
KNOWLEDGE_CHECK = (
    "knowledge split: the expert solves novel instances, none is a train instance, their "
    "goals name held-out entities that train goals and expert commands never name and "
    "train observations show"
)
#: The most train instances the knowledge check walks to see every held-out entity in an
#: observation (it walks ``instances`` at least, and stops once it has seen them all).
KNOWLEDGE_MAX_TRAIN = 300


class ContractError(AssertionError):
    """An env breaks the earlyexp env contract; the message names the check and the state."""


def check_env(
    env_or_id: gym.Env | str,
    *,
    instances: int = 20,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """Check an env (or a registered id, on both splits) against Gymnasium and the contract.

    Raises :class:`ContractError` at the first broken rule; returns the names of the checks
    that passed. ``instances`` episodes per split are solved by the expert and compared
    across splits. ``report`` is called with each passed check's name (for progress output).
    ``env_kwargs`` are passed to ``make`` for a registered id (e.g. a smaller game pool).
    An env that declares free-text command templates (see :mod:`envs.contract`) has them
    checked with its commands: a novel text is accepted, near-misses are refused, and the
    inadmissible commands probed elsewhere are skipped when they are valid free text.
    A registered id that declares a knowledge split has its promise checked with the
    splits (see :func:`_check_knowledge`): the expert solves ``instances`` novel
    instances, none is a train instance, each novel goal names a held-out entity, no goal
    and no expert command of ``instances`` train instances names one, and each shows in a
    train observation, on the expert's path or one branched command off it (train
    instances are walked until all have shown, at most :data:`KNOWLEDGE_MAX_TRAIN`).
    """
    novel = None
    if isinstance(env_or_id, str):
        env_id = resolve_id(env_or_id)
        kwargs = env_kwargs or {}
        train, test = make(env_id, split="train", **kwargs), make(env_id, split="test", **kwargs)
        if KNOWLEDGE_SPLIT in env_splits(train):
            novel = make(env_id, split=KNOWLEDGE_SPLIT, **kwargs)
        max_steps = train.spec.max_episode_steps if train.spec else None
    else:
        if env_kwargs:
            raise ValueError("env_kwargs apply to a registered id, not to an env instance")
        train, test, env_id = env_or_id, None, str(env_or_id)
        max_steps = env_or_id.spec.max_episode_steps if env_or_id.spec else None
    max_steps = max_steps or 1000
    passed: list[str] = []

    def ok(name: str) -> None:
        passed.append(name)
        if report is not None:
            report(name)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(train.unwrapped, skip_render_check=True)
    ok("gymnasium checker")

    env = train.unwrapped
    rng = np.random.default_rng(seed)
    _check_reset(env, seed)
    ok("reset: observation and info keys")
    _check_determinism(env, seed, rng)
    ok("determinism under a seed")
    _check_snapshots(env, seed, rng)
    ok("snapshot round trip")
    _check_actions(env, seed, rng)
    # the free-text exception is part of the same check (one check name per contract rule)
    if getattr(env, "free_text_commands", ()):
        _check_free_text(env, seed, rng, max_steps)
        ok(f"admissible commands accepted; {FREE_TEXT_CHECK}; inadmissible and non-string handled")
    else:
        ok("admissible commands accepted; inadmissible and non-string handled")
    for split_env in (train, test) if test is not None else (train,):
        _check_expert(split_env.unwrapped, instances, seed, max_steps)
        ok(f"expert solves {instances} {split_env.unwrapped.split} instances")
    if test is not None:
        _check_splits(train.unwrapped, test.unwrapped, instances, seed)
        if novel is None:
            ok("test instances are not train instances")
        else:
            # the knowledge split is part of the splits rule (one check name per rule)
            _check_expert(novel.unwrapped, instances, seed, max_steps)
            _check_knowledge(train.unwrapped, novel.unwrapped, instances, seed, max_steps)
            _check_splits(train.unwrapped, novel.unwrapped, instances, seed)
            ok(f"test instances are not train instances; {KNOWLEDGE_CHECK}")
    return passed


def _fail(env: gym.Env, check: str, detail: str) -> ContractError:
    return ContractError(f"{type(env).__name__}: {check}: {detail}")


def _check_obs(env: gym.Env, obs: Any, info: dict, where: str) -> None:
    if not (
        isinstance(obs, dict)
        and isinstance(obs.get("goal"), str)
        and isinstance(obs.get("text"), str)
    ):
        raise _fail(
            env, where, f"observation must be a dict with str 'goal' and 'text', got {obs!r}"
        )
    if not env.observation_space.contains(obs):
        raise _fail(env, where, f"observation not in observation_space: {obs!r}")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise _fail(env, where, f"info lacks {missing}")
    actions = info["admissible_actions"]
    if not actions or not all(isinstance(a, str) for a in actions):
        raise _fail(
            env, where, f"admissible_actions must be a non-empty list of str, got {actions!r}"
        )
    if not isinstance(info["checklist"], dict):
        raise _fail(env, where, "info['checklist'] must be a dict[str, bool]")


def _pick(info: dict, rng: np.random.Generator) -> str:
    actions = info["admissible_actions"]
    return actions[rng.integers(len(actions))]


def _walk(env: gym.Env, seed: int, rng: np.random.Generator, steps: int) -> dict:
    """Reset with ``seed`` and take up to ``steps`` random admissible commands without ending
    the episode; return the last info."""
    _, info = env.reset(seed=seed)
    for _ in range(steps):
        snapshot = env.get_state()
        _, _, terminated, truncated, next_info = env.step(_pick(info, rng))
        if terminated or truncated:
            env.set_state(snapshot)
            break
        info = next_info
    return info


def _check_reset(env: gym.Env, seed: int) -> None:
    obs, info = env.reset(seed=seed)
    _check_obs(env, obs, info, "reset")
    if info["success"] or info["invalid_action"]:
        raise _fail(
            env, "reset", "info['success'] and info['invalid_action'] must be False at reset"
        )


def _rollout(env: gym.Env, seed: int, actions_rng_seed: int, steps: int) -> list[Any]:
    rng = np.random.default_rng(actions_rng_seed)
    obs, info = env.reset(seed=seed)
    trace: list[Any] = [obs, info]
    for _ in range(steps):
        action = _pick(info, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        _check_obs(env, obs, info, "step")
        trace.append((action, obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return trace


def _check_determinism(env: gym.Env, seed: int, rng: np.random.Generator) -> None:
    for s in (seed, seed + 1, seed + 2):
        walk_seed = int(rng.integers(1 << 30))
        first, second = _rollout(env, s, walk_seed, 30), _rollout(env, s, walk_seed, 30)
        if not data_equivalence(first, second):
            raise _fail(
                env,
                "determinism",
                f"two rollouts from reset(seed={s}) with the same actions differ",
            )
    first, *others = (_rollout(env, s, 0, 0) for s in (seed, seed + 1, seed + 2))
    if all(data_equivalence(first, other) for other in others):
        raise _fail(env, "determinism", "reset ignores the seed: seeds give identical instances")


def _check_snapshots(env: gym.Env, seed: int, rng: np.random.Generator) -> None:
    # the spec carries the kwargs the env was made with (split, pool size, ...)
    twin = gym.make(env.spec).unwrapped if env.spec else None
    for s in range(seed, seed + 5):
        info = _walk(env, s, rng, int(rng.integers(1, 8)))
        snapshot = env.get_state()
        action = _pick(info, rng)
        original = env.step(action)
        env.set_state(snapshot)
        env.set_state(env.get_state())
        restored = env.step(action)
        if not data_equivalence(original, restored):
            raise _fail(
                env,
                "snapshot",
                f"step {action!r} after set_state differs from the original (seed {s})",
            )
        if twin is not None:
            twin.reset(seed=s + 1000)
            twin.set_state(snapshot)
            if not data_equivalence(original, twin.step(action)):
                raise _fail(
                    env,
                    "snapshot",
                    f"a snapshot restored into a second env steps differently (seed {s})",
                )


def _check_actions(env: gym.Env, seed: int, rng: np.random.Generator) -> None:
    for s in range(seed, seed + 3):
        info = _walk(env, s, rng, int(rng.integers(0, 6)))
        snapshot = env.get_state()
        for action in info["admissible_actions"]:
            *_, step_info = env.step(action)
            if step_info["invalid_action"]:
                raise _fail(
                    env, "admissible", f"admissible command {action!r} was refused (seed {s})"
                )
            env.set_state(snapshot)
        probe = info["admissible_actions"][0]
        expected = env.step(probe)
        env.set_state(snapshot)
        for bad in (NOT_A_COMMAND, "", "click[[x]]"):
            if is_valid_command(env, bad, info["admissible_actions"]):
                continue  # admissible, or a free-text command the env declares
            obs, reward, terminated, truncated, bad_info = env.step(bad)
            if not bad_info["invalid_action"] or reward != 0.0 or terminated:
                raise _fail(
                    env,
                    "invalid command",
                    f"{bad!r} must set info['invalid_action'] and change nothing",
                )
            if bad_info["admissible_actions"] != info["admissible_actions"]:
                raise _fail(env, "invalid command", f"{bad!r} changed the admissible commands")
        if not data_equivalence(expected, env.step(probe)):
            raise _fail(env, "invalid command", "an inadmissible command changed the state")
        env.set_state(snapshot)
        for wrong in (3, None, [probe]):
            try:
                env.step(wrong)
            except TypeError:
                continue
            raise _fail(env, "non-string action", f"step({wrong!r}) must raise TypeError")


def _near_misses(template: str) -> list[str]:
    """Commands close to a filled ``template`` that must be refused unless they fill some
    template with valid text: each bad text, and the probe with the template's frame
    broken (a character of the prefix or suffix dropped, the prefix upper-cased)."""
    prefix, _, suffix = template.partition(TEXT)
    misses = [prefix + bad + suffix for bad in BAD_FREE_TEXTS]
    if prefix:
        misses += [prefix[1:] + FREE_TEXT_PROBE + suffix, prefix.upper() + FREE_TEXT_PROBE + suffix]
    if suffix:
        misses.append(prefix + FREE_TEXT_PROBE + suffix[:-1])
    return misses


def _check_free_text(env: gym.Env, seed: int, rng: np.random.Generator, max_steps: int) -> None:
    """The contract's free-text exception: each declared template, filled with a novel text,
    is accepted in some state reached (on random walks and the expert's path), and then as
    a valid, deterministic step whose snapshot round-trips; ``accepts_free_text`` agrees
    with ``step``; near-misses and texts that break the free-text rule are refused."""
    templates = env.free_text_commands
    if not callable(getattr(env, "accepts_free_text", None)):
        raise _fail(env, "free text", "free_text_commands are declared but not accepts_free_text")
    for template in templates:
        if not isinstance(template, str) or template.count(TEXT) != 1:
            raise _fail(env, "free text", f"template {template!r} must hold {TEXT!r} exactly once")
    accepted: set[str] = set()
    probed = 0

    def refused(command: str, info: dict, snapshot: dict, expected: tuple, where: str) -> None:
        _, reward, terminated, _, bad_info = env.step(command)
        if not bad_info["invalid_action"] or reward != 0.0 or terminated:
            raise _fail(
                env, "free text", f"{command!r} must be refused: it fills no template ({where})"
            )
        if bad_info["admissible_actions"] != info["admissible_actions"] or not data_equivalence(
            expected, env.step(info["admissible_actions"][0])
        ):
            raise _fail(env, "free text", f"the refused {command!r} changed the state ({where})")
        env.set_state(snapshot)

    def probe(info: dict, where: str) -> None:
        nonlocal probed
        probed += 1
        snapshot = env.get_state()
        expected = env.step(info["admissible_actions"][0])
        env.set_state(snapshot)
        for template in templates:
            novel = template.replace(TEXT, FREE_TEXT_PROBE)
            if env.accepts_free_text(novel):
                accepted.add(template)
                first = env.step(novel)
                if first[4]["invalid_action"]:
                    raise _fail(
                        env, "free text", f"{novel!r} is accepted but step refused it ({where})"
                    )
                after = env.get_state()
                if not (first[2] or first[3]):
                    follow = first[4]["admissible_actions"][0]
                    stepped = env.step(follow)
                    env.set_state(after)
                    if not data_equivalence(stepped, env.step(follow)):
                        raise _fail(
                            env,
                            "free text",
                            f"a snapshot taken after {novel!r} does not round-trip ({where})",
                        )
                env.set_state(snapshot)
                if not data_equivalence(first, env.step(novel)):
                    raise _fail(
                        env,
                        "free text",
                        f"{novel!r} stepped twice from one state differs ({where})",
                    )
                env.set_state(snapshot)
            elif novel not in info["admissible_actions"]:
                refused(novel, info, snapshot, expected, where)
            for miss in _near_misses(template):
                if miss in info["admissible_actions"]:
                    continue
                if any(free_text_of(t, miss) is not None for t in templates):
                    continue  # it fills a template after all: the env may accept it
                if env.accepts_free_text(miss):
                    raise _fail(
                        env,
                        "free text",
                        f"accepts_free_text accepts {miss!r}, which fills no template with "
                        f"valid text ({where})",
                    )
                refused(miss, info, snapshot, expected, where)

    for s in range(seed, seed + 5):
        info = _walk(env, s, rng, int(rng.integers(0, 8)))
        probe(info, f"seed {s}, a random walk")
        _, info = env.reset(seed=s)
        for step in range(max_steps):
            probe(info, f"seed {s}, expert step {step}")
            _, _, terminated, truncated, info = env.step(env.expert_action())
            if terminated or truncated:
                break
    missing = [t for t in templates if t not in accepted]
    if missing:
        raise _fail(
            env,
            "free text",
            f"template(s) {missing} never accepted a novel text in {probed} states probed",
        )


def _check_expert(env: gym.Env, instances: int, seed: int, max_steps: int) -> None:
    for s in range(seed, seed + instances):
        obs, info = env.reset(seed=s)
        for _ in range(max_steps):
            action = env.expert_action()
            if action not in info["admissible_actions"]:
                raise _fail(
                    env, "expert", f"expert chose inadmissible {action!r} ({env.split} seed {s})"
                )
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        if not info["success"]:
            raise _fail(
                env, "expert", f"expert failed {env.split} seed {s} within {max_steps} steps"
            )


def _check_splits(train: gym.Env, test: gym.Env, instances: int, seed: int) -> None:
    def instance(env: gym.Env, s: int) -> tuple[str, str]:
        obs, _ = env.reset(seed=s)
        return obs["goal"], obs["text"]

    seen = {instance(train, s) for s in range(seed, seed + instances)}
    for s in range(seed, seed + instances):
        if instance(test, s) in seen:
            raise _fail(
                test,
                "splits",
                f"{test.split} seed {s} generates an instance the train split also generates",
            )


def _check_knowledge(
    train: gym.Env, novel: gym.Env, instances: int, seed: int, max_steps: int
) -> None:
    """The knowledge split's promise (see :mod:`envs.contract`), on a sample: every novel
    goal of ``instances`` seeds names a held-out entity (``knowledge_entities``); on the
    train split, no goal and no command of the expert's path names one, and each one
    shows in an observation: at reset, after an expert command, or after a command
    branched off the expert's path (each admissible command but the expert's, from each
    state of the path). Train seeds are walked until every entity has shown, at least
    ``instances`` and at most :data:`KNOWLEDGE_MAX_TRAIN` of them."""
    entities = tuple(getattr(novel, "knowledge_entities", ()))
    if not entities or not all(isinstance(e, str) and e.strip() for e in entities):
        raise _fail(
            novel,
            "knowledge split",
            f"it declares the {KNOWLEDGE_SPLIT!r} split but knowledge_entities is "
            f"{entities!r}; name the held-out entities (non-blank strings)",
        )
    for s in range(seed, seed + instances):
        obs, _ = novel.reset(seed=s)
        if not any(names_entity(obs["goal"], e) for e in entities):
            raise _fail(
                novel,
                "knowledge split",
                f"novel seed {s}: the goal {obs['goal']!r} names no held-out entity "
                f"(knowledge_entities: {', '.join(entities)})",
            )

    def named(text: str) -> str | None:
        return next((e for e in entities if names_entity(text, e)), None)

    unseen = set(entities)

    def observe(text: str) -> None:
        unseen.difference_update([e for e in unseen if names_entity(text, e)])

    walked = 0
    for s in range(seed, seed + max(instances, KNOWLEDGE_MAX_TRAIN)):
        if walked >= instances and not unseen:
            break
        walked += 1
        obs, info = train.reset(seed=s)
        entity = named(obs["goal"])
        if entity is not None:
            raise _fail(
                train,
                "knowledge split",
                f"train seed {s}: the goal {obs['goal']!r} names the held-out {entity!r}; "
                "a train goal must never name one",
            )
        observe(obs["text"])
        for step in range(max_steps):
            action = train.expert_action()
            entity = named(action)
            if entity is not None:
                raise _fail(
                    train,
                    "knowledge split",
                    f"train seed {s}, expert step {step}: the expert's command {action!r} "
                    f"names the held-out {entity!r}; a demonstration must never show one",
                )
            if unseen:
                snapshot = train.get_state()
                for branch in info["admissible_actions"]:
                    if branch != action:
                        observe(train.step(branch)[0]["text"])
                        train.set_state(snapshot)
            obs, _, terminated, truncated, info = train.step(action)
            observe(obs["text"])
            if terminated or truncated:
                break
    if unseen:
        raise _fail(
            train,
            "knowledge split",
            f"held-out {', '.join(repr(e) for e in sorted(unseen))} never showed in a train "
            f"observation (at reset, on the expert's path or one branched command off it) in "
            f"{walked} train instances: what no demonstration shows must show in outcomes",
        )
