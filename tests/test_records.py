"""The evaluation contract (issue 22.1): typed records, one reader, old files load, hostile files get a
sentence, and reading runs imports no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest

from tests.app_support import FakePredictor
from vqa_demo.data.jsonl import read_jsonl, write_jsonl
from vqa_demo.evaluation.record_files import read_predictions, read_summary
from vqa_demo.evaluation.records import ExampleRecord, RecordError, VariantEntry
from vqa_demo.ui import AppConfig
from vqa_demo.ui.assets import AppAssets
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.compare import build_compare_tab, comparison_data, summary_markdown
from vqa_demo.ui.tabs.error_browser import ErrorBrowser
from vqa_demo.ui.tabs.errors import build_errors_tab

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ROOT = Path(__file__).resolve().parent.parent


def test_shipped_files_read_back_exactly():
    raw = read_jsonl(ASSETS / "evaluation" / "predictions.jsonl")
    assert read_predictions(ASSETS / "evaluation" / "predictions.jsonl") == raw
    summary, entries = read_summary(ASSETS / "comparison.json")
    assert list(entries) == list(summary["variants"])
    for name, entry in entries.items():
        assert entry.to_json() == summary["variants"][name]
        assert entry.accuracy == summary["variants"][name]["accuracy"]


def test_files_written_by_todays_code_on_the_tiny_model_read_back_exactly(app_assets):
    folder = app_assets.root
    raw = read_jsonl(folder / "evaluation" / "predictions.jsonl")
    assert read_predictions(folder / "evaluation" / "predictions.jsonl") == raw
    summary, entries = read_summary(folder / "comparison.json")
    assert {n: e.to_json() for n, e in entries.items()} == summary["variants"]
    assert (
        entries["cond_gen"].value("scoring_accuracy")
        and "scoring_accuracy" not in entries["swag-attentive"].metrics
    )


def test_unknown_keys_are_kept_and_missing_optional_ones_default():
    line = {"id": 7, "question": "q?", "options": ["a", "b", "c"], "gold": 1, "later_key": [1],
            "variants": {"v": {"choice": 1, "probabilities": [0.2, 0.7, 0.1], "new_score": 3}}}  # fmt: skip
    record = ExampleRecord.from_json(line, "line 4 ", position=3)
    assert record.index == 3 and record.metadata == {} and record.file_name is None
    answer = record.variants["v"]
    assert answer.confidence == 0.7 and answer.truncated is False and answer.option_scores == [0.2, 0.7, 0.1]
    written = record.to_json()
    assert written["later_key"] == [1] and written["variants"]["v"]["new_score"] == 3
    assert ExampleRecord.from_json(written).to_json() == written
    # metrics.json written before by_family and calibration_ece were registry metrics
    entry = VariantEntry.from_json(
        {
            "accuracy": {"accuracy": 0.5, "low": 0.2, "high": 0.8, "n": 4, "correct": 2},
            "by_metadata": {"family": {"clock": {"accuracy": 0.5, "low": 0.2, "high": 0.8, "n": 4}}},
            "calibration": {"ece": 0.125, "reliability": []},
            "agreement_note": "x",
        }  # fmt: skip
    )
    assert set(entry.by_family) == {"clock"} and entry.value("calibration_ece") == 0.125
    assert entry.extra == {"agreement_note": "x"} and entry.to_json()["agreement_note"] == "x"


def test_a_missing_required_key_is_named():
    missing = {"id": 1, "options": ["a", "b"], "variants": {}}
    with pytest.raises(ValueError, match="'line 2 question' is missing"):
        ExampleRecord.from_json(missing, "line 2 ")


# -- hostile files, through the app's real readers -----------------------------------------------------
def edit_line(edit):
    def change(rows, summary):
        edit(rows[0])

    return change


def edit_summary(edit):
    def change(rows, summary):
        edit(summary)

    return change


def first_calibration(summary):
    return summary["variants"]["cond_gen"].setdefault("calibration", {"served": {}})


HOSTILE = {
    "probabilities-text": (
        edit_line(lambda r: r["variants"]["cond_gen"].update(probabilities="high")),
        "predictions.jsonl could not be read: 'line 1 variants.cond_gen.probabilities' must be a list of numbers",
    ),
    "choice-out-of-range": (
        edit_line(lambda r: r["variants"]["swag-attentive"].update(choice=7)),
        "'line 1 variants.swag-attentive.choice' must be a whole number from 0 to 3",
    ),
    "probabilities-short": (
        edit_line(lambda r: r["variants"]["cond_gen"].update(probabilities=[0.5, 0.5])),
        "'line 1 variants.cond_gen.probabilities' has 2 numbers; 4 expected",
    ),
    "question-missing": (edit_line(lambda r: r.pop("question")), "'line 1 question' is missing"),
    "gold-out-of-range": (edit_line(lambda r: r.update(gold=4)), "'line 1 gold' must be a whole number"),
    "temperature-text": (
        edit_summary(lambda s: first_calibration(s).update(served={"temperature": "warm"})),
        "comparison.json is not a valid evaluation summary: 'variants.cond_gen.calibration.served.temperature'",
    ),
    "rules-list": (
        edit_summary(lambda s: s["variants"]["cond_gen"].update(decision_rules={"rules": ["loglik_sum"]})),
        "'variants.cond_gen.decision_rules.rules' must be an object",
    ),
    "mcnemar-p-above-one": (
        edit_summary(lambda s: next(iter(s["mcnemar"].values())).update(p_value=3)),
        "must be a number from 0 to 1",
    ),
    "agreement-ragged": (
        edit_summary(lambda s: s["agreement"]["matrix"].pop()),
        "'agreement.matrix' must be a 6 by 6 table",  # the shipped five variants and zero_shot
    ),
    "position-rows-text": (
        edit_summary(
            lambda s: s["variants"]["swag-attentive"]["position_bias"].update(accuracy_by_gold_position="A")
        ),
        "'variants.swag-attentive.position_bias.accuracy_by_gold_position' must be an array",
    ),
    "curve-loss-text": (
        edit_summary(lambda s: s["variants"]["cond_gen"]["curve"][0].update(loss="low")),
        "'variants.cond_gen.curve.0.loss' must be a number",
    ),
}


@pytest.fixture(scope="module")
def assets_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "assets"
    shutil.copytree(ASSETS, folder, ignore=shutil.ignore_patterns("base", "checkpoints", "runs", "examples"))
    return folder


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_one_sentence_and_both_tabs_still_build(assets_copy, case):
    change, sentence = HOSTILE[case]
    rows = read_jsonl(ASSETS / "evaluation" / "predictions.jsonl")
    summary = json.loads((ASSETS / "comparison.json").read_text())
    change(rows, summary)
    write_jsonl(assets_copy / "evaluation" / "predictions.jsonl", rows)
    (assets_copy / "comparison.json").write_text(json.dumps(summary))
    assets = AppAssets.load(AppConfig(assets=assets_copy))
    named = [note for note in assets.notes if sentence in note]
    assert len(named) == 1 and "\n" not in named[0], assets.notes
    with gr.Blocks():
        build_compare_tab(assets)
        build_errors_tab(ErrorBrowser(PredictorHolder(loader=FakePredictor), assets))
    if "predictions.jsonl" in named[0]:
        assert assets.records == [] and assets.comparison is not None
    else:
        assert assets.comparison is None and len(assets.records) == len(rows)
        assert summary_markdown(comparison_data(assets), [], assets.notes).endswith(named[0])


@pytest.mark.parametrize("content", [b"\xff\xfe not text", b'{"id": 1,', b"[1, 2]\n"])
def test_unreadable_prediction_lines_are_refused_with_the_file_and_line(tmp_path, content):
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(content)
    with pytest.raises(RecordError, match="predictions.jsonl could not be read") as error:
        read_predictions(path)
    assert "\n" not in str(error.value)


# -- reading runs imports no torch -----------------------------------------------------------------
def test_importing_compare_runs_loads_no_torch():
    code = "import vqa_demo.compare_runs, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_reading_a_run_and_printing_its_report_loads_no_torch(app_assets):
    code = (
        "import sys; from vqa_demo.evaluation.saved_runs import load_runs; "
        "from vqa_demo.evaluation.run_report import report; "
        f"runs, notes = load_runs([{str(app_assets.root)!r}]); report(runs, notes); "
        "assert runs and not {'torch', 'transformers'} & set(sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_compare_runs_help_loads_neither_pandas_nor_scipy():
    code = (
        "import sys, runpy; sys.argv = ['compare_runs', '--help']\n"
        "try:\n    runpy.run_module('vqa_demo.compare_runs', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert not {'torch', 'pandas', 'scipy'} & set(sys.modules), 'heavy import'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
