"""ZeroGPU: the events that run the model call ``spaces.GPU``-decorated functions with durations sized
from the work (a recording stand-in for ``spaces.GPU``; the app, events and callbacks are real)."""

from __future__ import annotations

import functools

from tests.app_support import FakePredictor
from vqa_demo.config import MAX_OPTIONS
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.zerogpu import (
    ANSWER_SECONDS,
    attribution_seconds,
    explain_duration,
    on_zerogpu,
    pair_duration,
    rerun_duration,
)


class RecordingGPU:
    """Stands in for ``spaces.GPU(duration=...)``: records what it decorated and every call."""

    def __init__(self):
        self.decorated: dict[str, object] = {}
        self.wrappers: dict[str, object] = {}
        self.calls: list[str] = []

    def __call__(self, function, duration):
        name = f"{type(function.__self__).__name__}.{function.__name__}"

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            self.calls.append(name)
            return function(*args, **kwargs)

        self.decorated[name], self.wrappers[name] = duration, wrapper
        return wrapper


def test_model_events_call_the_decorated_functions(app_assets):
    gpu = RecordingGPU()
    holder = PredictorHolder(predictor=FakePredictor())
    demo = build_demo(app_assets.config, holder=holder, gpu_decorator=gpu)
    assert gpu.decorated == {
        "AskCallbacks.answer": ANSWER_SECONDS,
        "ExplainCallbacks.attribute": explain_duration,
        "LiveErrorCallbacks.live": ANSWER_SECONDS,
        "LiveErrorCallbacks.attribute": rerun_duration,
        "WhatIfCallbacks.score": ANSWER_SECONDS,
        "PairCallbacks.show": pair_duration,
    }
    event_functions = [d.fn for d in demo.fns.values()]
    for name in gpu.decorated:
        if name == "AskCallbacks.answer":
            continue  # called below through its API name
        assert any(fn is gpu.wrappers[name] for fn in event_functions), name
    (answer,) = [d.fn for d in demo.fns.values() if d.api_name == "answer"]
    answer(
        None, "What colour?", 2, *(["red", "blue"] + [""] * (MAX_OPTIONS - 2)), *([True] * len(holder.names))
    )
    assert gpu.calls == ["AskCallbacks.answer"]


def test_off_zerogpu_nothing_is_decorated(app_assets, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not on_zerogpu() and on_zerogpu({"SPACES_ZERO_GPU": "true"})
    assert not on_zerogpu({"SPACES_ZERO_GPU": "false"})
    demo = build_demo(app_assets.config, holder=PredictorHolder(predictor=FakePredictor()))
    names = {getattr(d.fn, "__qualname__", "") for d in demo.fns.values()}
    assert "ExplainCallbacks.attribute" in names and "LiveErrorCallbacks.attribute" in names
    assert (
        AppConfig.from_env({}).device == "auto"
        and AppConfig.from_env({"SPACES_ZERO_GPU": "1"}).device == "cuda"
    )


def test_durations_fit_integrated_gradients_at_128_steps_on_8_options():
    class Result:
        options = ["a"] * 8

    assert explain_duration(
        Result(), "swag-attentive", "Integrated gradients", 128, 0.5
    ) == attribution_seconds(128, 8)
    assert pair_duration(
        Result(), "a", "b", "Attribution", "Integrated gradients", 128, 0.5, "grid"
    ) == 2 * attribution_seconds(128, 8)
    assert attribution_seconds(128, 8) == 20 + 103  # 0.1 s per pass x 1024 passes, plus start-up
    assert rerun_duration(None, "cond_gen", "x", 16, 0.5) == attribution_seconds(16, MAX_OPTIONS)
    assert attribution_seconds(16, 2) < attribution_seconds(128, 8)
