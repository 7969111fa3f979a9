"""The prompt formats' building blocks, and the user-text cleaning they rely on.

Which rows a head uses is its strategy's choice (:mod:`vqa_demo.model.strategies`, ``build_rows``).

A prompt is returned in three parts (``head``, ``question``, ``tail``) so that the encoder can shorten
the question alone when the text budget is exceeded, keeping the options and the answer cue intact.

Formats (``style="default"``, after the reference work; K options, letters A-H):
- cond_gen:    ``{question}\\nOptions: {o1} | {o2} | ...\\nAnswer:``  suffix: the gold option text
- multi_class: ``{question}\\nOptions: A) {o1} | B) {o2} | ...\\nAnswer:``
- swag:        K rows ``{question}\\nHypothesis: {o_k}``
``style="choose_from"`` is PaliGemma's own MC transfer style: ``answer en {question} choose from: {o1} \\t {o2}``
(letters for multi_class, ``hypothesis:`` rows for swag).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vqa_demo.config import OPTION_LETTERS

_WHITESPACE = re.compile(r"\s+")
# The option joiner's bar (and its full-width twin) inside an option would make one option read as two.
_OPTION_BARS = str.maketrans({"|": "/", "\uff5c": "/"})


@dataclass(frozen=True)
class PromptRow:
    """One model input row: prefix = head + question + tail; suffix is the training target (or None)."""

    head: str
    question: str
    tail: str
    suffix: str | None = None

    @property
    def prefix(self) -> str:
        return self.head + self.question + self.tail


def clean_text(text: str) -> str:
    """Collapse whitespace (newlines included) so user text cannot fake the prompt's own line structure.

    Special-token strings such as ``<image>`` are left as text: the encoder tokenizes user text with
    ``split_special_tokens=True``, so they can never become special tokens.
    """
    return _WHITESPACE.sub(" ", str(text)).strip()


def clean_option(text: str) -> str:
    """:func:`clean_text`, and ``|`` becomes ``/``: no option can contain the ``" | "`` joiner.

    Line breaks and tabs are already spaces after :func:`clean_text`, so an option cannot start a
    new ``Answer:`` or ``Hypothesis:`` line or fake ``choose_from``'s tab separator either.
    """
    return clean_text(text).translate(_OPTION_BARS)


@dataclass(frozen=True)
class PromptFormat:
    """The fixed words around a prompt's question and options in one prompt style."""

    lead: str
    joiner: str
    cue: str
    options_intro: str
    hypothesis_intro: str


FORMATS = {
    "default": PromptFormat("", " | ", "\nAnswer:", "\nOptions: ", "\nHypothesis: "),
    "choose_from": PromptFormat("answer en ", " \t ", "", " choose from: ", " hypothesis: "),
}


def prompt_format(style: str) -> PromptFormat:
    """The words of ``style``; any other style reads as ``"default"``."""
    return FORMATS.get(style, FORMATS["default"])


def cleaned(question: str, options: list[str]) -> tuple[str, list[str]]:
    """The question and options as every prompt shows them; at most ``len(OPTION_LETTERS)`` options."""
    if len(options) > len(OPTION_LETTERS):
        raise ValueError(f"at most {len(OPTION_LETTERS)} options are supported, got {len(options)}")
    return clean_text(question), [clean_option(o) for o in options]


def options_row(
    question: str, options: list[str], style: str, lettered: bool, suffix: str | None = None
) -> PromptRow:
    """One row showing the question and all options (lettered ``A)`` ... or bare), then the cue."""
    fmt = prompt_format(style)
    if lettered:
        listed = fmt.joiner.join(f"{OPTION_LETTERS[i]}) {opt}" for i, opt in enumerate(options))
    else:
        listed = fmt.joiner.join(options)
    return PromptRow(fmt.lead, question, fmt.options_intro + listed + fmt.cue, suffix)


def hypothesis_rows(question: str, options: list[str], style: str) -> list[PromptRow]:
    """One row per option: the question, then the option as a hypothesis."""
    fmt = prompt_format(style)
    return [PromptRow(fmt.lead, question, fmt.hypothesis_intro + option) for option in options]
