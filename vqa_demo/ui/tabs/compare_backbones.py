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
import pandas as pd

from vqa_demo.evaluation.metrics import holm
from vqa_demo.evaluation.saved_runs import (
    PairedTest,
    SavedRun,
    paired_tests,
    setting_differences,
    variants_of,
)
from vqa_demo.ui.chance import format_p, is_chance_level
from vqa_demo.ui.plots import backbone_accuracy_figure

PAIRED_COLUMNS = [
    "variant",
    "run A",
    "run B",
    "only A right",
    "only B right",
    "p-value",
    "Holm-adjusted p",
    "reading",
]
HOW_TO_ADD = (
    "**Across backbones.** To set runs on other models (Qwen2.5-VL, LLaVA, SmolVLM, Gemma 3, BLIP, ViLT, "
    "another PaliGemma) beside this one, start the app with `--compare-runs DIR [DIR ...]` (or "
    "`VQA_COMPARE_RUNS`), each DIR the `--out` folder of `python -m training.compare` or "
    "`python -m vqa_demo.evaluate`, or copy those folders under `assets/runs/`. Only their saved "
    "evaluation files are read; the served model stays the one in memory."
)


def accuracy_cell(run: SavedRun, variant: str) -> str:
    """``"67.3% [61.8%–72.4%]"`` (+ ``chance level``), ``not applicable``, or ``–`` when the run has no such variant."""
    accuracy = run.accuracy(variant)
    if accuracy is None:
        return "not applicable" if variant in run.not_applicable else "–"
    cell = f"{accuracy['accuracy']:.1%} [{accuracy['low']:.1%}–{accuracy['high']:.1%}]"
    if run.chance is not None and is_chance_level(accuracy, run.chance):
        cell += " chance level"
    return cell


def side_by_side_table(runs: list[SavedRun]) -> pd.DataFrame:
    """One row per variant, one column per run: accuracy with its 95% Wilson interval."""
    rows = []
    for variant in variants_of(runs):
        baseline = any((run.variants.get(variant) or {}).get("baseline") for run in runs)
        name = f"{variant} (no training)" if baseline else variant
        rows.append([name, *(accuracy_cell(run, variant) for run in runs)])
    return pd.DataFrame(rows, columns=["variant", *(run.label for run in runs)])


def runs_table(runs: list[SavedRun]) -> pd.DataFrame:
    """What each run is: model, base, split, examples and whether its questions are the first run's."""
    first = runs[0].questions if runs else None
    rows = []
    for i, run in enumerate(runs):
        if run.questions is None:
            same = "unknown (no fingerprint saved)"
        elif i == 0:
            same = "—"
        else:
            same = "yes" if run.questions == first else "no: other questions"
        rows.append(
            [run.label, run.model, run.source or "?", run.split, run.n, same, "yes" if run.correct else "no"]
        )
    columns = [
        "run",
        "model",
        "base",
        "split",
        "examples",
        f"same questions as {runs[0].name}" if runs else "",
        "answers saved",
    ]
    return pd.DataFrame(rows, columns=columns)


def settings_table(runs: list[SavedRun]) -> pd.DataFrame:
    """The training settings that differ between runs (the base model always does)."""
    differences = setting_differences(runs)
    return pd.DataFrame(
        [[key, *values] for key, values in differences.items()], columns=["setting", *(r.label for r in runs)]
    )


def paired_table(tests: list[PairedTest], alpha: float = 0.05) -> pd.DataFrame:
    """One row per (variant, run pair): discordant counts, exact p, Holm-adjusted p and a plain reading."""
    adjusted = holm([t.p_value for t in tests])
    rows = []
    for test, p_adj in zip(tests, adjusted):
        if p_adj < alpha:
            better = test.run_a if test.only_a > test.only_b else test.run_b
            reading = f"differ: better on {better}"
        else:
            reading = "no reliable difference"
        rows.append(
            [
                test.variant,
                test.run_a,
                test.run_b,
                test.only_a,
                test.only_b,
                format_p(test.p_value),
                format_p(p_adj),
                reading,
            ]
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def question_families(runs: list[SavedRun]) -> list[str]:
    """Every question family (the split's ``family`` column) any run reports accuracy for."""
    return sorted({f for run in runs for v in run.variants.values() for f in v["by_family"]})


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
        legend_name(run, variant): (run.variants.get(variant) or {}).get("by_family", {}) for run in runs
    }
    return backbone_accuracy_figure(by_run, question_families(runs), "question family")


def family_comparison(runs: list[SavedRun], variants: list[str]) -> dict[str, Any]:
    """A variant picker and its per-family chart across runs (nothing when no run has families)."""
    choices = [v for v in variants if any((r.variants.get(v) or {}).get("by_family") for r in runs)]
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
        "Runs are only paired where they answered exactly the same questions.",
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
        backbone_accuracy_figure({r.label: {v: r.accuracy(v) for v in variants} for r in runs}, variants),
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
