"""The Errors tab: browse the validation examples a variant got wrong, from ``predictions.jsonl``.

The table has one row per (example, variant that missed it). Filters: variant, family, gold
position, the variant's confidence range, and "variants disagree". Selecting a row shows the stored
scores at once, then re-runs the example live for the attentive heatmap; the current rows export as CSV.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from vqa_demo.prompts import LETTERS
from vqa_demo.ui.ask import status_error, status_ok
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.explain_view import attention_view
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.plots import canonical, empty_figure, option_label, probabilities_figure

log = logging.getLogger(__name__)

ANY_VARIANT, ALL_FAMILIES, ANY_POSITION = "any variant", "all families", "any position"
TABLE_COLUMNS = ["#", "family", "question", "gold", "variant", "predicted", "confidence", "variants agree"]
EXPORT_COLUMNS = [*TABLE_COLUMNS, "file_name", "options", "gold_text", "predicted_text"]


def letter(index: int | None) -> str:
    return LETTERS[index] if index is not None and 0 <= index < len(LETTERS) else "?"


def error_rows(
    records: list[dict[str, Any]],
    variant: str = ANY_VARIANT,
    family: str = ALL_FAMILIES,
    position: str = ANY_POSITION,
    confidence: tuple[float, float] = (0.0, 1.0),
    disagree_only: bool = False,
) -> list[dict[str, Any]]:
    """Mispredicted (example, variant) pairs that pass the filters, in split order.

    ``confidence`` bounds the wrong variant's probability for its choice (inclusive).
    """
    low, high = sorted(confidence)
    rows = []
    for record in records:
        gold = record.get("gold")
        predictions = record.get("variants") or {}
        if gold is None:
            continue
        record_family = (record.get("metadata") or {}).get("family", "")
        if family not in (ALL_FAMILIES, None, "") and record_family != family:
            continue
        if position not in (ANY_POSITION, None, "") and letter(gold) != position:
            continue
        agree = len({p.get("choice") for p in predictions.values()}) <= 1
        if disagree_only and agree:
            continue
        for name in canonical(predictions):
            p = predictions[name]
            if variant not in (ANY_VARIANT, None, "") and name != variant:
                continue
            if p.get("choice") == gold or not low <= float(p.get("confidence", 0.0)) <= high:
                continue
            options = record.get("options") or []
            choice = p.get("choice")
            rows.append(
                {
                    "#": record.get("index"),
                    "family": record_family,
                    "question": record.get("question", ""),
                    "gold": letter(gold),
                    "variant": name,
                    "predicted": letter(choice),
                    "confidence": round(float(p.get("confidence", 0.0)), 3),
                    "variants agree": "yes" if agree else "no",
                    "file_name": record.get("file_name"),
                    "options": " | ".join(options),
                    "gold_text": options[gold] if gold < len(options) else "",
                    "predicted_text": options[choice] if choice is not None and choice < len(options) else "",
                }
            )
    return rows


def write_csv(rows: list[dict[str, Any]], folder: Path) -> Path:
    """The rows as CSV in ``folder``; the name is a hash of the content, so sessions never clash."""
    lines = [EXPORT_COLUMNS] + [[row.get(c, "") for c in EXPORT_COLUMNS] for row in rows]
    digest = hashlib.sha256(repr(lines).encode()).hexdigest()[:12]
    path = folder / f"mispredictions-{digest}.csv"
    if not path.exists():
        partial = path.with_suffix(".tmp")
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(lines)
        partial.replace(path)
    return path


class ErrorBrowser:
    """Event handlers of the Errors tab."""

    def __init__(self, holder: PredictorHolder, assets: AppAssets, export_dir: Path | None = None):
        self.holder = holder
        self.assets = assets
        self.records = assets.records
        self.by_index = {r.get("index"): r for r in self.records}
        self.export_dir = export_dir or Path(tempfile.mkdtemp(prefix="vqa-errors-"))

    # -- choices for the filters ------------------------------------------------------------------
    @property
    def variant_choices(self) -> list[str]:
        names = canonical(dict.fromkeys(n for r in self.records for n in (r.get("variants") or {})))
        return [ANY_VARIANT, *names]

    @property
    def family_choices(self) -> list[str]:
        families = sorted({(r.get("metadata") or {}).get("family", "") for r in self.records} - {""})
        return [ALL_FAMILIES, *families]

    @property
    def position_choices(self) -> list[str]:
        k = max((len(r.get("options") or []) for r in self.records), default=4)
        return [ANY_POSITION, *LETTERS[:k]]

    # -- filtering --------------------------------------------------------------------------------
    def filter(self, variant, family, position, low, high, disagree_only) -> tuple:
        """(table, rows for selection, count caption, CSV download) for the current filters."""
        rows = error_rows(
            self.records, variant, family, position, (float(low), float(high)), bool(disagree_only)
        )
        table = pd.DataFrame([[r[c] for c in TABLE_COLUMNS] for r in rows], columns=TABLE_COLUMNS)
        examples = len(self.records)
        caption = f"**{len(rows)}** mispredictions match (of {examples} validation examples)."
        download = gr.update(value=str(write_csv(rows, self.export_dir)), interactive=bool(rows))
        return table, rows, caption, download

    # -- one example ------------------------------------------------------------------------------
    def pick(self, rows: list[dict] | None, evt: gr.SelectData) -> tuple:
        """Selecting a table row: show the stored details of that example at once."""
        row = None
        if isinstance(evt.row_value, list) and len(evt.row_value) >= 5:
            row = {"#": evt.row_value[0], "variant": evt.row_value[4]}
        elif rows and isinstance(evt.index, (list, tuple)) and evt.index and isinstance(evt.index[0], int):
            row = rows[evt.index[0]] if 0 <= evt.index[0] < len(rows) else None
        return self.show(row)

    def show(self, row: dict | None) -> tuple:
        """(selected sample, image, details, stored-scores chart) for a table row."""
        try:
            record = self.by_index.get(int(row["#"])) if row and row.get("#") is not None else None
        except (TypeError, ValueError, OverflowError):  # a crafted select event, not a table row
            record = None
        if record is None:
            return None, None, status_error("Pick a row in the table."), empty_figure("No example selected")
        sample = {"index": record.get("index"), "variant": row.get("variant")}
        image = self.assets.validation_image(record.get("file_name"))
        predictions = record.get("variants") or {}
        figure = probabilities_figure(
            record["options"],
            {n: p["probabilities"] for n, p in predictions.items()},
            {n: p["choice"] for n, p in predictions.items()},
            gold=record.get("gold"),
        )
        return sample, image, self.details(record), figure

    @staticmethod
    def details(record: dict) -> str:
        options, gold = record["options"], record.get("gold")
        predictions = record.get("variants") or {}
        family = (record.get("metadata") or {}).get("family")
        lines = [
            f"**#{record.get('index')}** · `{record.get('file_name')}`"
            + (f" · family *{family}*" if family else ""),
            "",
            f"**Question:** {record.get('question', '')}",
            "",
        ]
        for k, option in enumerate(options):
            pickers = [n for n, p in predictions.items() if p.get("choice") == k]
            mark = " ✓ **gold**" if k == gold else ""
            chosen = f" ← {', '.join(pickers)}" if pickers else ""
            lines.append(f"- {option_label(k, option, 80)}{mark}{chosen}")
        lines += ["", "| variant | predicted | confidence | correct |", "|---|---|---:|:---:|"]
        for name in canonical(predictions):
            p = predictions[name]
            choice = p.get("choice")
            lines.append(
                f"| {name} | {letter(choice)} | {p.get('confidence', 0):.1%} | {'✔' if choice == gold else '✘'} |"
            )
            if p.get("generated_text") is not None:
                lines.append(f"| ↳ generated | “{p['generated_text']}” | | |")
        return "\n".join(lines)

    def rerun(self, sample: dict | None, opacity: float = 0.55) -> tuple:
        """Run the selected example live: (status, live chart, attentive heatmap, highlighted tokens)."""
        record = self.by_index.get(sample.get("index")) if sample else None
        if record is None:
            return status_error("Pick a row in the table first."), None, None, None
        image = self.assets.validation_image(record.get("file_name"))
        if image is None:
            return (
                status_error(f"The image {record.get('file_name')!r} is not in the validation folder."),
                None,
                None,
                None,
            )
        options = list(record["options"])
        try:
            predictor = self.holder.get()
            names = [
                n for n in self.holder.names if self.holder.info(n).incompatibility(len(options)) is None
            ]
            predictions = predictor.predict(image, record["question"], options, names)
        except ModelUnavailable as error:
            return status_error(str(error)), None, None, None
        except Exception as error:  # report, do not crash the session
            log.exception("live re-run failed")
            return status_error(f"Re-running failed ({type(error).__name__}: {error})."), None, None, None
        figure = probabilities_figure(
            options,
            {n: p.probabilities for n, p in predictions.items()},
            {n: p.choice for n, p in predictions.items()},
            gold=record.get("gold"),
        )
        attentive = [n for n, p in predictions.items() if "attention" in p.extras]
        preferred = (
            sample.get("variant")
            if sample.get("variant") in attentive
            else (attentive[0] if attentive else None)
        )
        heatmap, tokens, caption = (None, None, "No attentive variant is loaded, so no heatmap.")
        if preferred:
            heatmap, tokens, caption = attention_view(
                image, predictions[preferred].extras["attention"], opacity
            )
            caption = f"Heatmap of **{preferred}**. " + caption
        changed = [
            n
            for n, p in predictions.items()
            if n in record["variants"] and p.choice != record["variants"][n]["choice"]
        ]
        note = (
            f" Changed since the stored run: {', '.join(changed)}."
            if changed
            else " Same choices as the stored run."
        )
        seconds = sum(p.seconds for p in predictions.values())
        return (
            status_ok(f"Re-ran {len(predictions)} variants in {seconds:.2f} s.{note}") + "\n\n" + caption,
            figure,
            heatmap,
            tokens,
        )


def build_errors_tab(browser: ErrorBrowser) -> None:
    """Lay out and wire the Errors tab."""
    if not browser.records:
        gr.Markdown(
            status_error(
                "No predictions.jsonl in the assets' evaluation folder, so there is nothing to browse."
            )
            + "\n\n"
            + "; ".join(browser.assets.notes)
        )
        return
    initial = browser.filter(ANY_VARIANT, ALL_FAMILIES, ANY_POSITION, 0.0, 1.0, False)
    with gr.Row(equal_height=True):
        variant = gr.Dropdown(browser.variant_choices, value=ANY_VARIANT, label="Variant", scale=2)
        family = gr.Dropdown(browser.family_choices, value=ALL_FAMILIES, label="Family", scale=2)
        position = gr.Dropdown(browser.position_choices, value=ANY_POSITION, label="Gold position", scale=1)
        disagree = gr.Checkbox(label="Only where variants disagree", value=False, scale=1)
    with gr.Row(equal_height=True):
        low = gr.Slider(0, 1, value=0, step=0.05, label="Confidence from", scale=2)
        high = gr.Slider(0, 1, value=1, step=0.05, label="Confidence to", scale=2)
        with gr.Column(scale=2, min_width=240):
            caption = gr.Markdown(initial[2], elem_id="errors-count")
            download = gr.DownloadButton(
                "Export these rows as CSV", value=initial[3]["value"], size="sm", elem_id="errors-export"
            )
    table = gr.Dataframe(
        value=initial[0],
        interactive=False,
        wrap=True,
        max_height=360,
        elem_id="errors-table",
        column_widths=["6%", "11%", "33%", "7%", "17%", "9%", "9%", "8%"],
    )
    rows = gr.State(initial[1])
    sample = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            image = gr.Image(
                label="Example",
                type="pil",
                interactive=False,
                height=300,
                elem_id="errors-image",
                elem_classes="fill-image",
            )
        with gr.Column(scale=3):
            details = gr.Markdown("Select a row to see the example.", elem_id="errors-details")
    stored = gr.Plot(
        label="Stored probabilities (predictions.jsonl; gold marked ✓, choices outlined)",
        elem_id="errors-stored-chart",
    )
    rerun = gr.Button("Re-run this example live", elem_id="errors-rerun")
    live_status = gr.Markdown(elem_classes="status-box")
    with gr.Row(equal_height=False):
        live_chart = gr.Plot(label="Live probabilities (re-run now)", elem_id="errors-live-chart")
        with gr.Column():
            heatmap = gr.Image(
                label="Attentive heatmap (live)",
                type="pil",
                interactive=False,
                height=300,
                elem_id="errors-heatmap",
                format="png",
                elem_classes="fill-image",
            )
            tokens = gr.HighlightedText(label="Pooling weights over the text tokens", show_legend=False)

    filters = [variant, family, position, low, high, disagree]
    for component in filters:
        trigger = component.release if isinstance(component, gr.Slider) else component.change
        trigger(
            browser.filter, filters, [table, rows, caption, download], api_visibility="private", queue=False
        )
    live_outputs = [live_status, live_chart, heatmap, tokens]
    table.select(browser.pick, [rows], [sample, image, details, stored], api_visibility="private").then(
        browser.rerun,
        [sample],
        live_outputs,
        api_visibility="private",
        concurrency_id="model",
        concurrency_limit=1,
    )
    rerun.click(
        browser.rerun,
        [sample],
        live_outputs,
        api_name="rerun_example",
        concurrency_id="model",
        concurrency_limit=1,
        api_visibility="private",
    )
