"""What one session costs Gradio itself, on the app as shipped: the figure the stated memory bound
(README "Limits and safety": sessions kept x (inputs + Gradio's own state)) rests on."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest
from gradio.state_holder import SessionState

from tests.app_support import FakePredictor
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.server_settings import GRADIO_SESSION_BYTES

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def session_bytes(demo, sessions: int = 20) -> float:
    """Bytes Python allocates per fresh Gradio session of ``demo`` (mean over ``sessions``)."""
    kept = [SessionState(demo)]  # the first builds Gradio's shared caches, not a session's own
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept += [SessionState(demo) for _ in range(sessions)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / sessions


def test_gradio_keeps_less_than_the_stated_figure_per_session():
    demo = build_demo(AppConfig(assets=ASSETS, base=str(ASSETS / "base")), predictor=FakePredictor())
    per_session = session_bytes(demo)
    # A floor too: the copy is real, so a measurement near zero means it measured nothing.
    assert 50 * 1024 < per_session < GRADIO_SESSION_BYTES, per_session
