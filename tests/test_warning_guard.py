"""The deprecation guard blames our call sites, and only ours, on both warning channels."""

from __future__ import annotations

import warnings

from transformers.utils import logging as hf_logging
from transformers.utils.deprecation import deprecate_kwarg

from tests.warning_guard import ROOT


@deprecate_kwarg("old_name", "99.0.0", new_name="new_name")
def renamed(new_name=None):
    return new_name


def caller_in(path: str):
    """A function ``call(f)`` whose code object claims to live at ``path`` (as if written there)."""
    namespace: dict = {}
    exec(compile("def call(f):\n    return f()\n", path, "exec"), namespace)
    return namespace["call"]


OURS = caller_in(str(ROOT / "vqa_demo" / "pretend.py"))
THEIRS = caller_in("/usr/lib/python3/site-packages/somelib/api.py")


def test_a_deprecated_kwarg_called_from_our_code_is_blamed_on_our_line(fail_on_our_deprecations):
    log = fail_on_our_deprecations
    OURS(lambda: renamed(old_name=1))
    THEIRS(lambda: renamed(old_name=2))
    offences, log.offences = list(log.offences), []  # this test's offences are deliberate
    assert len(offences) == 1
    assert offences[0].startswith(f"{ROOT / 'vqa_demo' / 'pretend.py'}:2: FutureWarning")
    assert "old_name" in offences[0]


def test_transformers_logger_deprecations_are_caught(fail_on_our_deprecations):
    log = fail_on_our_deprecations
    logger = hf_logging.get_logger("transformers.some_module")
    OURS(lambda: logger.warning_once("`thing` is deprecated, use `other`"))
    THEIRS(lambda: logger.warning_once("`stuff` is deprecated, use `other`"))
    OURS(lambda: logger.warning("an ordinary warning"))
    offences, log.offences = list(log.offences), []
    assert offences == [f"{ROOT / 'vqa_demo' / 'pretend.py'}:2: `thing` is deprecated, use `other`"]


def test_our_own_deprecation_warnings_are_caught(fail_on_our_deprecations):
    log = fail_on_our_deprecations
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        OURS(lambda: warnings.warn("old API", PendingDeprecationWarning, stacklevel=2))
    offences, log.offences = list(log.offences), []
    assert len(offences) == 1 and "PendingDeprecationWarning: old API" in offences[0]
