"""The Compare tab's held-out section: zero-shot, position readings, decision rules and calibration.

Read from ``comparison.json`` alone (:mod:`vqa_demo.evaluation.selection_report` writes these keys):
which split chose ``best/`` and which one the figures are measured on, whether fine-tuning beat the
base with no adapter (``zero_shot``, exact McNemar tests), whether each variant answers by content
or by position (circular accuracy, the position it picks most, the PriDe rule), COND_GEN's decision
rules side by side, and each probability definition's ECE before and after temperature scaling
(fitted on the selection split; the reliability diagrams are :mod:`vqa_demo.ui.plots_calibration`'s). A comparison written before these keys
existed shows a note instead of each missing part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr
import pandas as pd

from vqa_demo.config import COND_GEN_SCORING_WORDS, in_variant_order
from vqa_demo.evaluation.calibration import SERVED
from vqa_demo.evaluation.chance import format_p, is_chance_level
from vqa_demo.evaluation.position import PRIDE_RULE, position_reading
from vqa_demo.evaluation.selection_report import ZERO_SHOT

POSITION_COLUMNS = [
    "variant",
    "accuracy",
    "vs chance",
    "reading",
    "PriDe accuracy",
    "PriDe circular accuracy",
]
ZERO_SHOT_COLUMNS = ["trained variant", "accuracy", "zero-shot accuracy", "only trained right", "only zero-shot right", "p-value", "reading"]  # fmt: skip
RULE_COLUMNS = ["variant", "decision rule", "selection accuracy", "held-out accuracy", "in use"]
CALIBRATION_COLUMNS = ["variant", "probabilities", "temperature", "ECE before", "ECE after", "mean top share before", "mean top share after"]  # fmt: skip


def split_note(comparison: Mapping[str, Any]) -> str:
    """Which split the figures are measured on and which one chose the checkpoints."""
    held_out = f"**Held-out split:** `{comparison.get('split', '?')}` ({comparison.get('n', '?')} questions)"
    selection = comparison.get("selection_split")
    if not selection:
        return held_out + ". This comparison records no selection split: its `best/` checkpoints may have been chosen on these same questions, so the accuracies can be optimistic."  # fmt: skip
    source = selection.get("source", "?")
    seed = f", seed {selection['seed']}" if "seed" in selection else ""
    return (
        f"{held_out}. Checkpoints, COND_GEN's decision rule, temperatures and position priors were chosen on "
        f"the **selection split** ({selection.get('n', '?')} questions, {source}{seed}), never on these."
    )


def percent(accuracy: Mapping | None) -> str:
    return f"{accuracy['accuracy']:.1%}" if accuracy and accuracy.get("accuracy") is not None else "–"


def zero_shot_table(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """Each trained variant against ``zero_shot`` on the same questions (exact McNemar)."""
    variants = comparison.get("variants", {})
    if ZERO_SHOT not in variants:
        return pd.DataFrame(columns=ZERO_SHOT_COLUMNS)
    rows = []
    for key, test in (comparison.get("mcnemar") or {}).items():
        a, _, b = key.partition(" vs ")
        if ZERO_SHOT not in (a, b) or a == b:
            continue
        trained = b if a == ZERO_SHOT else a
        only_trained, only_zero = (test["b"], test["c"]) if a == trained else (test["c"], test["b"])
        if test["p_value"] >= 0.05:
            reading = "no reliable difference"
        else:
            reading = "fine-tuning helped" if only_trained > only_zero else "fine-tuning hurt"
        rows.append([
            trained, percent(variants[trained].get("accuracy")), percent(variants[ZERO_SHOT].get("accuracy")),
            only_trained, only_zero, format_p(test["p_value"]), reading,
        ])  # fmt: skip
    return pd.DataFrame(rows, columns=ZERO_SHOT_COLUMNS)


def position_table(comparison: Mapping[str, Any], chance: float | None) -> pd.DataFrame:
    """Per variant: held-out accuracy, chance level, the plain position reading and the PriDe rule."""
    rows = []
    variants = comparison.get("variants", {})
    for name in in_variant_order(variants):
        v = variants[name] or {}
        accuracy = v.get("accuracy")
        at_chance = bool(accuracy and chance is not None and is_chance_level(accuracy, chance))
        reading = v.get("position_reading") or position_reading(v.get("position_bias"), v.get("circular"))
        pride = v.get(PRIDE_RULE) or {}
        circular = pride.get("circular_accuracy")
        rows.append([
            name, percent(accuracy), "chance level" if at_chance else "above chance" if accuracy else "–",
            reading, percent(pride.get("accuracy")), f"{circular:.2f}" if circular is not None else "–",
        ])  # fmt: skip
    return pd.DataFrame(rows, columns=POSITION_COLUMNS)


def rules_table(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """COND_GEN's decision rules (and zero-shot's) side by side on both splits."""
    rows = []
    for name, v in comparison.get("variants", {}).items():
        rules = (v or {}).get("decision_rules")
        if not rules:
            continue
        for rule, figures in rules["rules"].items():
            marks = [m for m, on in (("in use", rule == rules.get("used")), ("best on selection", rule == rules.get("best_on_selection"))) if on]  # fmt: skip
            rows.append([
                name, f"{rule} ({COND_GEN_SCORING_WORDS.get(rule, rule)})",
                percent(figures.get("selection_accuracy")), percent(figures.get("accuracy")), ", ".join(marks),
            ])  # fmt: skip
    return pd.DataFrame(rows, columns=RULE_COLUMNS)


def definition_label(definition: str) -> str:
    if definition == SERVED:
        return "score share as served"
    return f"softmax of {definition} ({COND_GEN_SCORING_WORDS.get(definition, definition)})"


def calibration_table(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """ECE per variant and probability definition, before and after the selection-split temperature."""
    rows = []
    for name, v in comparison.get("variants", {}).items():
        for definition, c in ((v or {}).get("calibration") or {}).items():
            rows.append([
                name, definition_label(definition), f"{c['temperature']:.3g}", f"{c['ece_before']:.3f}",
                f"{c['ece_after']:.3f}", f"{c['mean_probability_before']:.3f}", f"{c['mean_probability_after']:.3f}",
            ])  # fmt: skip
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def build_selection_section(comparison: Mapping[str, Any] | None, chance: float | None) -> dict[str, Any]:
    """Lay out the section (nothing when there is no comparison)."""
    if not comparison or not comparison.get("variants"):
        return {}
    components = {"split_note": gr.Markdown(split_note(comparison), elem_id="compare-split-note")}
    zero = zero_shot_table(comparison)
    gr.Markdown(
        "**Did fine-tuning help?** Each trained variant against `zero_shot` (the base with no adapter, "
        "scored by COND_GEN likelihood under the same prompt), exact McNemar test on the same questions."
        if len(zero)
        else "No `zero_shot` row in this comparison.",
        elem_classes="small-note",
    )
    components["zero_shot"] = gr.Dataframe(zero, interactive=False, wrap=True, elem_id="compare-zero-shot")
    gr.Markdown(
        "**Content or position?** Circular accuracy counts a question only if the variant is right under "
        "every rotation of its options. PriDe divides out the option-position prior estimated on the "
        "selection split.",
        elem_classes="small-note",
    )
    components["position_readings"] = gr.Dataframe(
        position_table(comparison, chance), interactive=False, wrap=True, elem_id="compare-position-readings"
    )
    rules = rules_table(comparison)
    if len(rules):
        components["rules"] = gr.Dataframe(rules, interactive=False, wrap=True, elem_id="compare-rules")
    calibration = calibration_table(comparison)
    gr.Markdown(
        "**Score shares and calibration.** A variant's probabilities are the softmax of its decision "
        "rule's scores: a *score share*, not a calibrated probability. Temperature scaling (one number per "
        "variant and definition, fitted on the selection split) gives calibrated probabilities; ECE is "
        "measured on the held-out split before and after."
        if len(calibration)
        else "No calibration before/after in this comparison.",
        elem_classes="small-note",
    )
    if len(calibration):
        components["calibration"] = gr.Dataframe(
            calibration, interactive=False, wrap=True, elem_id="compare-calibration"
        )
    return components
