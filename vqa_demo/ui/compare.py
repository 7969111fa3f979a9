"""The Compare tab: the variants side by side on the validation split, from precomputed files.

Sources: ``evaluation/metrics.json`` (the one evaluation path: accuracy with intervals, per-family
accuracy, position bias, agreement) and ``comparison.json`` / the checkpoints' ``metrics.jsonl``
(training curves). ``comparison.json`` stands in for whatever ``metrics.json`` lacks.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.plots import (
    accuracy_figure,
    agreement_figure,
    canonical,
    curves_figure,
    grouped_accuracy_figure,
    position_figure,
)


def comparison_data(assets: AppAssets) -> dict[str, Any]:
    """Per-variant accuracy, by-family accuracy, position bias, ECE and agreement, merged from both files."""
    from_metrics = (assets.metrics or {}).get("variants", {})
    from_comparison = (assets.comparison or {}).get("variants", {})
    names = canonical(dict.fromkeys([*from_metrics, *from_comparison]))
    variants = {}
    for name in names:
        m, c = from_metrics.get(name) or {}, from_comparison.get(name) or {}
        variants[name] = {
            "accuracy": m.get("accuracy") or c.get("accuracy"),
            "by_family": (m.get("by_metadata") or {}).get("family") or c.get("by_family") or {},
            "position_bias": m.get("position_bias") or c.get("position_bias"),
            "ece": (m.get("calibration") or {}).get("ece", c.get("calibration_ece")),
            "train_seconds": c.get("train_seconds"),
        }
    agreement = (assets.metrics or {}).get("agreement") or (assets.comparison or {}).get("agreement")
    return {"variants": variants, "agreement": agreement}


def summary_markdown(data: dict[str, Any], assets: AppAssets) -> str:
    variants = data["variants"]
    if not variants:
        return "No evaluation results yet. " + "; ".join(assets.notes)
    split = (assets.metrics or assets.comparison or {}).get("split", "validation")
    lines = [
        f"Validation split **{split}**. Intervals are 95% Wilson intervals: two variants whose intervals "
        "overlap widely are not reliably different on this many examples.",
        "",
        "| variant | accuracy | 95% CI | n | ECE | training time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        acc = v["accuracy"]
        if not acc:
            lines.append(f"| {name} | – | – | – | – | – |")
            continue
        ece = f"{v['ece']:.3f}" if v["ece"] is not None else "–"
        train = f"{v['train_seconds']:.0f} s" if v.get("train_seconds") else "–"
        lines.append(
            f"| {name} | **{acc['accuracy']:.1%}** | [{acc['low']:.1%}, {acc['high']:.1%}] | {acc['n']} | {ece} | {train} |"
        )
    return "\n".join(lines)


def num_options(assets: AppAssets) -> int | None:
    if assets.validation is not None:
        return assets.validation.num_options
    if assets.records:
        return len(assets.records[0].get("options", [])) or None
    return None


def build_compare_tab(assets: AppAssets) -> dict[str, Any]:
    """Lay out the Compare tab; every chart is drawn once, at build time."""
    data = comparison_data(assets)
    variants = data["variants"]
    components = {}
    components["summary"] = gr.Markdown(summary_markdown(data, assets), elem_id="compare-summary")
    with gr.Row():
        components["accuracy"] = gr.Plot(
            accuracy_figure(variants, num_options(assets)),
            label="Validation accuracy with 95% interval",
            elem_id="compare-accuracy",
        )
        components["family"] = gr.Plot(
            grouped_accuracy_figure({n: v["by_family"] for n, v in variants.items()}, "family"),
            label="Accuracy per question family",
        )
    components["curves"] = gr.Plot(
        curves_figure(assets.curves), label="Training curves: loss and validation accuracy against step"
    )
    with gr.Row():
        components["agreement"] = gr.Plot(
            agreement_figure(data["agreement"]),
            label="Head agreement: how often two variants chose the same option",
        )
        components["position"] = gr.Plot(
            position_figure({n: v["position_bias"] for n, v in variants.items() if v["position_bias"]}),
            label="Accuracy by gold-answer position (position bias)",
        )
    return components
