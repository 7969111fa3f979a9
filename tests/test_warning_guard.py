"""The deprecation guard blames our call sites, and only ours, on both warning channels."""

from __future__ import annotations

import threading
import warnings
from collections import Counter

import pytest
from transformers.utils import logging as hf_logging
from transformers.utils.deprecation import deprecate_kwarg

from tests import warning_guard
from tests.warning_guard import ROOT, THIRD_PARTY_DEPRECATIONS, package_of


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


def emitter_in(path: str):
    """A deprecated function ``old()`` whose code claims to live at ``path`` (a library's file)."""
    namespace: dict = {"warnings": warnings}
    source = "def old():\n    warnings.warn('old() is deprecated', FutureWarning, stacklevel=2)\n"
    exec(compile(source, path, "exec"), namespace)
    return namespace["old"]


def library_chain(venv_root: str):
    """``(ours_direct, ours_through_peft)``: our code calling a transformers-like deprecated function
    directly, and through a peft-like frame, with both libraries installed under ``venv_root``."""
    site = f"{venv_root}/lib/python3.11/site-packages"
    old = emitter_in(f"{site}/transformers/modeling_utils.py")
    peft_namespace: dict = {"old": old}
    exec(compile("def read():\n    return old()\n", f"{site}/peft/peft_model.py", "exec"), peft_namespace)
    return (lambda: OURS(old)), (lambda: OURS(peft_namespace["read"]))


def guarded_offences(log, action) -> list[str]:
    """Runs ``action`` with warnings shown, returns (and clears) the offences it caused."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        action()
    offences, log.offences = list(log.offences), []
    return offences


@pytest.mark.parametrize("venv_root", [str(ROOT / ".venv"), "/opt/venvs/elsewhere"])
def test_a_venv_inside_the_checkout_is_attributed_like_one_outside(fail_on_our_deprecations, venv_root):
    log = fail_on_our_deprecations
    direct, through_peft = library_chain(venv_root)
    before = sum(THIRD_PARTY_DEPRECATIONS.values())
    assert guarded_offences(log, through_peft) == []
    assert sum(THIRD_PARTY_DEPRECATIONS.values()) == before + 1
    assert any(key.startswith("peft: FutureWarning") for key in THIRD_PARTY_DEPRECATIONS)
    offences = guarded_offences(log, direct)
    assert len(offences) == 1 and offences[0].startswith(f"{ROOT / 'vqa_demo' / 'pretend.py'}:2:")


def test_library_files_are_classified_by_what_they_are():
    assert package_of(str(ROOT / ".venv/lib/python3.11/site-packages/peft/x.py")) == "peft"
    assert package_of(str(ROOT / "env/lib/python3.11/dist-packages/torch/nn/m.py")) == "torch"
    assert package_of(str(ROOT / "vqa_demo/model/backbone.py")) == "vqa_demo"
    assert package_of(str(ROOT / "app.py")) == "app"
    assert package_of(warnings.__file__) == "stdlib"


@pytest.mark.parametrize("who, blamed", [("ours", 1), ("theirs", 0)])
def test_a_warning_in_a_worker_thread_is_attributed_to_its_caller(fail_on_our_deprecations, who, blamed):
    log = fail_on_our_deprecations
    caller = OURS if who == "ours" else THEIRS
    errors = []

    def work():
        try:
            caller(lambda: renamed(old_name=3))
        except Exception as error:  # surfaced below: a thread's exception would be lost
            errors.append(error)

    def in_thread():
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()

    offences = guarded_offences(log, in_thread)
    assert errors == []
    assert len(offences) == blamed


def test_the_session_summary_lists_what_libraries_triggered(monkeypatch):
    tally = Counter({"peft: FutureWarning: is_gradient_checkpointing is deprecated": 2})
    monkeypatch.setattr(warning_guard, "THIRD_PARTY_DEPRECATIONS", tally)
    line = warning_guard.summary_line()
    assert "\n" not in line and "1 kinds" in line and "is_gradient_checkpointing" in line and "(x2)" in line
    monkeypatch.setattr(warning_guard, "THIRD_PARTY_DEPRECATIONS", Counter())
    assert warning_guard.summary_line() is None
