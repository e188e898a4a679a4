"""The learner registry, the twin of the env registry.

A learner is a name, a train function ``train(config) -> metrics`` (it trains, saves
``config.out/agent.pt`` and ``metrics.json`` through :class:`learners.lifecycle.Run`, and
returns the metrics), a config dataclass derived from :class:`learners.config.RunConfig`
(its fields are the CLI flags), config overrides that make a variant (``iwm-matched`` is
``iwm`` with ``budget="matched"``), and what it needs, declared here and never guessed from
its name: expert demonstrations (then the benchmark sweeps it over demo budgets), early-
experience rollouts, an interactive expert (DAgger), a warm-start checkpoint from another
learner's run.

A user's learner registers itself when its module is imported, and is named ``module:name``
wherever a built-in is named ``name`` (``earlyexp train ENV --learner mypkg.mine:bc-long``),
exactly like ``module:id`` env ids.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envs.registration import import_user_module
from learners.config import RunConfig, command_line, config_fields

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Learner:
    """A registered learner; ``train`` and ``config`` may be lazy ``"module:attr"`` strings."""

    name: str
    train_entry: Callable[[Any], dict[str, Any]] | str
    config_entry: type[RunConfig] | str
    overrides: dict[str, Any] = field(default_factory=dict)
    needs_demos: bool = True
    """Trains on expert demos (``config.demos``, ``config.episodes``): the benchmark sweeps it
    over demo budgets. False: it learns from the env (RL), swept over seeds only."""
    needs_rollouts: bool = False
    """Trains on early-experience rollouts (``config.rollout_file``)."""
    needs_expert: bool = False
    """Queries the env's expert while it trains (``expert_action`` from the learner's states)."""
    warm_start: str | None = None
    """Starts from the checkpoint of this learner's run (``config.init_from``)."""
    description: str = ""

    @property
    def config(self) -> type[RunConfig]:
        """The config dataclass (imported on first use)."""
        return _load(self.config_entry, f"config of learner {self.name!r}")

    @property
    def train(self) -> Callable[[Any], dict[str, Any]]:
        """The train function (imported on first use)."""
        return _load(self.train_entry, f"train function of learner {self.name!r}")

    def make_config(self, **values: Any) -> RunConfig:
        """The learner's config from ``values``, with its overrides and ``learner`` set.

        Raises:
            ValueError: a value contradicts one of the variant's overrides, or is no field of
                the config, or is invalid (the config's own message).
        """
        fields = config_fields(self.config)
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a field of {self.config.__name__} "
                f"(learner {self.name!r}); its fields: {', '.join(sorted(fields))}"
            )
        for key, fixed in self.overrides.items():
            if key in values and values[key] != fixed:
                raise ValueError(
                    f"learner {self.name!r} fixes {key}={fixed!r}; got {key}={values[key]!r}. "
                    f"Use another learner (or register a variant) for {key}={values[key]!r}."
                )
        return self.config(**{**values, **self.overrides, "learner": self.name})

    def command(self, config: RunConfig) -> str:
        """The ``earlyexp train`` command that reproduces a run of ``config``."""
        # The defaults of the same agent type: a variant may be valid for one type only
        # (iwm-mixed, the language-model agent's); the model's flags are diffed apart.
        return command_line(config, self.make_config(env_id=config.env_id, model=config.model))


_LEARNERS: dict[str, Learner] = {}


def register_learner(
    name: str,
    *,
    train: Callable[[Any], dict[str, Any]] | str,
    config: type[RunConfig] | str,
    overrides: dict[str, Any] | None = None,
    needs_demos: bool = True,
    needs_rollouts: bool = False,
    needs_expert: bool = False,
    warm_start: str | None = None,
    description: str = "",
) -> None:
    """Register a learner under ``name`` (see :class:`Learner` for the arguments).

    ``train`` and ``config`` are objects or lazy ``"module:attr"`` strings. Registering the same
    name with the same arguments again does nothing; with other arguments it is an error.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"learner name {name!r}: use letters, digits, '.', '_' and '-' (e.g. 'bc-long')"
        )
    for what, entry in (("train", train), ("config", config)):
        if isinstance(entry, str) and ":" not in entry:
            raise ValueError(f"{what} must be an object or a 'module:attr' string, got {entry!r}")
    learner = Learner(
        name,
        train,
        config,
        dict(overrides or {}),
        needs_demos,
        needs_rollouts,
        needs_expert,
        warm_start,
        description,
    )
    if not isinstance(config, str):  # a lazy config is checked when it is first used
        _check_declared_needs(learner)
    existing = _LEARNERS.get(name)
    if existing is not None and existing != learner:
        raise ValueError(
            f"learner {name!r} is already registered with other arguments; choose another name"
        )
    _LEARNERS[name] = learner


def get_learner(name: str) -> Learner:
    """The learner registered as ``name``; ``module:name`` imports ``module`` first (where a
    user's learner registers itself). The learner keeps the name it was asked by."""
    if not isinstance(name, str):
        raise TypeError(f"a learner name is a string, got {type(name).__name__}")
    bare = name
    if ":" in name:
        module, bare = name.split(":", 1)
        import_user_module(module, f"learner {bare!r}")
    learner = _LEARNERS.get(bare)
    if learner is None:
        raise ValueError(
            f"unknown learner {name!r}; registered: {', '.join(registered_learners())}. "
            "A user learner registers itself when its module is imported: pass 'module:name'."
        )
    _check_declared_needs(learner)
    return dataclasses.replace(learner, name=name) if name != bare else learner


def registered_learners() -> list[str]:
    """Every registered learner name (built-ins and imported user learners)."""
    return sorted(_LEARNERS)


def _check_declared_needs(learner: Learner) -> None:
    """The config type is a RunConfig with a field for each declared need."""
    _check_config_type(learner.name, learner.config)
    needs = {
        "demos": learner.needs_demos,
        "episodes": learner.needs_demos,
        "rollout_file": learner.needs_rollouts,
        "init_from": learner.warm_start is not None,
    }
    fields = config_fields(learner.config)
    missing = sorted(f for f, needed in needs.items() if needed and f not in fields)
    if missing:
        raise ValueError(
            f"learner {learner.name!r} declares needs that its config "
            f"{learner.config.__name__} has no field for: {', '.join(missing)}"
        )


def _check_config_type(name: str, config: Any) -> None:
    if not (isinstance(config, type) and issubclass(config, RunConfig)):
        raise TypeError(
            f"learner {name!r}: config must be a dataclass derived from "
            f"learners.config.RunConfig, got {config!r}"
        )


def _load(entry: Any, what: str) -> Any:
    if not isinstance(entry, str):
        return entry
    module, attr = entry.split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load the {what} from {entry!r}: {exc}") from exc
