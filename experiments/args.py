"""Command-line arguments from an experiment's ``@dataclass`` of arguments (CleanRL style).

Each field becomes ``--field-name``; the field's docstring (the string literal under it) is its
help text. Booleans are flags (``--quick`` / ``--no-quick``); tuples take several values.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import typing
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The string literal following each field of a dataclass, by field name."""
    docs: dict[str, str] = {}
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = following.value.value
    return docs


def parse(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` into an instance of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    parser = argparse.ArgumentParser(description=description or (cls.__doc__ or "").strip().splitlines()[0])
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        help_text = f"{docs.get(field.name, '')} (default: {default})"
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            parser.add_argument(flag, type=item, nargs="+", default=default, help=help_text)
        else:
            kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if typing.get_origin(hint) else hint
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    values: dict[str, Any] = vars(parser.parse_args(argv))
    return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def parse_with_quick(cls: type[T], quick_sizes: dict[str, Any], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """:func:`parse`, then, when ``--quick`` is given, every field left at its default takes its
    value from ``quick_sizes`` (fields given on the command line keep the given value)."""
    args = parse(cls, argv, description)
    if not getattr(args, "quick"):
        return args
    defaults = cls()
    return dataclasses.replace(args, **{key: value for key, value in quick_sizes.items() if getattr(args, key) == getattr(defaults, key)})  # type: ignore[type-var]
