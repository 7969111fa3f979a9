"""The Compare tab's "Across backbones" section: runs on different models side by side, from their files.

The served run (the assets' ``comparison.json`` and ``evaluation/predictions.jsonl``) comes first,
then each run of ``--compare-runs`` / ``VQA_COMPARE_RUNS`` (default: the folders under
``<assets>/runs``), read by :mod:`vqa_demo.evaluation.saved_runs`; no other model is loaded. Shown: which
model and questions each run has, every variant's accuracy with its 95% interval per run, the
training settings that differ, and paired McNemar tests of each variant between runs that answered
the same questions (Holm-adjusted over all of them).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from vqa_demo.evaluation.run_tables import (
    across_runs_metrics,
    metric_table,
    paired_table,
    runs_table,
    settings_table,
    side_by_side_table,
)
from vqa_demo.evaluation.saved_runs import (
    SavedRun,
    paired_tests,
    variants_of,
)
from vqa_demo.ui.plots import backbone_accuracy_figure

HOW_TO_ADD = (
    "**Across backbones.** To set runs on other models (Qwen2.5-VL, LLaVA, SmolVLM, Gemma 3, BLIP, ViLT, "
    "another PaliGemma) beside this one, start the app with `--compare-runs DIR [DIR ...]` (or "
    "`VQA_COMPARE_RUNS`), each DIR the `--out` folder of `python -m training.compare` or "
    "`python -m vqa_demo.evaluate`, or copy those folders under `assets/runs/`. Only their saved "
    "evaluation files are read; the served model stays the one in memory."
)


def question_families(runs: list[SavedRun]) -> list[str]:
    """Every question family (the split's ``family`` column) any run reports accuracy for."""
    return sorted({f for run in runs for v in run.variants.values() for f in v.by_family})


def legend_name(run: SavedRun, variant: str) -> str:
    """The run's label, saying so when the run has no such variant (its bars are missing, not zero)."""
    if run.accuracy(variant) is not None:
        return run.label
    return f"{run.label}: {'not applicable' if variant in run.not_applicable else 'not evaluated'}"


def run_columns(count: int) -> list[str]:
    """Column widths for a variant column and ``count`` run columns (the run columns share the rest)."""
    return ["22%", *[f"{78 / count:.1f}%"] * count]


def family_figure(runs: list[SavedRun], variant: str):
    """One variant's accuracy per question family, a bar per run (gaps where a run lacks it)."""
    by_run = {
        legend_name(run, variant): run.variants[variant].by_family if variant in run.variants else {}
        for run in runs
    }
    chances = {legend_name(run, variant): run.chance for run in runs}
    return backbone_accuracy_figure(by_run, question_families(runs), "question family", chances)


def run_chances(runs: list[SavedRun]) -> dict[str, float | None]:
    """Each run's chance level by its label (None when it saved no answers)."""
    return {run.label: run.chance for run in runs}


def family_comparison(runs: list[SavedRun], variants: list[str]) -> dict[str, Any]:
    """A variant picker and its per-family chart across runs (nothing when no run has families)."""
    choices = [v for v in variants if any(r.variants[v].by_family for r in runs if v in r.variants)]
    if not choices or not question_families(runs):
        return {}
    picker = gr.Dropdown(choices, value=choices[0], label="Variant", elem_id="compare-backbones-variant")
    plot = gr.Plot(
        family_figure(runs, choices[0]),
        label="Accuracy per question family: the chosen variant on every run",
        elem_id="compare-backbones-family",
    )
    picker.change(lambda variant: family_figure(runs, variant), picker, plot, queue=False)
    return {"backbones_variant": picker, "backbones_family": plot}


def section_intro(runs: list[SavedRun], notes: list[str]) -> str:
    """The section's heading line, with the notes of runs that could not be read or paired."""
    models = sorted({run.model for run in runs})
    lines = [
        f"### Across backbones: {len(runs)} runs on {len(models)} model{'s' if len(models) != 1 else ''}",
        "Each run's own validation evaluation, read from its saved files. Accuracies carry 95% Wilson "
        "intervals; *chance level* marks a variant an exact binomial test cannot tell from guessing. "
        "Paired tests use the questions two runs both answered.",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def build_backbones_section(runs: list[SavedRun], notes: list[str]) -> dict[str, Any]:
    """Lay out the section (or, with fewer than two runs, how to add some); returns its components."""
    if len(runs) < 2:
        return {
            "backbones_intro": gr.Markdown(
                HOW_TO_ADD + "".join(f"\n- {n}" for n in notes),
                elem_classes="small-note",
                elem_id="compare-backbones-intro",
            )
        }
    tests, pairing_notes = paired_tests(runs)
    components = {
        "backbones_intro": gr.Markdown(
            section_intro(runs, notes + pairing_notes), elem_id="compare-backbones-intro"
        ),
        "backbones_runs": gr.Dataframe(
            runs_table(runs), interactive=False, wrap=True, elem_id="compare-backbones-runs"
        ),
    }
    variants = variants_of(runs)
    components["backbones_accuracy"] = gr.Plot(
        backbone_accuracy_figure(
            {r.label: {v: r.accuracy(v) for v in variants} for r in runs}, variants, chances=run_chances(runs)
        ),
        label="Validation accuracy per variant and run, with 95% interval",
        elem_id="compare-backbones-accuracy",
    )
    components["backbones_table"] = gr.Dataframe(
        side_by_side_table(runs),
        interactive=False,
        wrap=True,
        column_widths=run_columns(len(runs)),
        elem_id="compare-backbones-table",
    )
    for metric in across_runs_metrics():
        gr.Markdown(f"**{metric.display.column}**", elem_classes="small-note")
        components[f"backbones_{metric.name}"] = gr.Dataframe(
            metric_table(runs, metric),
            interactive=False,
            wrap=True,
            column_widths=run_columns(len(runs)),
            elem_id=f"compare-backbones-{metric.name}",
        )
    components.update(family_comparison(runs, variants))
    settings = settings_table(runs)
    if len(settings):
        gr.Markdown("**Settings that differ between the runs**", elem_classes="small-note")
        components["backbones_settings"] = gr.Dataframe(
            settings,
            interactive=False,
            wrap=True,
            column_widths=run_columns(len(runs)),
            elem_id="compare-backbones-settings",
        )
    gr.Markdown(
        "**Paired McNemar tests across runs**: the same variant on two models, on the same questions; "
        "how often only one was right. Holm's adjustment covers every test in this table."
        if tests
        else "No paired tests: no two runs saved answers to the same questions.",
        elem_classes="small-note",
    )
    if tests:
        components["backbones_paired"] = gr.Dataframe(
            paired_table(tests), interactive=False, wrap=True, elem_id="compare-backbones-paired"
        )
    return components
