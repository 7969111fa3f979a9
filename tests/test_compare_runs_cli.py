"""``python -m vqa_demo.compare_runs``: the app's across-backbones tables as Markdown, from a terminal."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from vqa_demo.evaluation import run_report
from vqa_demo.evaluation.run_tables import markdown_table, side_by_side_table
from vqa_demo.evaluation.saved_runs import load_runs


@dataclass
class Result:
    returncode: int
    stdout: str


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*args)``: the command's ``main`` in this process (a subprocess pays ~20 s of imports)."""

    def run(*args: str) -> Result:
        code = run_report.main(run_report.parse_args(list(args)))
        return Result(code, capsys.readouterr().out)

    return run


def test_the_report_holds_the_apps_tables_and_is_written_to_out(app_assets, other_runs, tmp_path, run_cli):
    out = tmp_path / "report.md"
    result = run_cli(
        str(app_assets.root), str(other_runs["vilt"]), str(other_runs["qwen"]), "--out", str(out)
    )
    assert result.returncode == 0
    assert out.read_text() == result.stdout
    runs, _ = load_runs([app_assets.root, other_runs["vilt"], other_runs["qwen"]])
    assert markdown_table(side_by_side_table(runs)) in result.stdout
    assert result.stdout.startswith("# 3 runs side by side\n")
    paired = result.stdout.split("## Paired McNemar tests")[1]
    assert paired.count("\n| ") == 1 + 13  # header + 5 + 4 + 4 variant pairs
    assert "## Notes" not in result.stdout


def test_unreadable_runs_are_notes_and_none_readable_is_an_error(other_runs, tmp_path, run_cli):
    result = run_cli(str(other_runs["vilt"]), str(tmp_path))
    assert result.returncode == 0
    assert f"- {tmp_path} holds no comparison.json or metrics.json" in result.stdout
    result = run_cli(str(tmp_path))
    assert result.returncode == 2 and result.stdout.startswith("error: no run could be read:")


def test_markdown_cells_cannot_break_the_table():
    table = pd.DataFrame([["a|b", "two\nlines"]], columns=["x|y", "z"])
    assert markdown_table(table) == "| x\\|y | z |\n|---|---|\n| a\\|b | two lines |"


@pytest.mark.slow
def test_the_module_runs_as_a_command(other_runs):
    command = [sys.executable, "-m", "vqa_demo.compare_runs", str(other_runs["vilt"])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# 1 run") and "vilt" in result.stdout.lower()
