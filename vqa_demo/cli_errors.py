"""User mistakes at the command line: one line ``error: <problem>; <fix>`` and exit code 2, no traceback.

:func:`run_cli` runs a CLI's ``main`` and turns the errors a user can cause (bad data, bad checkpoints,
bad settings, a hub id that is gated, offline or mistyped) into that line; anything else is a bug and
keeps its traceback. :class:`CliParser` gives argparse's own errors the same one-line form, and
:class:`HelpFormatter` shows every flag's default next to its choices in ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

USAGE_EXIT = 2


class UsageError(ValueError):
    """A setting that cannot work (e.g. 4-bit quantization on a CPU); the message says what to change."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types a user's input causes. Imported when a command runs, not at import: the
    checkpoint checks pull in torch, and ``--help`` should answer at once."""
    from vqa_demo.checkpoint_checks import CheckpointError
    from vqa_demo.config import ConfigError
    from vqa_demo.data.rows import DataError

    return DataError, CheckpointError, ConfigError, UsageError


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_EXIT)


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: argument --pooling: invalid choice ...; see --help``."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message}; see {self.prog} --help")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and ``(default: ...)`` after every flag's help."""


def run_cli(main: Callable[..., Any], *args: Any, base: Callable[[], str | None] | str | None = None) -> Any:
    """``main(*args)``, with user errors as one line and exit code 2 (see the module docstring).

    ``base`` names the base model (or a callable that works it out) for a hub error's sentence.
    """
    from vqa_demo.hub_errors import hub_kind, hub_problem

    try:
        return main(*args)
    except user_errors() as error:
        fail(str(error))
    except OSError as error:
        if hub_kind(error) is None:
            raise
        name = base() if callable(base) else base
        fail(hub_problem(error, name or "(the run's base)", "--base", "model"))


def require_cuda_for(quantization: str | None) -> None:
    """Refuse ``--quantization`` where there is no CUDA GPU (bitsandbytes runs on CUDA only)."""
    import torch

    if quantization and not torch.cuda.is_available():
        raise UsageError(
            f"--quantization {quantization} needs a CUDA GPU (bitsandbytes) and this machine has none; "
            "drop --quantization to run in float32 on the CPU"
        )
