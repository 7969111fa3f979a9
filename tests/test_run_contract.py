"""Saved runs against their typed contract (issue 21.4): a malformed run folder is listed with its
reason, never an exception, in ``python -m vqa_demo.compare_runs`` and in the app's served page.

The fuzz swaps, one key at a time, every key of the shipped ``assets/comparison.json`` and of a
``predictions.jsonl`` record for a value of another JSON type (seeded per key). A key the run reader
uses must give a note naming it; any other key must leave the run loading as before.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import zlib
from pathlib import Path

import orjson
import pytest

from tests.app_support import FakePredictor, launch
from tests.hostile_files import run_module
from tests.test_compare_backbones import component_values, served_config
from vqa_demo.data.jsonl import read_jsonl, write_jsonl
from vqa_demo.evaluation.run_checks import json_kind
from vqa_demo.evaluation.run_report import report
from vqa_demo.evaluation.run_tables import runs_table, settings_table, side_by_side_table
from vqa_demo.evaluation.saved_runs import load_runs
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.holder import PredictorHolder

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SWAPS = [[1, 2], {"x": 1}, "text", 10**30, None, True, 0.5, -3]
# Swaps the contract allows (an integer id, an unlabelled row, no fingerprint): not faults.
ALSO_VALID = {"id": [-3], "gold": [None], "questions": [None], "correct": [None], "file_name": [None],
              "generated_text": [None], "cosine": [None], "calibration_ece": [None], "best_step": [None],
              "train_seconds": [None], "checkpoint": [None], "uniformity_p_value": [None], "step": [None],
              "epoch": [None], "loss": [None], "seconds": [None], "accuracy": [None], "low": [None],
              "high": [None]}  # fmt: skip
SUMMARY_KEYS = [
    ("variants",),
    ("variants", "*"),
    ("variants", "*", "accuracy"),
    ("variants", "*", "accuracy", "*"),
    ("variants", "*", "by_family"),
    ("variants", "*", "by_family", "*"),
    ("variants", "*", "by_family", "*", "*"),
    ("variants", "*", "training"),
    ("variants", "*", "position_bias"),
    ("variants", "*", "position_bias", "accuracy_by_gold_position"),
    *[
        ("variants", "*", "position_bias", "accuracy_by_gold_position", "*", k)
        for k in ("position", "accuracy", "low", "high")
    ],
    *[
        ("variants", "*", "position_bias", k)
        for k in ("predicted_position_rate", "gold_position_rate", "uniformity_p_value")
    ],
    ("variants", "*", "calibration_ece"),
    ("variants", "*", "curve"),
    *[("variants", "*", "curve", "*", k) for k in ("step", "epoch", "loss", "accuracy", "seconds")],
    ("variants", "*", "best_step"),
    ("variants", "*", "train_seconds"),
    ("variants", "*", "checkpoint"),
    ("variants", "*", "text_metrics"),
    ("variants", "*", "text_metrics", "*"),
    ("variants", "*", "scoring_accuracy"),
    ("variants", "*", "scoring_accuracy", "*"),
    ("variants", "*", "scoring_accuracy", "*", "*"),
    ("agreement",),
    ("agreement", "variants"),
    ("agreement", "matrix"),
    ("mcnemar",),
    ("mcnemar", "*"),
    ("mcnemar", "*", "*"),
    ("setting",),
    ("setting", "base"),
    ("split",),
    ("n",),
    ("questions",),
    ("not_applicable",),
    ("not_applicable", "*"),
    ("backbone",),
    ("backbone", "model"),
    ("backbone", "source"),
]
RECORD_KEYS = [("index",), ("id",), ("file_name",), ("question",), ("options",), ("gold",), ("metadata",),
               ("variants",), ("variants", "*"),
               *[("variants", "*", key) for key in ("choice", "correct", "confidence", "option_scores",
                 "probabilities", "truncated", "generated_text", "cosine", "loglik_mean", "loglik_sum")]]  # fmt: skip


# Issue 24's keys in the regenerated default, checked by the typed records (issue 22): exact paths, as
# for some of them a swapped value is still accepted (a negative ECE, a null circular_choices).
_CHECKED = json.loads(
    (Path(__file__).parent / "data" / "checked_keys_since_selection_split.json").read_text()
)
SUMMARY_KEYS += [tuple(path) for path in _CHECKED["summary"]]
RECORD_KEYS += [tuple(path) for path in _CHECKED["records"]]


def shipped_summary() -> dict:
    return json.loads((ASSETS / "comparison.json").read_text())


def shipped_records() -> list[dict]:
    return read_jsonl(ASSETS / "evaluation" / "predictions.jsonl")


def write_run(folder: Path, summary: dict, records: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(summary))
    if records is not None:
        (folder / "evaluation").mkdir()
        write_jsonl(folder / "evaluation" / "predictions.jsonl", records)
    return folder


def key_paths(value, prefix=()) -> list[tuple]:
    """Every dict key path in ``value`` (lists: their first element stands for all)."""
    paths = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.append((*prefix, key))
            paths += key_paths(item, (*prefix, key))
    elif isinstance(value, list) and value:
        paths += key_paths(value[0], (*prefix, 0))
    return paths


def matches(path: tuple, patterns: list[tuple]) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path)) for p in patterns)


def swap(data, path: tuple):
    """``data`` with the value at ``path`` replaced by a seeded value of another JSON type."""
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    original = parent[path[-1]]
    rng = random.Random(zlib.crc32(repr(path).encode()))
    allowed = ALSO_VALID.get(path[-1], [])
    candidates = [v for v in SWAPS if json_kind(v) != json_kind(original) and v not in allowed]
    candidates += [v for v in (10**30, -3) if v != original and json_kind(original) == "a number"]
    parent[path[-1]] = rng.choice(candidates)
    return data, parent[path[-1]]


def loads_cleanly(folder: Path) -> tuple[list, list[str]]:
    """``load_runs`` plus everything shown from it (the report, the tables as Gradio serialises them)."""
    runs, notes = load_runs([folder])
    if runs:
        report(runs, notes)
        for table in (runs_table(runs), side_by_side_table(runs), settings_table(runs)):
            orjson.dumps(table.to_dict("split"), option=orjson.OPT_SERIALIZE_NUMPY)
    return runs, notes


def dotted(path: tuple) -> str:
    return ".".join(str(k) for k in path)


@pytest.mark.slow  # a fuzz of every key
def test_every_summary_key_swapped_gives_a_reason_or_loads(tmp_path):
    summary = shipped_summary()
    paths = key_paths(summary)
    assert len(paths) > 300
    reasons = 0
    for number, path in enumerate(paths):
        fuzzed, value = swap(summary, path)
        runs, notes = loads_cleanly(write_run(tmp_path / f"run{number}", fuzzed))
        text = "\n".join(notes)
        if matches(path, SUMMARY_KEYS):
            assert f"'{dotted(path)}" in text or ("no accuracy" in text and path[-1] == "accuracy"), (
                path,
                value,
            )
            reasons += 1
        else:
            assert len(runs) == 1 and not notes, (path, value, notes)
    assert reasons > 100


@pytest.mark.slow  # a fuzz of every key
def test_every_prediction_key_swapped_gives_a_reason_or_loads(tmp_path):
    summary, records = shipped_summary(), shipped_records()
    paths = key_paths(records[0])
    assert len(paths) > 40
    for number, path in enumerate(paths):
        row = random.Random(number).randrange(len(records))
        fuzzed, value = swap(records[row], path)
        runs, notes = loads_cleanly(
            write_run(tmp_path / f"run{number}", summary, [*records[:row], fuzzed, *records[row + 1 :]])
        )
        assert len(runs) == 1, (path, notes)
        if matches(path, RECORD_KEYS):
            expected = f"line {row + 1} {dotted(path)}"
            assert len(notes) == 1 and "could not be read" in notes[0] and expected in notes[0], (
                path,
                value,
                notes,
            )
            assert runs[0].correct == {}
        else:
            assert not notes and len(runs[0].correct) == len(summary["variants"]), (path, value, notes)


def crashing_runs(root: Path) -> dict[str, tuple[Path, str]]:
    """The six run folders of issue 21 that stopped the app and the CLI: folder -> key named."""
    summary, records = shipped_summary(), shipped_records()
    cases = {}

    def case(name, key, edit_summary=None, edit_record=None):
        fuzzed, rows = copy.deepcopy(summary), copy.deepcopy(records)
        if edit_summary:
            edit_summary(fuzzed)
        if edit_record:
            edit_record(rows[0])
        cases[name] = (write_run(root / name, fuzzed, rows), key)

    case("setting-list", "'setting' must be an object", lambda s: s.update(setting=["lr", 0.1]))
    case(
        "by-family-list",
        "by_family' must be an object",
        lambda s: s["variants"]["cond_gen"].update(by_family=[{"clock": 0.5}]),
    )

    def by_metadata_list(s):
        entry = s["variants"]["cond_gen"]
        del entry["by_family"]
        entry["by_metadata"] = ["family"]

    case("by-metadata-list", "by_metadata' must be an object", by_metadata_list)
    case("options-int", "line 1 options' must be a list", edit_record=lambda r: r.update(options=4))
    case(
        "variants-list",
        "line 1 variants' must be an object",
        edit_record=lambda r: r.update(variants=[{"cond_gen": {}}]),
    )
    case("n-huge", "'n' must be a whole number", lambda s: s.update(n=10**30))
    return cases


@pytest.mark.slow  # a fresh interpreter running the CLI
def test_the_six_crashing_runs_are_listed_by_the_cli(tmp_path):
    cases = crashing_runs(tmp_path)
    good = write_run(tmp_path / "good", shipped_summary(), shipped_records())
    result = run_module("vqa_demo.compare_runs", str(good), *(str(folder) for folder, _ in cases.values()))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    notes = result.stdout.split("## Notes")[1]
    for name, (_, key) in cases.items():
        assert any(name in line and key in line for line in notes.splitlines()), (name, notes)


@pytest.mark.slow  # a real server on loopback
def test_the_app_serves_with_the_six_crashing_runs_listed(tmp_path):
    cases = crashing_runs(tmp_path / "runs")
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS, assets, ignore=shutil.ignore_patterns("base", "checkpoints"))
    shutil.move(tmp_path / "runs", assets / "runs")  # read automatically, as on a Space
    config = AppConfig(assets=assets)
    demo = build_demo(config, holder=PredictorHolder(loader=FakePredictor))
    try:
        values = component_values(served_config(launch(demo, config)))
    finally:
        demo.close()
    intro = values["compare-backbones-intro"]
    for name, (_, key) in cases.items():
        assert any(name in line and key in line for line in intro.splitlines()), (name, intro)


@pytest.mark.parametrize("n", [10**30, -1, 2.5, True, "300"])
def test_counts_are_bounded_integers(tmp_path, n):
    summary = shipped_summary()
    summary["variants"]["cond_gen"]["accuracy"]["n"] = n
    runs, notes = loads_cleanly(write_run(tmp_path / "run", summary))
    assert (
        "cond_gen" not in runs[0].variants
        and "'variants.cond_gen.accuracy.n' must be a whole number" in notes[0]
    )
