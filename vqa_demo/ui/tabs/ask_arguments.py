"""The ``/answer`` endpoint's arguments: readable API parameter names, and the checks of ``k`` and
the variant ticks that the form cannot get wrong but an API caller can.

``(image, question, k, option_a, ..., option_h, use_<variant>, ...)``: ``k`` is how many option rows
are used; gradio_client callers see these names and may leave out the unused rows (empty) and the
ticks (all variants that fit ``k``). A wrong type is refused with one sentence and a stable category.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.ui.answer_api import api_flag, option_parameter

DEFAULT_OPTIONS = 4  # option rows the form shows first
INVALID_K, INVALID_TICK = "invalid_k", "invalid_tick"
# k as text: ASCII only (str.isdigit accepts "²" and "①", which int() then refuses).
MAX_K_DIGITS, MAX_K_CHARS = 3, 16
_K_TEXT = re.compile(rf"[ \t]*[+-]?[0-9]{{1,{MAX_K_DIGITS}}}[ \t]*", re.ASCII)


class BadArgument(ValueError):
    """An API argument of the wrong type (``k``, a variant tick): one sentence and a stable category."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category
        self.message = message


def requested_count(count: Any) -> int:
    """``k`` as given (not clamped; a blank one means the default); raises ``invalid_k`` unless whole.

    One rule for text: an optional sign and 1 to :data:`MAX_K_DIGITS` ASCII digits, surrounded by at
    most some ASCII spaces (``"²"``, ``"①"``, ``"+-3"`` or 5 000 digits are refused, not passed to
    ``int``). Numbers must be whole and finite; booleans are refused.
    """
    if count is None or count == "":
        return DEFAULT_OPTIONS
    value = count
    if isinstance(value, str) and len(value) <= MAX_K_CHARS and _K_TEXT.fullmatch(value):
        value = int(value.strip(" \t"))
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadArgument(
            INVALID_K,
            f"k must be a whole number of options from {MIN_OPTIONS} to {MAX_OPTIONS}, not {str(count)[:40]!r}.",
        )
    return value


def requested_variants(names: list[str], ticks: list[Any]) -> list[str]:
    """The ``names`` whose tick is true; a tick must be a boolean (null counts as unticked)."""
    chosen = []
    for name, tick in zip(names, ticks):
        if tick is True:
            chosen.append(name)
        elif tick is not None and tick is not False:
            raise BadArgument(
                INVALID_TICK,
                f"{api_flag(name)} must be true or false (a JSON boolean), not {str(tick)[:40]!r}.",
            )
    return chosen


def answer_docstring(variants: list[str]) -> str:
    """The ``/answer`` endpoint's docstring in Google style: Gradio's API page and its MCP tool read
    the description, each parameter's line under ``Args:`` and the ``Returns:`` lines from it."""
    ticks = [
        f"    {api_flag(name)}: run the {name} variant (true or false; default true)." for name in variants
    ]
    options = [
        f"    {option_parameter(i)}: the text of option {i + 1} (empty when k is smaller)."
        for i in range(MAX_OPTIONS)
    ]
    return "\n".join(
        [
            "Answer a multiple-choice question about an image with the trained variants.",
            "",
            "Each ticked variant scores every option and chooses one; the scores come back as JSON.",
            "",
            "Args:",
            # Gradio reads one line per parameter.
            "    image: the image (PNG, JPEG, WebP...), a file uploaded to this app or one of its examples; an "
            "MCP client gives an http(s) URL for Gradio to fetch, or the path upload_file_to_gradio returns.",
            "    question: the question about the image.",
            f"    k: how many of the options below are used, a whole number from {MIN_OPTIONS} to {MAX_OPTIONS}.",
            *options,
            *ticks,
            "",
            "Returns:",
            "    status: one line saying what was answered or why the input was refused.",
            "    table: each variant's choice and its probability.",
            "    chart: the per-option probabilities of each variant.",
            "    cond_gen: COND_GEN's generated text and its option scores (Markdown).",
            '    scores: per-variant choices and scores as JSON, or {"error": {"category", "message"}}.',
        ]
    )


def named_endpoint(answer: Callable, variants: list[str]) -> Callable:
    """``answer(image, question, k, *options, *ticks)`` as a typed function under the API names above,
    documented by :func:`answer_docstring`."""

    def endpoint(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return answer(*bound.args)

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [
        inspect.Parameter("image", positional, annotation=str),
        inspect.Parameter("question", positional, annotation=str),
        inspect.Parameter("k", positional, default=DEFAULT_OPTIONS, annotation=int),
        *[
            inspect.Parameter(option_parameter(i), positional, default="", annotation=str)
            for i in range(MAX_OPTIONS)
        ],
        *[inspect.Parameter(api_flag(name), positional, default=True, annotation=bool) for name in variants],
    ]
    signature = inspect.Signature(parameters, return_annotation=tuple)
    endpoint.__signature__ = signature
    endpoint.__doc__ = answer_docstring(variants)
    endpoint.__name__ = endpoint.__qualname__ = "answer"
    return endpoint


def pass_through(payload: Any) -> Any:
    """A preprocess that hands the client's value over unchanged, for the callback to validate.

    ``gr.Number``'s own preprocess rounds the value and fails with a bare "Error" on a string, NaN or
    infinity; :func:`requested_count` says what is wrong instead.
    """
    return payload
