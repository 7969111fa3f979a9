"""Saved runs side by side as one Markdown report: the app's "Across backbones" tables, for a terminal.

Example::

    python -m vqa_demo.compare_runs assets runs/cmp-llava runs/cmp-vilt --out report.md

Each RUN is the ``--out`` folder of ``training.compare`` or ``vqa_demo.evaluate`` (or the app's assets
folder), read by :mod:`vqa_demo.evaluation.saved_runs`; no model is loaded. The report lists the runs
(model, base, split, examples, same questions), every variant's accuracy with its 95% interval per run,
the training settings that differ and the paired McNemar tests between runs that answered the same
questions (Holm-adjusted), then every note (a run that could not be read, runs that cannot be paired).
It is printed, and written to ``--out`` when given. Exit status 2 when no run could be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vqa_demo.evaluation.saved_runs import SavedRun


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="run folders (or their comparison.json / metrics.json)")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file")
    return parser.parse_args(argv)


def report(runs: list[SavedRun], notes: list[str]) -> str:
    """The Markdown report of ``runs`` (at least one) with ``notes`` at the end."""
    # Imported here, not at the top: ``--help`` then answers without loading pandas and scipy.
    from vqa_demo.evaluation.run_tables import (
        across_runs_metrics,
        markdown_table,
        metric_table,
        paired_table,
        runs_table,
        settings_table,
        side_by_side_table,
    )
    from vqa_demo.evaluation.saved_runs import paired_tests

    tests, pairing_notes = paired_tests(runs)
    sections = [
        f"# {len(runs)} runs side by side",
        "## Runs\n\n" + markdown_table(runs_table(runs)),
        "## Validation accuracy with 95% Wilson interval\n\n"
        "*chance level*: an exact binomial test cannot tell the variant from guessing.\n\n"
        + markdown_table(side_by_side_table(runs)),
    ]
    for metric in across_runs_metrics():
        sections.append(f"## {metric.display.column}\n\n" + markdown_table(metric_table(runs, metric)))
    settings = settings_table(runs)
    if len(settings):
        sections.append("## Settings that differ\n\n" + markdown_table(settings))
    if tests:
        sections.append(
            "## Paired McNemar tests (same variant, same questions; Holm-adjusted over all)\n\n"
            + markdown_table(paired_table(tests))
        )
    all_notes = notes + pairing_notes
    if all_notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {note}" for note in all_notes))
    return "\n\n".join(sections) + "\n"


def main(args: argparse.Namespace) -> int:
    from vqa_demo.evaluation.saved_runs import load_runs

    runs, notes = load_runs(args.runs)
    if not runs:
        print("error: no run could be read:\n" + "\n".join(f"- {note}" for note in notes))
        return 2
    text = report(runs, notes)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0
