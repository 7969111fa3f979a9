"""The Errors tab: validation examples the selected variants got wrong, one row per example.

Rows come from the evaluation's ``predictions.jsonl`` (see :mod:`vqa_demo.ui.tabs.error_data`); a table
with thumbnails, a gallery of the most confident mistakes and a confusion matrix of gold against
chosen position show the same filtered set. Selecting an example shows the stored answers at once
and then answers it live, once, to put the gold option's explanation next to the chosen one's
(:mod:`vqa_demo.ui.tabs.error_live`). *Open in Ask* copies the example into the Ask form.
"""

from __future__ import annotations

import base64
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from vqa_demo.config import MAX_OPTIONS
from vqa_demo.evaluation.chance import is_chance_level
from vqa_demo.paths import inside
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.plots import confusion_figure, empty_figure, probabilities_figure
from vqa_demo.ui.status import status_error, status_ok
from vqa_demo.ui.tabs.error_data import (
    ALL_FAMILIES,
    ANY_POSITION,
    MISSED_BY_ALL,
    MISSED_BY_ANY,
    ErrorFilter,
    by_confidence,
    confusion_counts,
    default_variants,
    error_examples,
    family_of,
    labelled,
    letter,
    mean_chance,
    misses_text,
    option_text,
    variant_accuracy,
    variant_names,
    write_csv,
)
from vqa_demo.ui.tabs.error_links import link_of
from vqa_demo.ui.tabs.error_live import LiveErrorCallbacks
from vqa_demo.ui.tabs.error_pair import PairCallbacks
from vqa_demo.ui.tabs.error_whatif import WhatIfCallbacks

log = logging.getLogger(__name__)

TABLE_COLUMNS = [
    "image",
    "#",
    "family",
    "question",
    "gold",
    "missed by (choice, score share)",
    "selected agree",
]
TABLE_TYPES = ["markdown", "number", "str", "str", "str", "str", "str"]
GALLERY_SIZE = 60  # the most confident mistakes; the table holds them all
THUMBNAIL_SIDE = 56


def missed_by_words(by_all: bool, selected: int) -> str:
    """ "all 3 selected variants", "at least one of the 3 selected variants", "the selected variant"."""
    if selected == 1:
        return "the selected variant"
    if by_all:
        return f"{'both' if selected == 2 else f'all {selected}'} selected variants"
    return f"at least one of the {selected} selected variants"


class ErrorBrowser:
    """Event handlers of the Errors tab; every return value is plain data or ``gr.update``."""

    def __init__(self, holder: PredictorHolder, assets: AppAssets, export_dir: Path | None = None):
        self.holder = holder
        self.assets = assets
        self.records = labelled(assets.records)
        self.by_index = {r.get("index"): r for r in self.records}
        self.export_dir = export_dir or Path(tempfile.mkdtemp(prefix="vqa-errors-"))
        self.accuracy = variant_accuracy(self.records)
        self.chance = mean_chance(self.records)
        self.thumbnails: dict[Any, str] = {}
        self.rerun = LiveErrorCallbacks(holder, assets, self.by_index)
        self.whatif = WhatIfCallbacks(holder, self.by_index)
        self.pair = PairCallbacks(holder)

    # -- filter choices ---------------------------------------------------------------------------
    @property
    def variant_choices(self) -> list[tuple[str, str]]:
        """``(label, name)`` per variant; the label gives the accuracy and marks chance level."""
        choices = []
        for name in variant_names(self.records):
            acc = self.accuracy.get(name)
            label = name
            if acc is not None:
                label += f" · {acc['accuracy']:.0%}"
                if self.chance is not None and is_chance_level(acc, self.chance):
                    label += " · chance level"
            choices.append((label, name))
        return choices

    @property
    def default_variants(self) -> list[str]:
        return default_variants(self.records)

    @property
    def family_choices(self) -> list[str]:
        return [ALL_FAMILIES, *sorted({family_of(r) for r in self.records} - {""})]

    @property
    def position_choices(self) -> list[str]:
        k = max((len(r.get("options") or []) for r in self.records), default=4)
        return [ANY_POSITION, *[letter(i) for i in range(k)]]

    # -- filtering --------------------------------------------------------------------------------
    def initial(self) -> tuple:
        """:meth:`filter`'s outputs for the filters' starting values (sent when the tab is first shown)."""
        return self.filter(self.default_variants, ALL_FAMILIES, ANY_POSITION, 0.0, 1.0, False, MISSED_BY_ANY)

    def filter(self, variants, family, position, low, high, disagree_only, missed_by, link=None) -> tuple:
        """(table, gallery, rows, gallery rows, caption, CSV download, confusion figure) for the filters;
        ``link`` (a :class:`~vqa_demo.ui.tabs.error_links.Link`'s state) keeps only its examples."""
        selected = [n for n in variant_names(self.records) if n in (variants or [])]
        chosen = ErrorFilter(
            tuple(selected), family, position, (float(low), float(high)), bool(disagree_only), missed_by
        )
        rows = error_examples(self.records, chosen)
        linked = link_of(link)
        if linked is not None:
            rows = [r for r in rows if r["#"] in linked.indices]
        table = pd.DataFrame(
            [
                [self.thumbnail(r), r["#"], r["family"], r["question"], r["gold"], misses_text(r)]
                + ["no" if r["disagree"] else "yes"]
                for r in rows
            ],
            columns=TABLE_COLUMNS,
        )
        ranked = by_confidence(rows)[:GALLERY_SIZE]
        gallery = [(self.image_path(r["file_name"]), self.gallery_caption(r)) for r in ranked]
        gallery = [(path, caption) for path, caption in gallery if path]
        mispredictions = sum(len(r["misses"]) for r in rows)
        caption = (
            f"**{len(rows)}** of {len(self.records)} validation examples missed by "
            f"{missed_by_words(missed_by == MISSED_BY_ALL, len(selected))} "
            f"({mispredictions} wrong answers)."
            if selected
            else "Tick at least one variant to see its mistakes."
        )
        if linked is not None:
            examples = "example" if len(rows) == 1 else "examples"
            caption = f"**{len(rows)}** linked {examples}: {linked.label} ({mispredictions} wrong answers)."
        download = gr.update(value=str(write_csv(rows, self.export_dir)), interactive=bool(rows))
        counts = confusion_counts(self.records, selected, family)
        confusion = (
            confusion_figure(counts, [letter(i) for i in range(len(counts))])
            if selected and counts.size
            else empty_figure("Tick at least one variant")
        )
        return table, gallery, rows, [r["#"] for r in ranked], caption, download, confusion

    @staticmethod
    def gallery_caption(row: dict[str, Any]) -> str:
        worst = max(row["misses"], key=lambda m: m["confidence"])
        return f"#{row['#']} gold {row['gold']} · {worst['variant']} chose {worst['predicted']} ({worst['confidence']:.0%})"

    def image_path(self, file_name: str | None) -> str | None:
        path = inside(Path(file_name or ""), self.assets.config.validation_dir) if file_name else None
        return str(path) if path is not None and path.is_file() else None

    def thumbnail(self, row: dict[str, Any]) -> str:
        """A small inline PNG as Markdown (cached): the table needs no file served for it."""
        if row["#"] not in self.thumbnails:
            image = self.assets.validation_image(row["file_name"])
            markdown = ""
            if image is not None:
                image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                markdown = (
                    f"![#{row['#']}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"
                )
            self.thumbnails[row["#"]] = markdown
        return self.thumbnails[row["#"]]

    # -- selecting an example ---------------------------------------------------------------------
    def pick_row(self, variants, evt: gr.SelectData) -> tuple:
        """A table cell was selected: its row's ``#`` names the example."""
        row = evt.row_value
        index = row[1] if isinstance(row, list) and len(row) > 1 else None
        return self.show(index, variants)

    def pick_gallery(self, ranked: list, variants, evt: gr.SelectData) -> tuple:
        position = evt.index if isinstance(evt.index, int) else None
        valid = isinstance(ranked, list) and position is not None and 0 <= position < len(ranked)
        index = ranked[position] if valid else None
        return self.show(index, variants)

    def show(self, index: Any, variants: list[str] | None) -> tuple:
        """(sample, image, details, stored chart, explain-variant update, Open-in-Ask update) for example ``index``."""
        try:
            record = self.by_index.get(int(index)) if index is not None and str(index).strip() != "" else None
        except (TypeError, ValueError, OverflowError):  # a crafted select event, not a table row
            record = None
        if record is None:
            message = status_error("Pick an example in the table or the gallery.")
            return (
                None,
                None,
                message,
                empty_figure("No example selected"),
                gr.update(),
                gr.update(interactive=False),
            )
        selected = [n for n in variant_names(self.records) if n in (variants or [])] or variant_names(
            self.records
        )
        stored = record["variants"]
        wrong = [n for n in selected if n in stored and stored[n]["choice"] != record["gold"]]
        explainable = wrong or [n for n in selected if n in stored]
        # The best variant's mistake first, and one with pooling weights when there is one.
        ranked = sorted(explainable, key=lambda n: (not self.is_attentive(n), -self.accuracy_of(n)))
        preferred = ranked[0] if ranked else None
        sample = {"index": record["index"], "variants": selected, "variant": preferred}
        figure = probabilities_figure(
            record["options"],
            {n: stored[n]["probabilities"] for n in selected if n in stored},
            {n: stored[n]["choice"] for n in selected if n in stored},
            gold=record["gold"],
        )
        dropdown = gr.update(choices=explainable, value=preferred, interactive=bool(explainable))
        image = self.assets.validation_image(record.get("file_name"))
        labels = {name: label for label, name in self.variant_choices}
        return sample, image, details_markdown(record, labels), figure, dropdown, gr.update(interactive=True)

    def accuracy_of(self, name: str) -> float:
        return self.accuracy.get(name, {}).get("accuracy", 0.0)

    def is_attentive(self, name: str) -> bool:
        return any(i.name == name and i.attentive for i in self.holder.infos)

    # -- Open in Ask ------------------------------------------------------------------------------
    def open_in_ask(self, sample: dict | None, variant_info=None) -> list:
        """The Ask form's new values: image, question, K, 8 option rows, one tick per variant, status, tab."""
        record = self.by_index.get(sample.get("index")) if sample else None
        infos = self.holder.infos
        if record is None:
            message = status_error("Pick an example in the Errors tab first.")
            return [gr.update()] * (3 + MAX_OPTIONS + len(infos)) + [message, gr.update()]
        options = list(record["options"])[:MAX_OPTIONS]
        k = len(options)
        rows = [gr.update(value=options[i] if i < k else "", visible=i < k) for i in range(MAX_OPTIONS)]
        ticks = []
        for info in infos:
            reason = info.incompatibility(k)
            text = f"unavailable: {reason}" if reason else (variant_info(info.name) if variant_info else None)
            ticks.append(
                gr.update(
                    value=reason is None and info.name in sample["variants"],
                    interactive=reason is None,
                    info=text,
                )
            )
        status = status_ok(
            f"Filled from validation example #{record['index']} (gold: {option_text(options, record['gold'])}). "
            "Edit anything and press Answer."
        )
        image = self.image_path(record.get("file_name"))
        return [image, record["question"], k, *rows, *ticks, status, gr.Tabs(selected="ask")]


def details_markdown(record: dict, labels: dict[str, str]) -> str:
    """The example, its options (gold and who chose each) and every stored answer, as Markdown.

    ``labels`` maps a variant to its label in the filters (accuracy, chance level).
    """
    options, gold = record["options"], record["gold"]
    stored = record["variants"]
    family = family_of(record)
    lines = [
        f"**#{record.get('index')}** · `{record.get('file_name')}`"
        + (f" · family *{family}*" if family else ""),
        "",
        f"**Question:** {record.get('question', '')}",
        "",
    ]
    for k in range(len(options)):
        pickers = [n for n in stored if stored[n].get("choice") == k]
        mark = " ✓ **gold**" if k == gold else ""
        lines.append(f"- {option_text(options, k)}{mark}" + (f" ← {', '.join(pickers)}" if pickers else ""))
    lines += ["", "| variant (stored run) | chose | score share | correct |", "|---|---|---:|:---:|"]
    for name in variant_names([record]):
        p = stored[name]
        correct = "✔" if p.get("choice") == gold else "✘"
        lines.append(
            f"| {labels.get(name, name)} | {option_text(options, p.get('choice'))} | {p.get('confidence', 0):.0%} | {correct} |"
        )
        if p.get("generated_text") is not None:
            lines.append(f"| ↳ generated | “{p['generated_text']}” | | |")
    return "\n".join(lines)
