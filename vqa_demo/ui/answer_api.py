"""The app's ``/answer`` endpoint as a caller sees it: its parameter names and the arguments of a call.

The endpoint is ``(image, question, k, option_a, ..., option_h, use_<variant>, ...)``: ``k`` option
boxes are used, and one tick per variant says whether to run it. The Ask tab declares it with these
names (:mod:`vqa_demo.ui.tabs.ask`); the tests and the benchmarks build their calls with
:func:`answer_arguments` (by name, for ``gradio_client``) or :func:`answer_inputs` (in order, as the
queue and the callback receive them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from vqa_demo.config import MAX_OPTIONS, OPTION_LETTERS


def option_parameter(index: int) -> str:
    """``1`` -> ``"option_b"``: the parameter name of the option box at 0-based ``index``."""
    return f"option_{OPTION_LETTERS[index].lower()}"


def api_flag(variant: str) -> str:
    """``multi_class-last_token`` -> ``use_multi_class_last_token``: a variant's tick as an API parameter name."""
    return "use_" + re.sub(r"\W", "_", variant)


def option_boxes(options: Sequence[Any]) -> list[Any]:
    """The form's :data:`~vqa_demo.config.MAX_OPTIONS` option boxes: ``options`` (extra ones dropped), then empty."""
    shown = list(options)[:MAX_OPTIONS]
    return shown + [""] * (MAX_OPTIONS - len(shown))


def answer_arguments(
    image: Any, question: Any, options: Sequence[Any], k: Any = None, ticks: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments of one ``/answer`` call: ``k`` defaults to the number of options; ``ticks``
    maps variant names to their tick (variants left out keep the endpoint's default: ticked)."""
    arguments = {"image": image, "question": question, "k": len(options) if k is None else k}
    arguments.update({option_parameter(i): text for i, text in enumerate(option_boxes(options))})
    arguments.update({api_flag(name): tick for name, tick in (ticks or {}).items()})
    return arguments


def answer_inputs(
    image: Any, question: Any, options: Sequence[Any], ticks: Sequence[Any], k: Any = None
) -> list[Any]:
    """The same call in the endpoint's order: image, question, k, the option boxes, one tick per variant."""
    return [image, question, len(options) if k is None else k, *option_boxes(options), *ticks]
