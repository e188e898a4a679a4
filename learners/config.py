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
    hints = get_type_hints(config_type)
    for field in dataclasses.fields(config_type):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata.get('help', '')} (default: {field.default})"
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text
            )
        else:
            parser.add_argument(flag, type=_scalar(kind), default=field.default, help=help_text)


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
