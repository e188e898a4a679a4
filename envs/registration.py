"""Registering and making earlyexp envs: versioned ``earlyexp/`` ids over Gymnasium's registry."""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from envs.contract import KNOWLEDGE_SPLIT, SPLITS, check_split, env_splits

_ID = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+-v\d+$")


@dataclass(frozen=True)
class EnvInfo:
    """What ``earlyexp envs`` lists about a registered id."""

    env_id: str
    family: str
    description: str


_INFO: dict[str, EnvInfo] = {}


def register(
    env_id: str,
    entry_point: str,
    *,
    max_episode_steps: int,
    family: str = "user",
    description: str = "",
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Register a contract env under a versioned id such as ``earlyexp/Household-v0``.

    ``entry_point`` is a lazy ``"module:Class"`` string, imported on first ``make``.
    Registering the same id with the same arguments again does nothing; with different
    arguments it is an error (bump the version instead).
    """
    if not _ID.match(env_id):
        raise ValueError(
            f"env id {env_id!r} is not of the form 'namespace/Name-vN' (e.g. 'earlyexp/Household-v0')"
        )
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ValueError(f"entry_point must be a 'module:Class' string, got {entry_point!r}")
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
    kwargs = dict(kwargs or {})
    existing = gym.registry.get(env_id)
    if existing is not None:
        same = (
            existing.entry_point == entry_point
            and existing.max_episode_steps == max_episode_steps
            and existing.kwargs == kwargs
        )
        if not same:
            raise ValueError(
                f"{env_id!r} is already registered with other arguments; "
                "register a new version (e.g. -v1) instead of changing an existing one"
            )
    else:
        gym.register(
            id=env_id,
            entry_point=entry_point,
            max_episode_steps=max_episode_steps,
            kwargs=kwargs,
            disable_env_checker=True,
        )
    _INFO[env_id] = EnvInfo(env_id, family, description)


def resolve_id(env_id: str) -> str:
    """Import the module of a ``module:id`` form (where a user's env registers itself) and
    return the bare id, checking that it is registered."""
    if not isinstance(env_id, str):
        raise TypeError(f"an env id is a string, got {type(env_id).__name__}")
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        import_user_module(module, f"env {env_id!r}")
    if env_id not in gym.registry:
        raise ValueError(
            f"unknown env id {env_id!r}; registered: {', '.join(registered_ids())}. "
            "A user env registers itself when its module is imported: pass 'module:id'."
        )
    return env_id


def import_user_module(module: str, what: str) -> None:
    """Import the user's ``module`` (of a ``module:id`` or ``module:name``) for ``what``.

    Like ``python -m``, the current directory is searched too, so ``mypkg/lights.py`` beside
    the shell works from the ``earlyexp`` console script; it is searched last, so it never
    shadows an installed package.
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module!r} for {what}: {exc}") from exc


def registered_ids() -> list[str]:
    """Every id registered through :func:`register` (built-ins and user envs)."""
    return sorted(_INFO)


def env_info(env_id: str) -> EnvInfo:
    """Family and description of a registered id (a plain Gymnasium id gets family 'gymnasium')."""
    return _INFO.get(env_id, EnvInfo(env_id, "gymnasium", ""))


def make(env_id: str, split: str = "train", **kwargs: Any) -> gym.Env:
    """Make a registered env on ``split``: ``"train"``, ``"test"``, or ``"novel"`` for an env
    that declares a knowledge split (see :mod:`envs.contract`).

    Accepts Gymnasium's ``module:id`` form. Returns the env wrapped in Gymnasium's
    ``TimeLimit`` (the registered step cap); the contract methods (``expert_action``,
    ``get_state``, ``set_state``) live on ``env.unwrapped``.
    """
    env_id = resolve_id(env_id)
    check_split(split, (*SPLITS, KNOWLEDGE_SPLIT))
    env = gym.make(env_id, split=split, **kwargs)
    if split not in env_splits(env):
        # an env that takes any split (a user's plain gymnasium.Env) but declares no such one
        env.close()
        raise ValueError(
            f"{env_id} has no {split!r} split; its splits: {', '.join(env_splits(env))}"
        )
    return env
