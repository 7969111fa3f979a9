"""ZeroGPU Spaces: the model's GPU work runs inside ``@spaces.GPU`` functions, sized from the work.

On a ZeroGPU Space (the ``spaces`` package marks one with ``SPACES_ZERO_GPU`` in the environment) the
model loads at import and is moved to CUDA there (``app.py``), and every event that runs the model is
decorated: Answer, Explain's attribution and the Errors tab's re-runs (the live answer and its
attribution). Off ZeroGPU (CPU, a GPU Space, tests) nothing is decorated and nothing changes.

Durations (seconds; ZeroGPU counts them against a visitor's daily quota): an answer is one batched
pass per variant, given ZeroGPU's default of 60; an attribution is ``20 + 0.1 x steps x options``,
so integrated gradients at 128 steps on 8 options asks for 123 s. The 0.1 s per forward+backward pass
is an estimate for a PaliGemma 2 3B at 224 px on a ZeroGPU slice, not a measurement.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from vqa_demo.config import MAX_OPTIONS

ANSWER_SECONDS = 60
ATTRIBUTION_BASE_SECONDS = 20
SECONDS_PER_PASS = 0.1

Decorator = Callable[[Callable, Any], Callable]


def on_zerogpu(environ: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space (``SPACES_ZERO_GPU`` set to true/1 by the platform)."""
    value = (os.environ if environ is None else environ).get("SPACES_ZERO_GPU", "")
    return value.strip().lower() in ("1", "true", "yes")


def attribution_seconds(steps: float, num_options: int) -> int:
    """GPU seconds an attribution of ``steps`` steps over ``num_options`` options may take."""
    return ATTRIBUTION_BASE_SECONDS + math.ceil(SECONDS_PER_PASS * max(1, int(steps)) * num_options)


def explain_duration(result: Any, variant: Any, method_label: Any, steps: float, *rest: Any) -> int:
    """``duration`` for Explain's attribution (same arguments as the event; an ``AskResult``: its options)."""
    options = getattr(result, "options", None) or [None] * MAX_OPTIONS
    return attribution_seconds(steps, len(options))


def rerun_duration(run: Any, variant: Any, method_label: Any, steps: float, *rest: Any) -> int:
    """``duration`` for the Errors tab's attribution re-run (a ``LiveRun``: its options)."""
    options = getattr(run, "options", None) or [None] * MAX_OPTIONS
    return attribution_seconds(steps, len(options))


def pair_duration(
    run: Any, first: Any, second: Any, reading: Any, method_label: Any, steps: float, *rest: Any
) -> int:
    """``duration`` for the Errors tab's two-variant comparison: two attributions at most."""
    return 2 * rerun_duration(run, first, method_label, steps)


def spaces_gpu(function: Callable, duration: Any) -> Callable:
    """``spaces.GPU(duration=duration)(function)``: the real decorator, imported only on ZeroGPU."""
    import spaces

    return spaces.GPU(duration=duration)(function)


def decorate_model_events(ask: Any, explain: Any, errors: Any, decorator: Decorator) -> None:
    """Replace the functions the model events call with ``decorator(function, duration)`` (before wiring)."""
    ask.answer = decorator(ask.answer, ANSWER_SECONDS)
    explain.attribute = decorator(explain.attribute, explain_duration)
    errors.rerun.live = decorator(errors.rerun.live, ANSWER_SECONDS)
    errors.whatif.score = decorator(errors.whatif.score, ANSWER_SECONDS)
    errors.pair.show = decorator(errors.pair.show, pair_duration)
    errors.rerun.attribute = decorator(errors.rerun.attribute, rerun_duration)
