"""The Compare tab: the variants side by side on the validation split, from ``comparison.json`` alone.

With other runs configured (``--compare-runs``, ``<assets>/runs``), the tab opens with the runs side by
side across backbones (:mod:`vqa_demo.ui.tabs.compare_backbones`); the served run's details follow.

``training.compare`` writes that file: per variant the validation accuracy with its interval,
per-family accuracy, position bias, calibration, training curve and time, plus the head agreement
matrix and the paired McNemar tests, all taken from the one evaluation (``evaluation/metrics.json``).
Reading only it keeps every number here equal to the model card's. Chance levels come from the
validation split's option counts (1/K per question, averaged).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from vqa_demo.config import VARIANTS, in_variant_order
from vqa_demo.evaluation.chance import chance_level, format_p, is_chance_level
from vqa_demo.evaluation.metric_registry import METRICS, Metric
from vqa_demo.evaluation.metrics import holm
from vqa_demo.evaluation.records import read_entries
from vqa_demo.model.head_traits import HEAD_TRAITS
from vqa_demo.ui.assets import SERVED_RUN, AppAssets
from vqa_demo.ui.lazy import LazyValues
from vqa_demo.ui.plots import (
    accuracy_figure,
    agreement_figure,
    family_accuracy_figure,
    position_figure,
    split_loss_curves_figure,
)
from vqa_demo.ui.plots_calibration import ECE_SENTENCE, reliability_figure
from vqa_demo.ui.tabs.compare_backbones import build_backbones_section
from vqa_demo.ui.tabs.compare_selection import build_selection_section

MCNEMAR_COLUMNS = [
    "variant A",
    "variant B",
    "only A right",
    "only B right",
    "p-value",
    "Holm-adjusted p",
    "reading",
]


def comparison_data(assets: AppAssets) -> dict[str, Any]:
    """Per-variant entries (:class:`~vqa_demo.evaluation.records.VariantEntry`), agreement and
    McNemar tests from ``comparison.json`` (empty when it is missing or was refused on reading)."""
    comparison = assets.comparison or {}
    entries = read_entries(comparison) if comparison else {}
    variants = {name: entries[name] for name in in_variant_order(entries)}
    return {
        "variants": variants,
        "agreement": comparison.get("agreement"),
        "mcnemar": comparison.get("mcnemar") or {},
        "n": comparison.get("n"),
    }


def option_counts(assets: AppAssets) -> list[tuple[str, int]]:
    """``(family, K)`` per validation question (from the split, else from the stored predictions)."""
    if assets.validation is not None:
        return [(ex.metadata.get("family", ""), ex.num_options) for ex in assets.validation]
    return [
        ((r.get("metadata") or {}).get("family", ""), len(r.get("options") or [])) for r in assets.records
    ]


def chance_by_family(counts: list[tuple[str, int]]) -> dict[str, float]:
    """Expected accuracy of guessing per family: the mean of 1/K over its questions."""
    families: dict[str, list[float]] = {}
    for family, k in counts:
        if family and k > 0:
            families.setdefault(family, []).append(chance_level(k))
    return {family: float(np.mean(values)) for family, values in families.items()}


def overall_chance(counts: list[tuple[str, int]]) -> float | None:
    values = [chance_level(k) for _, k in counts if k > 0]
    return float(np.mean(values)) if values else None


def table_metrics() -> list[Metric]:
    """The registry metrics shown as columns of the summary table, in registry order."""
    return [m for m in METRICS.values() if m.display is not None and not m.display.chart]


def summary_markdown(data: dict[str, Any], counts: list[tuple[str, int]], notes: list[str] = ()) -> str:
    """The accuracy table with a plain header: how many examples, how many options, what chance is."""
    variants = data["variants"]
    if not variants:
        return "No comparison.json in the assets, so there is nothing to compare. " + "; ".join(notes)
    columns = table_metrics()
    chance = overall_chance(counts)
    ks = sorted({k for _, k in counts})
    n = data.get("n") or next((v.accuracy["n"] for v in variants.values() if v.accuracy), "?")
    options = "" if not ks else f"{ks[0]} options each" if len(ks) == 1 else f"{ks[0]} to {ks[-1]} options"
    header = f"**{n} validation examples**" + (f", {options} (chance {chance:.0%})" if ks and chance else "")
    lines = [
        header + ". Intervals are 95% Wilson intervals; a variant that an exact binomial test cannot tell "
        "from chance (p ≥ 0.05) is marked *chance level*: these examples cannot tell it from guessing.",
        "",
        "| variant | accuracy | 95% interval | vs chance | "
        + "".join(f"{m.display.column} | " for m in columns)
        + "training time |",
        "|---|---:|---:|---|" + "---:|" * len(columns) + "---:|",
    ]
    for name, v in variants.items():
        acc = v.accuracy
        if not acc:
            lines.append(f"| {name} | – | – | – | " + "– | " * len(columns) + "– |")
            continue
        at_chance = chance is not None and is_chance_level(acc, chance)
        versus = (
            "*chance level*"
            if at_chance
            else ("above" if chance is not None and acc["low"] > chance else "below")
        )
        cells = "".join(
            f"{'–' if v.value(m.name) is None else m.format(v.value(m.name))} | " for m in columns
        )
        train = f"{v.train_seconds:.0f} s" if v.train_seconds else "–"
        lines.append(
            f"| {name} | **{acc['accuracy']:.1%}** | [{acc['low']:.1%}, {acc['high']:.1%}] | {versus} | {cells}{train} |"
        )
    return "\n".join(lines)


def mcnemar_table(mcnemar: dict[str, dict], alpha: float = 0.05) -> pd.DataFrame:
    """One row per pair of variants: the discordant counts, the exact McNemar p-value and a plain reading."""
    pairs = [(key.split(" vs ", 1), test) for key, test in mcnemar.items() if " vs " in key]
    adjusted = holm([float(t["p_value"]) for _, t in pairs])
    rows = []
    for ((a, b), test), p_adj in zip(pairs, adjusted):
        if p_adj < alpha:
            better = a if test["b"] > test["c"] else b
            reading = f"differ: {better} is more accurate"
        else:
            reading = "no reliable difference"
        rows.append([a, b, test["b"], test["c"], format_p(test["p_value"]), format_p(p_adj), reading])
    return pd.DataFrame(rows, columns=MCNEMAR_COLUMNS)


def token_level(name: str) -> bool:
    """Whether ``name``'s training loss is a per-token LM loss (not comparable with K-way cross-entropy)."""
    head = VARIANTS.get(name, (name.split("-", 1)[0], None))[0]
    traits = HEAD_TRAITS.get(head)
    return traits is not None and traits.token_level_loss


def build_compare_tab(assets: AppAssets) -> dict[str, Any]:
    """Lay out the Compare tab; every chart is drawn once, at build time, and sent when the tab is first
    shown (``components["lazy"]``, wired by the app)."""
    data = comparison_data(assets)
    variants = data["variants"]
    counts = option_counts(assets)
    chance = overall_chance(counts)
    components = {}
    across = len(assets.runs) > 1
    if across:
        components.update(build_backbones_section(assets.runs, assets.run_notes))
        served = assets.runs[0].label if assets.runs[0].name == SERVED_RUN else "comparison.json"
        gr.Markdown(f"### The served run in detail: {served}", elem_id="compare-served-heading")
    components["summary"] = gr.Markdown(
        summary_markdown(data, counts, assets.notes), elem_id="compare-summary"
    )
    # Charts are sent when the tab is first shown, not in the page's config (vqa_demo.ui.lazy).
    lazy = components["lazy"] = LazyValues()
    with gr.Row():
        components["accuracy"] = lazy.add(
            gr.Plot(label=METRICS["accuracy"].display.column, elem_id="compare-accuracy"),
            accuracy_figure(
                {n: v.metrics for n, v in variants.items()}, round(1 / chance) if chance else None
            ),
        )
        components["family"] = lazy.add(
            gr.Plot(
                label=f"{METRICS['by_family'].display.column}; click a bar for its mistakes",
                elem_id="compare-family",
            ),
            family_accuracy_figure({n: v.by_family for n, v in variants.items()}, chance_by_family(counts)),
        )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            components["reliability"] = lazy.add(
                gr.Plot(
                    label="Reliability per variant: how often it is right at each score share (bars), "
                    "after temperature scaling (line)",
                    elem_id="compare-reliability",
                ),
                reliability_figure(assets.comparison),
            )
        with gr.Column(scale=1, min_width=200):
            components["ece_note"] = gr.Markdown(ECE_SENTENCE, elem_id="compare-ece-note")
    table = mcnemar_table(data["mcnemar"])
    gr.Markdown(
        "**Paired McNemar tests**: on the same questions, how often only one of two variants was right. "
        "Holm's adjustment accounts for testing every pair at once; a difference is called at 5%. "
        "Click an *only A right* or *only B right* count to list those questions in Errors."
        if len(table)
        else "No McNemar tests in comparison.json.",
        elem_classes="small-note",
    )
    components["mcnemar"] = gr.Dataframe(table, interactive=False, wrap=True, elem_id="compare-mcnemar")
    components.update(build_selection_section(assets.comparison, chance))
    names = list(assets.curves)
    components["curves"] = lazy.add(
        gr.Plot(
            label="Training curves: K-way losses together, COND_GEN's token-level loss on its own, validation accuracy",
            elem_id="compare-curves",
        ),
        split_loss_curves_figure(assets.curves, [n for n in names if token_level(n)], chance),
    )
    with gr.Row():
        components["agreement"] = lazy.add(
            gr.Plot(
                label="Head agreement: how often two variants chose the same option",
                elem_id="compare-agreement",
            ),
            agreement_figure(data["agreement"]),
        )
        components["position"] = lazy.add(
            gr.Plot(
                label=f"{METRICS['position_bias'].display.column}; dotted: chance",
                elem_id="compare-position",
            ),
            position_figure(
                {n: v.value("position_bias") for n, v in variants.items() if v.value("position_bias")}, chance
            ),
        )
    if not across:
        components.update(build_backbones_section(assets.runs, assets.run_notes))
    return components
