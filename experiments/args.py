"""Command-line arguments from an experiment's ``@dataclass`` of arguments (CleanRL style).

Each field becomes ``--field-name``; the field's docstring (the string literal under it) is its
help text, followed by its default (and its ``--quick`` value). Booleans are flags (``--quick``
/ ``--no-quick``); tuples take several values.

``--quick`` sets defaults only: a flag given on the command line always wins, even when its
value equals the full run's default (``--quick --eval-seeds 5`` evaluates on 5 seeds).
:func:`resolve` applies the same rule to arguments given in Python.

:class:`ProtocolArgs` holds the flags every learning experiment shares (seeds, TensorBoard,
resume); an experiment's ``Args`` subclasses it and may redeclare a field to change its default.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

from auctionsim.errors import AuctionSimError, ConfigError

__all__ = ["ProtocolArgs", "field_docs", "build_parser", "resolve", "parse", "parse_with_quick"]

T = TypeVar("T")


@dataclass
class ProtocolArgs:
    """The flags every learning experiment shares (issue 13's protocol)."""

    quick: bool = False
    """a short run: every flag not given takes its quick value (shown as 'quick: ...')"""
    seed: int = 0
    """base seed: training seed i is seed + i; evaluation markets are derived from it, disjoint from training and validation"""
    training_seeds: int = 3
    """independent training runs (learners), each evaluated on every evaluation seed"""
    eval_seeds: int = 5
    """evaluation markets (seeds), the same for every method and training seed"""
    tensorboard: bool = True
    """write TensorBoard scalars under <output-dir>/tensorboard"""
    resume: bool = False
    """continue the run in the output folder: refused when its config differs, extended where more seeds or iterations are asked"""


def field_docs(cls: type) -> dict[str, str]:
    """The string literal following each field of a dataclass (and its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
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


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value) if value else "()"
    return str(value).replace("%", "%%")


def build_parser(cls: type, quick: Mapping[str, Any] | None = None, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser for ``cls`` whose namespace holds only the flags actually given."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    quick = dict(quick or {})
    summary = description if description is not None else (cls.__doc__ or "").strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog=prog, description=summary, argument_default=argparse.SUPPRESS)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        hint = hints[field.name]
        flag = "--" + field.name.replace("_", "-")
        default = _default(field)
        shown = f"default: {_show(default)}" + (f"; quick: {_show(quick[field.name])}" if field.name in quick else "")
        help_text = f"{docs.get(field.name, '').replace('%', '%%')} ({shown})"
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            parser.add_argument(flag, type=item, nargs="+", metavar=field.name.upper(), help=help_text)
        else:
            kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if typing.get_origin(hint) else hint
            parser.add_argument(flag, type=kind, metavar=field.name.upper(), help=help_text)
    return parser


def resolve(cls: type[T], quick_values: Mapping[str, Any] | None = None, /, **given: Any) -> T:
    """``cls(**values)`` where ``given`` always wins and, when ``given["quick"]`` is true (or
    the class's ``quick`` default is), fields not given take their ``quick_values``. A
    ``ValueError`` from the class's checks is raised as a :class:`ConfigError` (the CLI prints
    it as one line, exit status 2)."""
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - names) + sorted(set(quick_values or {}) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}")
    is_quick = given.get("quick", getattr(cls, "quick", False))
    values = {**(dict(quick_values or {}) if is_quick else {}), **given}
    try:
        return cls(**values)
    except AuctionSimError:
        raise
    except ValueError as error:  # an experiment's own check: one kind of error for the CLI to print
        raise ConfigError(str(error)) from None


def parse(
    cls: type[T],
    argv: Sequence[str] | None = None,
    description: str | None = None,
    quick: Mapping[str, Any] | None = None,
    prog: str | None = None,
) -> T:
    """Parse ``argv`` into an instance of the dataclass ``cls`` (see :func:`resolve`).

    Args:
        cls: the experiment's ``@dataclass`` of arguments.
        argv: the flags (default ``sys.argv[1:]``).
        description: help text (default: the first line of the class docstring).
        quick: values of the fields that ``--quick`` changes (its *defaults*).
        prog: the program name in usage lines (default for ``experiments.NAME``:
            ``"auctionsim NAME"``).

    Flags argparse cannot read end with its usage line and exit status 2; values the dataclass
    rejects raise its :class:`~auctionsim.errors.ConfigError` (the ``auctionsim`` command prints
    it as one line, exit status 2).
    """
    if prog is None and cls.__module__.startswith("experiments."):
        prog = f"auctionsim {cls.__module__.split('.', 1)[1]}"  # usage names the subcommand
    parser = build_parser(cls, quick, prog, description)
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in vars(parser.parse_args(argv)).items()}
    return resolve(cls, quick, **given)


def parse_with_quick(cls: type[T], quick_sizes: dict[str, Any], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Old name of ``parse(cls, argv, description, quick=quick_sizes)``; kept until every
    experiment calls :func:`parse` directly."""
    return parse(cls, argv, description, quick=quick_sizes)
