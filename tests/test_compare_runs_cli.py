"""``python -m vqa_demo.compare_runs``: the app's across-backbones tables as Markdown, from a terminal."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from vqa_demo.evaluation.run_tables import markdown_table, side_by_side_table
from vqa_demo.evaluation.saved_runs import load_runs


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vqa_demo.compare_runs", *args], capture_output=True, text=True, timeout=300
    )


def test_the_report_holds_the_apps_tables_and_is_written_to_out(app_assets, other_runs, tmp_path):
    out = tmp_path / "report.md"
    result = run_cli(
        str(app_assets.root), str(other_runs["vilt"]), str(other_runs["qwen"]), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == result.stdout
    runs, _ = load_runs([app_assets.root, other_runs["vilt"], other_runs["qwen"]])
    assert markdown_table(side_by_side_table(runs)) in result.stdout
    assert result.stdout.startswith("# 3 runs side by side\n")
    paired = result.stdout.split("## Paired McNemar tests")[1]
    assert paired.count("\n| ") == 1 + 13  # header + 5 + 4 + 4 variant pairs
    assert "## Notes" not in result.stdout


def test_unreadable_runs_are_notes_and_none_readable_is_an_error(other_runs, tmp_path):
    result = run_cli(str(other_runs["vilt"]), str(tmp_path))
    assert result.returncode == 0
    assert f"- {tmp_path} holds no comparison.json or metrics.json" in result.stdout
    result = run_cli(str(tmp_path))
    assert result.returncode == 2 and result.stdout.startswith("error: no run could be read:")


def test_markdown_cells_cannot_break_the_table():
    table = pd.DataFrame([["a|b", "two\nlines"]], columns=["x|y", "z"])
    assert markdown_table(table) == "| x\\|y | z |\n|---|---|\n| a\\|b | two lines |"
