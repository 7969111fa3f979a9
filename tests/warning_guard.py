"""Fail a test when our own code calls an API that its library has deprecated.

A deprecation is blamed on the innermost stack frame outside the library that emitted it (and outside
torch's module-call plumbing and the standard library). If that frame is ours (``vqa_demo/``,
``training/``, ``benchmarks/``, ``app.py``), the test fails naming the call site. If it is another
library's (peft reading a transformers property, a gradio worker calling torch), nothing fails: the
notice is counted and listed in one line at the end of the session, so it is seen without blaming us.

Frames are classified by what they are, not only by where they sit: a file under ``sysconfig``'s
purelib/platlib or under any ``site-packages``/``dist-packages`` directory is a library's, even when the
virtual environment lives inside the checkout (``./.venv``, the most common layout).

This is stricter than pytest's ``error::FutureWarning:vqa_demo`` filters, which only look at the frame
the warning names: transformers' ``deprecate_kwarg`` points into its own ``can_return_tuple`` wrapper,
not at the caller. Two channels are watched: Python warnings (``DeprecationWarning``,
``PendingDeprecationWarning``, ``FutureWarning``) and transformers' logger, which reports some renames
(``out.past_key_values``) with ``warning_once``.
"""

from __future__ import annotations

import logging
import sys
import sysconfig
import warnings
from collections import Counter
from pathlib import Path

import pytest
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = ("vqa_demo", "training", "benchmarks", "app")
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Frames that only forward a call between the caller and the emitter: never the culprit.
PLUMBING = ("torch", "stdlib", "tests")
LIBRARY_MARKERS = ("site-packages", "dist-packages")
STDLIB = sysconfig.get_paths()["stdlib"]


def library_roots() -> tuple[str, ...]:
    """Where installed packages live for this interpreter (purelib and platlib, deduplicated)."""
    paths = sysconfig.get_paths()
    return tuple(dict.fromkeys(str(Path(paths[key]).resolve()) for key in ("purelib", "platlib")))


LIBRARY_ROOTS = library_roots()


def package_of(filename: str) -> str:
    """The top-level package a source file belongs to.

    ``.../site-packages/x/y.py`` -> ``x`` wherever that directory sits (also ``<repo>/.venv/...``);
    ``<repo>/vqa_demo/y.py`` -> ``vqa_demo``; the standard library -> ``stdlib``.
    """
    path = Path(filename)
    for marker in LIBRARY_MARKERS:
        if marker in path.parts:
            rest = path.parts[path.parts.index(marker) + 1 :]
            return rest[0].removesuffix(".py") if rest else marker
    for root in LIBRARY_ROOTS:
        if filename.startswith(root + "/"):
            return Path(filename[len(root) + 1 :]).parts[0].removesuffix(".py")
    if filename.startswith(STDLIB):
        return "stdlib"
    if filename.startswith(str(ROOT) + "/"):
        return path.relative_to(ROOT).parts[0].removesuffix(".py")
    return path.parts[-2] if len(path.parts) > 1 else path.stem


def is_ours(filename: str) -> bool:
    return package_of(filename) in OUR_PACKAGES and filename.startswith(str(ROOT) + "/")


def blame(skip: int = 2) -> tuple[str, str | None]:
    """``(package, site)`` of the frame that called into the emitting library.

    ``site`` is ``file:line`` when that frame is ours, else None (another library's doing, named by
    ``package``). The innermost non-stdlib frame is the emitter; a warning raised from a C function
    called directly by our line, or our own ``warn()``, has our frame innermost and is ours.
    """
    frame = sys._getframe(skip)
    emitter = None
    while frame is not None:
        filename = frame.f_code.co_filename
        package = package_of(filename)
        if emitter is None:
            if is_ours(filename):
                return package, f"{filename}:{frame.f_lineno}"
            if package not in ("stdlib", "tests"):  # warnings/logging machinery, this guard
                emitter = package
        elif package not in (emitter, *PLUMBING):
            return package, (f"{filename}:{frame.f_lineno}" if is_ours(filename) else None)
        frame = frame.f_back
    return emitter or "unknown", None


class DeprecationLog(logging.Handler):
    """Collects deprecation notices (from either channel): ours as offences, others' as a tally."""

    def __init__(self, elsewhere: Counter):
        super().__init__(logging.WARNING)
        self.offences: list[str] = []
        self.elsewhere = elsewhere

    def record(self, text: str) -> None:
        package, site = blame(skip=3)
        if site:
            self.offences.append(f"{site}: {text}")
        else:
            self.elsewhere[f"{package}: {text.splitlines()[0][:160]}"] += 1

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "deprecat" in message.lower():
            self.record(message)

    def on_warning(self, message: warnings.WarningMessage) -> None:
        if issubclass(message.category, DEPRECATIONS):
            self.record(f"{message.category.__name__}: {message.message}")


THIRD_PARTY_DEPRECATIONS: Counter = Counter()


def summary_line() -> str | None:
    """One line naming the deprecations that libraries triggered in each other this session."""
    if not THIRD_PARTY_DEPRECATIONS:
        return None
    kinds = "; ".join(f"{text} (x{n})" for text, n in THIRD_PARTY_DEPRECATIONS.most_common(5))
    more = len(THIRD_PARTY_DEPRECATIONS) - 5
    return (
        f"deprecations triggered by libraries, not by our code: {len(THIRD_PARTY_DEPRECATIONS)} kinds, "
        f"caller first: {kinds}" + (f"; and {more} more" if more > 0 else "")
    )


@pytest.fixture(autouse=True)
def fail_on_our_deprecations():
    """Autouse: watches both channels during the test and fails it if our code used a deprecated API."""
    log = DeprecationLog(THIRD_PARTY_DEPRECATIONS)
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
