"""Fail a test when our own code calls an API that its library has deprecated.

A deprecation is blamed on the first stack frame outside the library that emitted it (and outside
torch's module-call plumbing). If that frame is in ``vqa_demo/``, ``training/``, ``benchmarks/`` or
``app.py``, the test fails naming the call site. This is stricter than pytest's
``error::FutureWarning:vqa_demo`` filters, which only look at the frame the warning names: transformers'
``deprecate_kwarg`` points into its own ``can_return_tuple`` wrapper, not at the caller. Two channels
are watched: Python warnings (``DeprecationWarning``, ``PendingDeprecationWarning``, ``FutureWarning``)
and transformers' logger, which reports some renames (``out.past_key_values``) with ``warning_once``.
"""

from __future__ import annotations

import logging
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parent.parent
OURS = tuple(str(ROOT / name) for name in ("vqa_demo", "training", "benchmarks", "app.py"))
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Frames that only forward a call: never the culprit, whichever library emitted the warning.
PLUMBING = ("torch", "stdlib", "tests")
STDLIB = sysconfig.get_paths()["stdlib"]


def package_of(filename: str) -> str:
    """The top-level package a source file belongs to (``site-packages/x/y.py`` -> ``x``)."""
    path = Path(filename)
    if str(path).startswith(str(ROOT)):
        return path.relative_to(ROOT).parts[0].removesuffix(".py")
    for marker in ("site-packages", "dist-packages"):
        if marker in path.parts:
            return path.parts[path.parts.index(marker) + 1].removesuffix(".py")
    if str(path).startswith(STDLIB):
        return "stdlib"
    return path.parts[-2] if len(path.parts) > 1 else path.stem


def our_call_site(skip: int = 2) -> str | None:
    """``file:line`` of our frame that called into the emitting library, or None if a library did."""
    frame = sys._getframe(skip)
    emitter = None
    while frame is not None:
        filename = frame.f_code.co_filename
        package = package_of(filename)
        if emitter is None and filename.startswith(OURS):
            # Our frame is the innermost Python one: a C-level warning (a torch op) or our own warn().
            return f"{filename}:{frame.f_lineno}"
        if emitter is None and package not in PLUMBING:
            emitter = package
        elif emitter is not None and package not in (emitter, *PLUMBING):
            return f"{filename}:{frame.f_lineno}" if filename.startswith(OURS) else None
        frame = frame.f_back
    return None


class DeprecationLog(logging.Handler):
    """Collects deprecation notices (from either channel) whose culprit is our code."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.offences: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "deprecat" in message.lower() and (site := our_call_site()):
            self.offences.append(f"{site}: {message}")

    def on_warning(self, message: warnings.WarningMessage) -> None:
        if issubclass(message.category, DEPRECATIONS) and (site := our_call_site()):
            self.offences.append(f"{site}: {message.category.__name__}: {message.message}")


@pytest.fixture(autouse=True)
def fail_on_our_deprecations():
    """Autouse: watches both channels during the test and fails it if our code used a deprecated API."""
    log = DeprecationLog()
    hf_logger = hf_logging.get_logger("transformers")
    hf_logger.addHandler(log)
    hf_logging.warning_once.cache_clear()  # "once" per test, so every test can see the notice
    # pytest records warnings through warnings._showwarnmsg_impl; ours sees them first, stack intact.
    recorder = warnings._showwarnmsg_impl

    def show(message):
        log.on_warning(message)
        recorder(message)

    warnings._showwarnmsg_impl = show
    try:
        yield log
    finally:
        warnings._showwarnmsg_impl = recorder
        hf_logger.removeHandler(log)
    if log.offences:
        pytest.fail("our code calls deprecated APIs:\n" + "\n".join(dict.fromkeys(log.offences)))
