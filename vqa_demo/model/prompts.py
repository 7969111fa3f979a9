"""The prompt formats of the three heads, and the user-text cleaning they rely on.

A prompt is returned in three parts (``head``, ``question``, ``tail``) so that the encoder can shorten
the question alone when the text budget is exceeded, keeping the options and the answer cue intact.

Formats (``style="default"``, after the background doc; K options, letters A-H):
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


def _option_list(options: list[str], lettered: bool, joiner: str) -> str:
    if lettered:
        return joiner.join(f"{OPTION_LETTERS[i]}) {opt}" for i, opt in enumerate(options))
    return joiner.join(options)


def build_rows(
    head: str, question: str, options: list[str], style: str = "default", answer_index: int | None = None
) -> list[PromptRow]:
    """Prompt rows for one example: 1 row for cond_gen and multi_class, K rows for swag.

    ``answer_index`` (0-based) sets the cond_gen suffix for training; classifiers take no suffix.
    """
    if len(options) > len(OPTION_LETTERS):
        raise ValueError(f"at most {len(OPTION_LETTERS)} options are supported, got {len(options)}")
    question = clean_text(question)
    options = [clean_option(o) for o in options]
    if style == "choose_from":
        lead, joiner, cue = "answer en ", " \t ", ""
        tail_intro, hyp_intro = " choose from: ", " hypothesis: "
    else:
        lead, joiner, cue = "", " | ", "\nAnswer:"
        tail_intro, hyp_intro = "\nOptions: ", "\nHypothesis: "
    if head == "swag":
        return [PromptRow(lead, question, hyp_intro + option) for option in options]
    tail = tail_intro + _option_list(options, lettered=head == "multi_class", joiner=joiner) + cue
    suffix = options[answer_index] if head == "cond_gen" and answer_index is not None else None
    return [PromptRow(lead, question, tail, suffix)]
