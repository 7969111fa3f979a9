"""The answer a session keeps: what the Ask tab's last answer leaves for the Explain section, and
the shape the Errors tab gives a live re-run so that the same explanation panels draw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vqa_demo.ui.session_memory import KeptImage

if TYPE_CHECKING:
    from vqa_demo.predictor import VariantPrediction


@dataclass
class AskResult:
    """The last answered question, kept in the session for the Explain section.

    ``image`` holds bounded copies only (see :mod:`vqa_demo.ui.session_memory`), never the upload.
    """

    image: KeptImage
    question: str
    options: list[str]
    predictions: dict[str, VariantPrediction]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def image_gone(result: AskResult) -> str | None:
    """Why ``result``'s image can no longer be explained (None while its copies are kept)."""
    if result.image.available:
        return None
    return "This answer's image is no longer kept (answers are kept for a limited time): answer again."


def forget_answer(result: AskResult | None) -> None:
    """``gr.State``'s delete callback: the session's answer expired, drop its image copies now.

    A module-level function on purpose: Gradio deep-copies the app config, delete callbacks included,
    on every page load, and a bound method would be copied with everything its object reaches.
    """
    if result is not None:
        result.image.release()
