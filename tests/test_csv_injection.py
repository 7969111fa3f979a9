"""Spreadsheet formula injection (issue 21.6): every CSV we write neutralises formula-like cells,
through the real ``vqa_demo.evaluate`` and ``training.mc_from_open`` CLIs and the Errors tab export."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from tests.hostile_files import run_module, write_tiny_base
from tests.test_mc_from_open import make_open_split
from vqa_demo.data.csv_cells import csv_cell, read_cell
from vqa_demo.data.splits import load_split
from vqa_demo.data.writers import write_metadata
from vqa_demo.ui.tabs.error_data import write_csv

FORMULAS = [
    '=HYPERLINK("http://example.com/x","click")',
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
    "'=already quoted",
]
NUMBERS_AND_TEXT = ["-2", "-0.5", "-1e5", "plain", "", "a=b", "2+3"]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_cells_are_neutralised_and_read_back(text):
    written = csv_cell(text)
    assert written.startswith("'") and written[1:] == text
    assert read_cell(written) == text


@pytest.mark.parametrize("text", NUMBERS_AND_TEXT)
def test_numbers_and_plain_text_are_left_alone(text):
    assert csv_cell(text) == text and read_cell(text) == text


def raw_cells(path) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))) for cell in row]


def assert_no_formula(cells: list[str]) -> None:
    leads = ("=", "+", "@", "\t", "\r")
    bad = [c for c in cells if c.startswith(leads) or (c.startswith("-") and not c.lstrip("-").isdigit())]
    assert not bad, bad


@pytest.mark.slow  # a fresh interpreter running the CLI
def test_evaluate_cli_submission_neutralises_file_names(tmp_path):
    write_tiny_base(tmp_path, variant="multi_class-last_token")
    data = tmp_path / "data"
    data.mkdir()
    names = ["=1+2.png", "+SUM(1).png", "-2+3.png", "@SUM(1).png", "=cmd|calc.png", "-5.png"]
    rows = []
    for i, name in enumerate(names):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(data / name)
        rows.append(
            {
                "file_name": name,
                "question": "=which?",
                "option1": "-1",
                "option2": "+b",
                "option3": "c",
                "option4": "@d",
            }
        )
    write_metadata(data, rows)
    assert [ex.file_name for ex in load_split(data)] == names  # our reader sees the original names
    result = run_module(
        "vqa_demo.evaluate",
        *("--checkpoints", str(tmp_path / "checkpoints"), "--base", str(tmp_path / "base")),
        *("--data", str(data), "--out", str(tmp_path / "out")),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    submission = tmp_path / "out" / "submission_multi_class-last_token.csv"
    cells = raw_cells(submission)
    assert_no_formula(cells)
    written = [row["file_name"] for row in csv.DictReader(submission.open(encoding="utf-8"))]
    assert written == [csv_cell(n) for n in names] and "-5.png" in [read_cell(w) for w in written]


def test_mc_from_open_cli_neutralises_every_cell(tmp_path):
    pairs = [("=what animal?", a) for a in ("=cat", "+dog", "-horse", "@cow", "-3")]
    pairs += [("how many?", a) for a in ("2", "=1+1", "4", "5")]
    source = make_open_split(tmp_path / "open", pairs, extra={"=note": "@x", "owner": "-2+3"})
    out = tmp_path / "mc"
    result = run_module("training.mc_from_open", "--source", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    cells = raw_cells(out / "metadata.csv")
    assert_no_formula(cells)
    assert "'=cat" in cells and "'=note" in cells and "-3" in cells
    split = load_split(out)  # the neutralised file still reads back as the original text
    assert {ex.question for ex in split} == {"=what animal?", "how many?"}
    assert {ex.metadata["=note"] for ex in split} == {"@x"}


def test_errors_tab_export_neutralises_question_options_and_file_name(tmp_path):
    rows = [
        {
            "#": 1,
            "file_name": "=HYPERLINK(1).png",
            "family": "@fam",
            "question": "+SUM(1)",
            "options": ["=a", "-b", "-4", "d"],
            "gold_index": 0,
            "misses": [{"variant": "cond_gen", "choice": 1, "confidence": 0.5}],
        }
    ]
    cells = raw_cells(write_csv(rows, tmp_path))
    assert_no_formula(cells)
    assert "'=HYPERLINK(1).png" in cells


@pytest.mark.slow  # a fresh interpreter running the CLI
def test_huge_option_column_number_is_one_line_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (8, 8)).save(data / "a.png")
    header = "file_name,question,option1,option2,option99999999999999999999\n"
    (data / "metadata.csv").write_text(header + "a.png,q,x,y,z\n")
    result = run_module("vqa_demo.evaluate", "--data", str(data), "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "past option8" in lines[0], result.stderr
