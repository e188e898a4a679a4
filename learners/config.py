"""Flat learner configs (CleanRL style): each field carries its help text, so the CLI, the
docs and the logged config table all come from the dataclass itself."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, get_type_hints


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a default and the help text the CLI shows for it."""
    return dataclasses.field(default=default, metadata={"help": help})


def add_config_arguments(
    parser: argparse.ArgumentParser, config_type: type, skip: set[str] = frozenset()
) -> None:
    """Add one ``--flag`` per field of ``config_type`` (``snake_case`` becomes ``--snake-case``)."""
    add_learner_arguments(parser, {"": config_type}, skip, suppress=False)


def add_learner_arguments(
    parser: argparse.ArgumentParser,
    configs: dict[str, type],
    skip: set[str] = frozenset(),
    suppress: bool = True,
) -> None:
    """One ``--flag`` per field of any of ``configs`` (learner name -> config type).

    With ``suppress``, a flag the user does not give stays out of the parsed namespace, so
    :func:`config_from_args` keeps each learner's own default; the help text lists the
    defaults per learner where they differ.
    """
    seen: dict[str, list[tuple[str, Any, dataclasses.Field]]] = {}
    for learner, config_type in configs.items():
        hints = get_type_hints(config_type)
        for field in dataclasses.fields(config_type):
            if field.name not in skip:
                seen.setdefault(field.name, []).append((learner, hints[field.name], field))
    for name, owners in seen.items():
        _, kind, field = owners[0]
        defaults = {f.default for _, _, f in owners}
        if len(defaults) == 1:
            default_text = f"default: {field.default}"
        else:
            default_text = "; ".join(f"{who}: {f.default}" for who, _, f in owners)
        if len(owners) < len(configs):
            default_text = f"{'/'.join(who for who, _, _ in owners)} only; {default_text}"
        help_text = f"{field.metadata.get('help', '')} ({default_text})"
        default = argparse.SUPPRESS if suppress else field.default
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, action=action, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=_scalar(kind), default=default, help=help_text)


def config_fields(config_type: type) -> set[str]:
    """The field names of a config dataclass (its CLI flags, underscored)."""
    return {f.name for f in dataclasses.fields(config_type)}


def config_from_args(config_type: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``config_type`` from parsed arguments (fields absent from ``args`` keep defaults)."""
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_type)
        if hasattr(args, f.name)
    }
    return config_type(**{**values, **overrides})


def _scalar(kind: Any) -> type:
    # ``int | None`` and friends: parse as the non-None member.
    members = [k for k in getattr(kind, "__args__", (kind,)) if k is not type(None)]
    return members[0]
