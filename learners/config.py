"""Learner configs (CleanRL style): one flat dataclass per learner, each field documented.

Every config derives from :class:`RunConfig`, which holds what every run has (env, output
directory, seed, evaluation, logging, the model architecture) and validates itself one way:
bounds and choices are declared on the field (:func:`option`), types are checked against the
annotations, and a config adds cross-field rules by extending :meth:`RunConfig.problems`.
A bad value is a ``ValueError`` naming every problem at once.

The CLI, the docs, the logged config table and a results row's reproducing command all come
from the dataclass itself: each field is a ``--flag`` of ``earlyexp train``, and the model
architecture (:class:`agents.ModelConfig`) is one flag group shared by every learner;
``--agent lm`` and the ``--lm-*`` group (:class:`agents.LMConfig`) make ``model`` a
language-model agent instead.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import shlex
import textwrap
import types
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin, get_type_hints

from agents import DEVICE_CHOICES, DEVICE_NAME, LMConfig, ModelConfig


def option(
    default: Any,
    help: str,  # noqa: A002 - mirrors argparse's name
    *,
    low: float | None = None,
    choices: Sequence[Any] | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its help text, and optionally its lowest value or its choices."""
    metadata = {"help": help, "low": low, "choices": tuple(choices) if choices else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


#: Fields a results row's command leaves to the caller's defaults (they do not change results).
_NOT_IN_COMMAND = frozenset({"env_id", "learner", "model"})


@dataclasses.dataclass
class RunConfig:
    """What every learner's run has. Subclass it; every field is a flag of ``earlyexp train``."""

    env_id: str = option(
        "earlyexp/Household-v0", "the env trained on (train split) and evaluated on (test split)"
    )
    learner: str = option(
        "", "the registered learner this run trains as (set by `earlyexp train --learner`)"
    )
    out: str = option("runs/run", "directory for ``agent.pt`` and ``metrics.json``")
    seed: int = option(0, "seeds the model's initial weights and every random choice of the run")
    eval_episodes: int = option(
        50, "test-split episodes for the final evaluation (0 skips it)", low=0
    )
    eval_seed: int = option(
        10_000,
        "instance seed of the final evaluation's first episode (learners.evaluate.EVAL_SEED; "
        "another range gives instances a study does not use, e.g. to tune on)",
        low=0,
    )
    eval_split: str = option(
        "test",
        "the split of the final evaluation: test, or novel (a setting's knowledge split, where "
        "it has one: goals name entities training never asked for)",
        choices=("test", "novel"),
    )
    log_dir: str = option(
        "runs", "TensorBoard root; the run logs to ``log_dir/{env}__{learner}__{seed}__{time}``"
    )
    progress: bool = option(True, "show progress bars")
    device: str = option(
        "auto",
        f"where the model trains and acts: {DEVICE_CHOICES} (auto: a GPU when there is one; "
        "on a GPU with bf16 autocast)",
    )
    model: ModelConfig | LMConfig | None = option(
        None,
        "a fresh agent: the model flag group (a ModelConfig), or a language-model agent "
        "(--agent lm and the lm flag group: an LMConfig); None = ModelConfig()",
    )

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # from JSON (a results row, a profile)
            self.model = model_config(self.model)
        problems = self.problems()
        if problems:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every bad value, as text; subclasses extend it with their cross-field rules."""
        problems = []
        hints = get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = hints[field.name]
            if not _has_type(value, kind):
                problems.append(
                    f"{field.name} must be {_type_name(kind)}, got {type(value).__name__} {value!r}"
                )
                continue
            low, choices = field.metadata.get("low"), field.metadata.get("choices")
            if low is not None and value is not None and value < low:
                problems.append(f"{field.name} must be >= {low:g}, got {value}")
            if choices and value is not None and value not in choices:
                listed = ", ".join(map(str, choices))
                problems.append(f"unknown {field.name} {value!r}; choose one of {listed}")
        if isinstance(self.device, str) and not DEVICE_NAME.fullmatch(self.device):
            problems.append(f"unknown device {self.device!r}; use {DEVICE_CHOICES}")
        return problems


def model_config(values: dict[str, Any]) -> ModelConfig | LMConfig:
    """The ``model`` value of a config from its JSON: an LMConfig when it names a language
    model (its ``model`` key), else a ModelConfig."""
    return LMConfig(**values) if "model" in values else ModelConfig(**values)


def _has_type(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    if get_origin(kind) in (Union, types.UnionType):
        return any(_has_type(value, member) for member in get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = get_origin(kind)
    return isinstance(value, origin or kind)


def _type_name(kind: Any) -> str:
    if get_origin(kind) in (Union, types.UnionType):
        return " or ".join(_type_name(member) for member in get_args(kind))
    if kind is type(None):
        return "None"
    return getattr(get_origin(kind) or kind, "__name__", str(kind))


# -- the command line -----------------------------------------------------------------------
def field_help(config_type: type) -> dict[str, str]:
    """Help text of each field: its ``option`` help, else its attribute docstring."""
    docs: dict[str, str] = {}
    for klass in reversed(config_type.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (a class built at run time)
            continue
        body = tree.body[0].body
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    for field in dataclasses.fields(config_type):
        if field.metadata.get("help"):
            docs[field.name] = field.metadata["help"]
    return docs


def flag(name: str) -> str:
    """``snake_case`` field name -> ``--snake-case``."""
    return "--" + name.replace("_", "-")


def config_fields(config_type: type) -> set[str]:
    """The field names of a config dataclass (its CLI flags, underscored)."""
    return {f.name for f in dataclasses.fields(config_type)}


#: The model flag group: every ModelConfig field is a flag of every learner.
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
#: The lm flag group: every LMConfig field is a flag ``--lm-<field>`` of every learner.
LM_FIELDS = tuple(f.name for f in dataclasses.fields(LMConfig))
#: ``--agent``: which agent a fresh run trains.
AGENTS = ("model", "lm")


def add_learner_arguments(
    parser: argparse.ArgumentParser,
    configs: dict[str, type],
    skip: Iterable[str] = (),
) -> None:
    """One ``--flag`` per field of any of ``configs`` (learner name -> config type), and the
    model architecture as a flag group.

    A flag the user does not give stays out of the parsed namespace, so
    the learner keeps its own default (:func:`values_from_args`); the help text names the learners
    a flag belongs to and their defaults where they differ.
    """
    skip = set(skip) | {"model"}
    seen: dict[str, list[tuple[str, Any, dataclasses.Field, str]]] = {}
    for learner, config_type in configs.items():
        hints, docs = get_type_hints(config_type), field_help(config_type)
        for field in dataclasses.fields(config_type):
            if field.name not in skip:
                entry = (learner, hints[field.name], field, docs.get(field.name, ""))
                seen.setdefault(field.name, []).append(entry)
    clash = sorted(set(seen) & {*MODEL_FIELDS, "agent", *(f"lm_{name}" for name in LM_FIELDS)})
    if clash:
        raise ValueError(f"learner config fields {clash} clash with the model's flags")
    for name, owners in seen.items():
        _, kind, field, doc = owners[0]
        defaults = {repr(_default(f)) for _, _, f, _ in owners}
        if len(defaults) == 1:
            default_text = f"default: {_default(field)}"
        else:
            default_text = "; ".join(f"{who}: {_default(f)}" for who, _, f, _ in owners)
        if len(owners) < len(configs):
            default_text = f"{'/'.join(who for who, _, _, _ in owners)} only; {default_text}"
        choices = field.metadata.get("choices")
        if choices:  # validated by the config itself, with the same message as in Python
            doc = f"{doc}: {' | '.join(map(str, choices))}"
        _add(parser, name, kind, f"{doc} ({default_text})")

    group = parser.add_argument_group(
        "model", "architecture of a fresh agent (agents.ModelConfig); every learner takes these"
    )
    group.add_argument(
        "--agent",
        choices=AGENTS,
        default=argparse.SUPPRESS,
        help="model: the policy model of these flags (default); lm: a language-model agent, "
        "configured by the lm flags",
    )
    hints, docs = get_type_hints(ModelConfig), field_help(ModelConfig)
    for field in dataclasses.fields(ModelConfig):
        help_text = f"{docs.get(field.name, '')} (default: {field.default})"
        _add(group, field.name, hints[field.name], help_text)

    group = parser.add_argument_group(
        "lm",
        "a language-model agent (agents.LMConfig; with --agent lm, every learner that "
        "trains one: bc, bc-short, iwm)",
    )
    hints, docs = get_type_hints(LMConfig), field_help(LMConfig)
    for field in dataclasses.fields(LMConfig):
        help_text = f"{docs.get(field.name, '')} (default: {field.default})"
        _add(group, f"lm_{field.name}", hints[field.name], help_text)


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _add(parser: Any, name: str, kind: Any, help_text: str) -> None:
    help_text = help_text.replace("%", "%%")  # argparse formats help with %
    if kind is bool:
        parser.add_argument(
            flag(name),
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=help_text,
        )
        return
    parser.add_argument(
        flag(name),
        type=_parser_of(kind),
        default=argparse.SUPPRESS,
        help=help_text,
    )


def _members(kind: Any) -> list[Any]:
    """The non-None members of a union (``int | None`` -> [int]), or ``[kind]``."""
    if get_origin(kind) in (Union, types.UnionType):
        return [k for k in get_args(kind) if k is not type(None)]
    return [kind]


def _parser_of(kind: Any) -> Any:
    # ``int | None`` and friends: parse as the non-None member; a dict is given as JSON.
    member = _members(kind)[0]
    if (get_origin(member) or member) is dict:
        return json_object
    return member


def json_object(text: str) -> dict:
    """Parse a flag's JSON object (argparse ``type=``): a clear error for anything else."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def values_from_args(config_type: type, args: argparse.Namespace) -> dict[str, Any]:
    """The config values the user gave as flags (absent flags are left to the learner's
    defaults); any model flag makes the ``model`` value, and so does ``--agent lm`` with
    the lm flags.

    Raises:
        ValueError: lm flags without ``--agent lm``, or model flags with it.
    """
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_type)
        if f.name != "model" and hasattr(args, f.name)
    }
    model = {name: getattr(args, name) for name in MODEL_FIELDS if hasattr(args, name)}
    lm = {name: getattr(args, f"lm_{name}") for name in LM_FIELDS if hasattr(args, f"lm_{name}")}
    if getattr(args, "agent", "model") == "lm":
        if model:
            flags = ", ".join(flag(name) for name in model)
            raise ValueError(
                f"{flags}: flags of the policy model; the language-model agent (--agent lm) "
                "takes the --lm-* flags"
            )
        values["model"] = LMConfig(**lm)
    elif lm:
        flags = ", ".join(flag(f"lm_{name}") for name in lm)
        raise ValueError(f"{flags}: flags of the language-model agent; add --agent lm")
    elif model:
        values["model"] = ModelConfig(**model)
    return values


def parse_value(config_type: type, name: str, text: str) -> Any:
    """``text`` (from a ``KEY=VALUE`` option) as the type of field ``name`` of ``config_type``,
    as its ``--flag`` would parse it; text for a text field stays as it is."""
    hints = get_type_hints(config_type)
    if name not in hints or not isinstance(text, str):
        return text
    kind = hints[name]
    members = _members(kind)
    if str in members:
        return text
    if text.lower() == "none" and type(None) in get_args(kind):
        return None
    if members == [bool]:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{name}={text!r}: expected true or false")
    try:
        return _parser_of(kind)(text)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ValueError(f"{name}={text!r}: expected {_type_name(kind)} ({exc})") from None


def command_line(config: RunConfig, defaults: RunConfig) -> str:
    """The ``earlyexp train`` command that rebuilds ``config``: every field that differs from
    ``defaults`` (the learner's registered defaults), and the model flags that differ from
    ``ModelConfig()`` (for a language-model agent: ``--agent lm`` and the lm flags that
    differ from ``LMConfig()``)."""
    words = ["earlyexp", "train", config.env_id, "--learner", config.learner]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in _NOT_IN_COMMAND or value == getattr(defaults, field.name):
            continue
        words += _flag_words(field.name, value)
    if isinstance(config.model, LMConfig):
        words += ["--agent", "lm"]
        for field in dataclasses.fields(LMConfig):
            value = getattr(config.model, field.name)
            if value != field.default:
                words += _flag_words(f"lm_{field.name}", value)
        return shlex.join(words)
    model = config.model if config.model is not None else ModelConfig()
    for field in dataclasses.fields(ModelConfig):
        value = getattr(model, field.name)
        if value != field.default:
            words += _flag_words(field.name, value)
    return shlex.join(words)


def _flag_words(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag(name) if value else "--no-" + name.replace("_", "-")]
    if value is None:
        raise ValueError(f"{name}=None differs from its default but has no flag")
    if isinstance(value, dict):
        return [flag(name), json.dumps(value, sort_keys=True)]
    return [flag(name), str(value)]
