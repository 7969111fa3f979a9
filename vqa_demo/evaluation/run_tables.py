"""Saved runs side by side as tables: what each run is, accuracy per variant and run, settings, paired tests.

Plain ``pandas.DataFrame`` s of :class:`~vqa_demo.evaluation.saved_runs.SavedRun` s, shared by the app's
Compare tab (:mod:`vqa_demo.ui.tabs.compare_backbones`) and ``python -m vqa_demo.compare_runs``, which
prints them as Markdown (:func:`markdown_table`), so both show the same numbers.
"""

from __future__ import annotations

import pandas as pd

from vqa_demo.evaluation.chance import format_p, is_chance_level
from vqa_demo.evaluation.metric_registry import METRICS, Metric
from vqa_demo.evaluation.metrics import holm
from vqa_demo.evaluation.saved_runs import (
    PairedTest,
    SavedRun,
    question_keys,
    setting_differences,
    variants_of,
)

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
        baseline = any(run.variants[variant].baseline for run in runs if variant in run.variants)
        name = f"{variant} (no training)" if baseline else variant
        rows.append([name, *(accuracy_cell(run, variant) for run in runs)])
    return pd.DataFrame(rows, columns=["variant", *(run.label for run in runs)])


def metric_cell(run: SavedRun, variant: str, metric: Metric) -> str:
    """The metric's value for ``variant`` on ``run`` as its registry formats it (``–`` when not saved)."""
    entry = run.variants.get(variant)
    value = entry.value(metric.name) if entry is not None else None
    return "–" if value is None else metric.format(value)


def across_runs_metrics() -> list[Metric]:
    """The registry metrics shown as a table of every run (each one table, in registry order)."""
    return [m for m in METRICS.values() if m.display is not None and m.display.across_runs]


def metric_table(runs: list[SavedRun], metric: Metric) -> pd.DataFrame:
    """One row per variant, one column per run: ``metric`` as its registry entry formats it."""
    rows = [[v, *(metric_cell(run, v, metric) for run in runs)] for v in variants_of(runs)]
    return pd.DataFrame(rows, columns=["variant", *(run.label for run in runs)])


def same_questions(first: SavedRun, run: SavedRun) -> str:
    """``yes``, ``12 of 16 shared`` or ``no: other questions`` (``unknown`` without the files to tell)."""
    if first.questions is None or run.questions is None:
        return "unknown (no fingerprint saved)"
    if run.questions == first.questions:
        return "yes"
    shared = len(question_keys(first) & question_keys(run))
    return f"{shared} of {len(question_keys(run))} shared" if shared else "no: other questions"


def runs_table(runs: list[SavedRun]) -> pd.DataFrame:
    """What each run is: model, base, split, examples and whether its questions are the first run's."""
    rows = []
    for i, run in enumerate(runs):
        same = "—" if i == 0 else same_questions(runs[0], run)
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


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub Markdown table (``|`` in a cell escaped)."""

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
