"""Counterfactual edits in place: change the selected Errors example's question or options and see
every variant's scores move, beside what the same variants gave the example as it is.

The edit is cleaned and checked by the Ask form's own rules (:func:`~vqa_demo.inputs.text.prepare_question`)
and scored by the same predictor call on the same image as the example's live run
(:class:`~vqa_demo.ui.tabs.error_explain.LiveRun`), so "before" and "after" differ only by the edit.
Options are typed one per line; blank lines are ignored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from vqa_demo.config import OPTION_LETTERS
from vqa_demo.inputs.errors import InputError
from vqa_demo.inputs.text import prepare_question
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.status import status_error, status_ok
from vqa_demo.ui.tabs.error_explain import LiveRun

if TYPE_CHECKING:
    from vqa_demo.predictor import VariantPrediction

log = logging.getLogger(__name__)

FIRST_COLUMNS = ["variant", "chose (as stored)", "chooses (edited)"]


def options_of(text: str | None) -> list[str]:
    """The options typed one per line (blank lines dropped)."""
    return [line for line in (text or "").splitlines() if line.strip()]


def share_cell(after: float, before: float | None) -> str:
    """``"40.0% (was 62.5%)"``, or ``"40.0%"`` where the position had no option before."""
    return f"{after:.1%}" if before is None else f"{after:.1%} (was {before:.1%})"


def edit_table(run: LiveRun, edited: list[str], after: dict[str, VariantPrediction]) -> dict[str, Any]:
    """Rows of every variant: its choice on the example and on the edit, then each edited option's
    score share, with the share the option at that position had before. Columns name the options by
    letter; the gold letter is marked ✓ where the edit keeps the example's number of options."""
    same_count = len(edited) == len(run.options)
    headers = [*FIRST_COLUMNS]
    for position, text in enumerate(edited):
        mark = " ✓" if same_count and position == run.gold else ""
        headers.append(f"{OPTION_LETTERS[position]}{mark}: {text}")
    rows = []
    for name, prediction in after.items():
        before = run.predictions[name]
        letter_before = OPTION_LETTERS[before.choice]
        row = [name, letter_before, OPTION_LETTERS[prediction.choice]]
        for position, share in enumerate(prediction.probabilities):
            was = before.probabilities[position] if position < len(before.probabilities) else None
            row.append(share_cell(float(share), None if was is None else float(was)))
        rows.append(row)
    return {"headers": headers, "data": rows}


def changes(run: LiveRun, question: str, edited: list[str]) -> str:
    """What the edit changed, in words: ``"the question and option B"``."""
    parts = []
    if question != run.question:
        parts.append("the question")
    changed = [
        OPTION_LETTERS[p] for p, text in enumerate(edited) if p >= len(run.options) or text != run.options[p]
    ]
    if len(edited) != len(run.options):
        parts.append(f"the options ({len(run.options)} → {len(edited)})")
    elif changed:
        parts.append(("option " if len(changed) == 1 else "options ") + ", ".join(changed))
    return " and ".join(parts)


def answer_changed(run: LiveRun, name: str, edited: list[str], after: VariantPrediction) -> bool:
    """Whether ``name`` answers the edit differently: another position (same number of options), or
    another option text (a different number)."""
    before = run.predictions[name].choice
    if len(edited) == len(run.options):
        return after.choice != before
    return edited[after.choice] != run.options[before]


def summary(run: LiveRun, question: str, edited: list[str], after: dict[str, VariantPrediction]) -> str:
    """One status sentence: what was edited and which variants changed their choice."""
    what = changes(run, question, edited)
    if not what:
        return f"Nothing was edited: these are the example's own scores from {len(after)} variants."
    head = f"Scored the edit ({what}) with {len(after)} variants."
    same_count = len(edited) == len(run.options)
    moved = []
    for name, prediction in after.items():
        if not answer_changed(run, name, edited, prediction):
            continue
        before, after_choice = run.predictions[name].choice, prediction.choice
        if same_count:  # a letter and its text: a head that follows an option's text shows it
            moved.append(
                f"{name} ({OPTION_LETTERS[before]} “{run.options[before]}” → "
                f"{OPTION_LETTERS[after_choice]} “{edited[after_choice]}”)"
            )
        else:  # letters shift with the count: the texts alone
            moved.append(f"{name} (“{run.options[before]}” → “{edited[after_choice]}”)")
    if not moved:
        return f"{head} Every variant keeps its choice; the shares below show how far they moved."
    return f"{head} {len(moved)} changed their choice: {', '.join(moved)}."


class WhatIfCallbacks:
    """Event handlers of the Errors tab's edit box; plain data or ``gr.update``."""

    def __init__(self, holder: PredictorHolder, by_index: dict[Any, dict]):
        self.holder = holder
        self.by_index = by_index

    def fill(self, sample: dict | None) -> tuple:
        """The selected example's question and options (one per line), and an empty result."""
        record = self.by_index.get(sample.get("index")) if sample else None
        if record is None:
            return "", "", "", None
        return record["question"], "\n".join(record["options"]), "", None

    def score(self, run: LiveRun | None, question: str, options_text: str) -> tuple:
        """``(status, table)`` for the edited question and options of the example ``run`` answered."""
        if run is None:
            return status_error(
                "Select an example first: its answer now is what the edit is compared with."
            ), None
        try:
            prepared = prepare_question(question, options_of(options_text))
        except InputError as error:
            return status_error(str(error)), None
        names = [
            n for n in run.predictions if n in self.holder.names
            and self.holder.info(n).incompatibility(len(prepared.options)) is None
        ]  # fmt: skip
        if not names:
            return status_error(
                f"None of the variants that answered this example takes {len(prepared.options)} options."
            ), None
        try:
            after = self.holder.get().predict(run.image, prepared.question, prepared.options, names)
        except ModelUnavailable as error:
            return status_error(str(error)), None
        except Exception as error:  # report, do not crash the session
            log.exception("scoring an edit failed")
            return status_error(f"Scoring the edit failed ({type(error).__name__}: {error})."), None
        text = summary(run, prepared.question, prepared.options, after)
        return status_ok(text, prepared.notes), edit_table(run, prepared.options, after)
