"""One declaration per setting: a dataclass field carries its default, help, choices and environment variable.

Declare a setting with :func:`setting` in a dataclass; :func:`add_arguments` makes its ``--flag`` (help
text with the choices and the default), :func:`env_values` reads its environment variable, and
:func:`parse_settings` combines them: a flag wins over the environment, which wins over the default.
Torch-free, so ``--help`` answers before anything heavy loads.

    @dataclass
    class ServeSettings:
        port: int = setting(7860, "port to listen on", env="APP_PORT")
        ...
    ServeSettings(**parse_settings(ServeSettings, parser, argv, os.environ))
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

_SPLIT = re.compile(r"[," + re.escape(os.pathsep) + r"]")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    choices: Sequence[Any] | None = None,
    unset: str | None = None,
    flag: str | None = None,
) -> Any:
    """A dataclass field that is also a CLI flag (``--name-with-dashes``, or ``flag``) and, with ``env``,
    an environment variable. ``unset`` says what a ``None`` or empty default means in ``--help``.
    A list default is copied per instance."""
    metadata = {"help": help, "env": env, "choices": tuple(choices) if choices else None, "unset": unset}
    metadata["flag"] = flag
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """``(field, type)`` of every field of ``cls`` declared with :func:`setting`, in order."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if "help" in f.metadata]


def _unwrap(kind: Any) -> tuple[Any, bool]:
    """``Path | None`` -> ``(Path, False)``; ``list[Path]`` -> ``(Path, True)``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is list:
        return typing.get_args(kind)[0], True
    return kind, False


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def help_of(f: dataclasses.Field) -> str:
    """The field's help, then its default (or what leaving it unset means) and its variable."""
    default = default_of(f)
    shown = f.metadata["unset"] if default in (None, []) else default
    if isinstance(shown, str) and not shown.isprintable():
        shown = repr(shown)  # a newline default shows as its escape, not a line break
    parts = [f"default: {shown}"] if shown is not None else []
    if f.metadata["env"]:
        parts.append(f"env {f.metadata['env']}")
    return f"{f.metadata['help']} ({'; '.join(parts)})" if parts else f.metadata["help"]


def add_arguments(parser: argparse.ArgumentParser, cls: type, hidden: Sequence[str] = ()) -> None:
    """One flag per declared field of ``cls``; a given flag lands in the namespace, an absent one does not.

    ``bool`` fields get ``--flag/--no-flag``; lists take one or more values. ``hidden`` fields are
    accepted but left out of ``--help``.
    """
    for f, kind in declared(cls):
        kind, many = _unwrap(kind)
        shown = argparse.SUPPRESS if f.name in hidden else help_of(f)
        common = {"dest": f.name, "default": argparse.SUPPRESS, "help": shown}
        if kind is bool:
            parser.add_argument(flag_of(f), action=argparse.BooleanOptionalAction, **common)
        else:
            parser.add_argument(
                flag_of(f), type=kind, nargs="+" if many else None, choices=f.metadata["choices"], **common
            )


def parse_value(name: str, text: str, kind: Any) -> Any:
    """An environment variable's text as the field's type; a bad value is one sentence naming the variable."""
    kind, many = _unwrap(kind)
    if many:
        return [kind(part.strip()) for part in _SPLIT.split(text) if part.strip()]
    if kind is bool:
        if text.strip().lower() in TRUE + FALSE:
            return text.strip().lower() in TRUE
        raise ValueError(f"{name} must be one of {', '.join(TRUE + FALSE)}, not {text!r}.")
    try:
        return kind(text.strip())
    except ValueError:
        what = {int: "a whole number", float: "a number"}.get(kind, f"a {kind.__name__}")
        raise ValueError(f"{name} must be {what}, not {text!r}.") from None


def env_values(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The declared fields whose environment variable is set (and not empty), parsed to their types."""
    values = {}
    for f, kind in declared(cls):
        text = environ.get(f.metadata["env"] or "")
        if f.metadata["env"] and text:
            values[f.name] = parse_value(f.metadata["env"], text, kind)
            if f.metadata["choices"] and values[f.name] not in f.metadata["choices"]:
                choices = ", ".join(map(str, f.metadata["choices"]))
                raise ValueError(f"{f.metadata['env']} must be one of {choices}, not {text!r}.")
    return values


def parse_settings(
    cls: type,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
    known_only: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``cls``: the environment's values, overridden by the given flags.

    ``known_only``: unknown arguments are ignored (a launcher may add its own).
    """
    args = parser.parse_known_args(argv)[0] if known_only else parser.parse_args(argv)
    return {**env_values(cls, environ), **vars(args)}
