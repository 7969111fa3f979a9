"""Saved runs read back for the Compare tab's "Across backbones": layouts, model names, pairing, bad files.

The runs are real evaluations (random variants on the tiny PaliGemma 2, ViLT and Qwen2.5-VL models, on
one validation split); paired tests are checked against counts taken straight from the
``predictions.jsonl`` files and against scipy's exact binomial test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scipy.stats import binomtest

from vqa_demo.data.jsonl import read_jsonl, write_jsonl
from vqa_demo.evaluation import saved_runs
from vqa_demo.evaluation.records import questions_fingerprint
from vqa_demo.evaluation.run_tables import runs_table
from vqa_demo.evaluation.saved_runs import (
    RunFileError,
    load_run,
    load_runs,
    model_of_source,
    paired_tests,
    setting_differences,
    variants_of,
)

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIERS = ["multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]


def test_a_compare_folder_reads_back_with_its_model_and_answers(app_assets, other_runs):
    run = load_run(other_runs["vilt"])
    comparison = json.loads((other_runs["vilt"] / "comparison.json").read_text())
    assert run.model == "ViLT" and run.source == "tiny:vilt" and run.label == "vilt (ViLT)"
    assert list(run.variants) == [*CLASSIFIERS, "vilt-answer-classifier"]
    assert run.variants["vilt-answer-classifier"].baseline is True
    assert run.not_applicable == {"cond_gen": comparison["not_applicable"]["cond_gen"]}
    assert run.accuracy("swag-attentive") == comparison["variants"]["swag-attentive"]["accuracy"]
    records = read_jsonl(other_runs["vilt"] / "evaluation" / "predictions.jsonl")
    assert run.questions == comparison["questions"] == questions_fingerprint(records)
    for name in run.variants:
        assert sum(run.correct[name].values()) == run.accuracy(name)["correct"]
    assert run.chance == pytest.approx(1 / 4)


def test_an_evaluate_folder_and_a_summary_path_read_the_same(other_runs, tmp_path):
    """``vqa_demo.evaluate --out`` holds metrics.json + predictions.jsonl side by side."""
    folder = tmp_path / "eval-out"
    folder.mkdir()
    shutil.copy(other_runs["qwen"] / "evaluation" / "metrics.json", folder / "metrics.json")
    shutil.copy(other_runs["qwen"] / "evaluation" / "predictions.jsonl", folder / "predictions.jsonl")
    from_compare = load_run(other_runs["qwen"])
    for source in (folder, folder / "metrics.json"):
        run = load_run(source)
        assert run.model == "Qwen2.5-VL" and run.name == "eval-out"
        assert {n: v.accuracy for n, v in run.variants.items()} == {
            n: v.accuracy for n, v in from_compare.variants.items()
        }
        assert run.variants["cond_gen"].by_family == from_compare.variants["cond_gen"].by_family
        assert run.correct == from_compare.correct


def test_the_shipped_default_reads_as_a_run():
    """Every row of the shipped comparison (the five variants and zero_shot) reads back with its figures."""
    run = load_run(ROOT / "assets")
    comparison = json.loads((ROOT / "assets" / "comparison.json").read_text())
    assert run.model == "PaliGemma 2" and run.source == "assets/base"
    assert run.n == 300 and list(run.variants) == list(comparison["variants"]) and len(run.variants) == 6
    for name, variant in comparison["variants"].items():
        assert run.accuracy(name) == variant["accuracy"]
        assert sum(run.correct[name].values()) == variant["accuracy"]["correct"]


def test_paired_tests_count_the_questions_only_one_run_got_right(app_assets, other_runs):
    runs, notes = load_runs([(app_assets.root, "served"), other_runs["vilt"], other_runs["qwen"]])
    tests, pairing_notes = paired_tests(runs)
    assert notes == [] and pairing_notes == []
    # PaliGemma-Qwen share all five variants; ViLT shares the four classifiers with each
    assert len(tests) == 5 + 4 + 4
    assert [t.variant for t in tests] == sorted((t.variant for t in tests), key=variants_of(runs).index)
    answers = {
        label: {
            (r["id"], r["question"]): r["variants"]
            for r in read_jsonl(folder / "evaluation" / "predictions.jsonl")
        }
        for label, folder in [
            ("served (PaliGemma 2)", app_assets.root),
            ("vilt (ViLT)", other_runs["vilt"]),
            ("qwen (Qwen2.5-VL)", other_runs["qwen"]),
        ]
    }
    for test in tests:
        a, b = answers[test.run_a], answers[test.run_b]
        only_a = sum(a[q][test.variant]["correct"] and not b[q][test.variant]["correct"] for q in a)
        only_b = sum(b[q][test.variant]["correct"] and not a[q][test.variant]["correct"] for q in a)
        assert (test.only_a, test.only_b, test.n) == (only_a, only_b, len(a))
        expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert test.p_value == pytest.approx(expected)


def test_pairing_follows_the_questions_not_the_file_order(other_runs, tmp_path):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(other_runs["qwen"], shuffled)
    predictions = shuffled / "evaluation" / "predictions.jsonl"
    write_jsonl(predictions, list(reversed(read_jsonl(predictions))))
    runs, _ = load_runs([other_runs["vilt"], shuffled])
    reference, _ = load_runs([other_runs["vilt"], other_runs["qwen"]])
    as_counts = [
        [(t.variant, t.only_a, t.only_b, t.p_value) for t in paired_tests(r)[0]] for r in (runs, reference)
    ]
    assert as_counts[0] == as_counts[1] and len(as_counts[0]) == 4


def subset_run(source: Path, out: Path, keep: int) -> Path:
    """``source`` as if evaluated on its first ``keep`` questions only (summary fingerprint updated)."""
    shutil.copytree(source, out)
    predictions = out / "evaluation" / "predictions.jsonl"
    records = read_jsonl(predictions)[:keep]
    write_jsonl(predictions, records)
    comparison = json.loads((out / "comparison.json").read_text())
    comparison["questions"] = questions_fingerprint(records)
    (out / "comparison.json").write_text(json.dumps(comparison))
    return out


def test_runs_on_part_of_the_questions_pair_on_those(other_runs, tmp_path):
    fewer = subset_run(other_runs["qwen"], tmp_path / "fewer", keep=6)
    runs, _ = load_runs([other_runs["vilt"], fewer])
    tests, notes = paired_tests(runs)
    assert notes == [
        "vilt and fewer share 6 of their questions (12 and 6): their paired tests use those only"
    ]
    assert len(tests) == 4 and {t.n for t in tests} == {6}
    full, _ = load_runs([other_runs["vilt"], other_runs["qwen"]])
    shared = {k for k in full[1].correct["swag-attentive"] if k in runs[1].correct["swag-attentive"]}
    a, b = full[0].correct["swag-attentive"], full[1].correct["swag-attentive"]
    test = next(t for t in tests if t.variant == "swag-attentive")
    assert (test.only_a, test.only_b) == (
        sum(a[k] and not b[k] for k in shared),
        sum(b[k] and not a[k] for k in shared),
    )
    assert runs_table(runs).iloc[1, 5] == "6 of 6 shared"


def test_runs_on_other_questions_are_not_paired(other_runs, app_assets, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(other_runs["qwen"], moved)
    predictions = moved / "evaluation" / "predictions.jsonl"
    records = read_jsonl(predictions)
    for record in records:
        record["id"] = "other-" + record["id"]
    write_jsonl(predictions, records)
    comparison = json.loads((moved / "comparison.json").read_text())
    comparison["questions"] = questions_fingerprint(records)
    (moved / "comparison.json").write_text(json.dumps(comparison))
    runs, _ = load_runs([other_runs["vilt"], moved])
    assert paired_tests(runs) == (
        [],
        ["vilt and moved answered different questions: compare their intervals, not paired tests"],
    )
    assert runs_table(runs).iloc[1, 5] == "no: other questions"


def test_predictions_of_another_evaluation_are_left_out(other_runs, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(other_runs["qwen"], mixed)
    predictions = mixed / "evaluation" / "predictions.jsonl"
    write_jsonl(predictions, read_jsonl(predictions)[:5])  # the summary still fingerprints all twelve
    run = load_run(mixed)
    assert run.correct == {} and run.variants
    assert run.notes == ["mixed: predictions.jsonl answers other questions than its summary; left out"]
    (mixed / "evaluation" / "predictions.jsonl").unlink()
    runs, _ = load_runs([other_runs["vilt"], mixed])
    assert paired_tests(runs) == (
        [],
        ["vilt and mixed: no per-example answers saved for mixed; accuracies only"],
    )


def test_a_folder_without_a_summary_says_what_to_give(tmp_path):
    with pytest.raises(RunFileError, match="holds no comparison.json or metrics.json: give the --out folder"):
        load_run(tmp_path)
    runs, notes = load_runs([tmp_path])
    assert runs == [] and len(notes) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "must hold a JSON object, not list"),
        ("{not json", "is not valid JSON"),
        ('{"n": 3}', "has no 'variants' object"),
        ("[" * 100 + "]" * 100, "nested more than"),
    ],
)
def test_malformed_summaries_are_refused_with_a_sentence(tmp_path, content, message):
    (tmp_path / "comparison.json").write_text(content)
    with pytest.raises(RunFileError, match=message):
        load_run(tmp_path)


def test_an_oversized_summary_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(saved_runs, "MAX_SUMMARY_BYTES", 100)
    (tmp_path / "metrics.json").write_text(json.dumps({"variants": {}, "pad": "x" * 200}))
    with pytest.raises(RunFileError, match="over the 100-byte limit"):
        load_run(tmp_path)


def test_variants_without_a_well_formed_accuracy_are_left_out_with_a_note(tmp_path):
    good = {"accuracy": 0.5, "low": 0.2, "high": 0.8, "n": 10, "correct": 5}
    summary = {
        "split": "validation",
        "n": 10,
        "variants": {
            "cond_gen": {"accuracy": good},
            "swag-attentive": {"accuracy": {"accuracy": "high", "n": 10}},
            "multi_class-attentive": {"accuracy": {**good, "high": 7.0}},
            "swag-last_token": "not a dict",
        },
        "setting": {"base": "tiny:llava"},
    }
    (tmp_path / "comparison.json").write_text(json.dumps(summary))
    run = load_run(tmp_path)
    assert list(run.variants) == ["cond_gen"]
    assert len(run.notes) == 3 and all("left out (comparison.json: 'variants." in n for n in run.notes)
    assert run.model == "LLaVA-1.5 (tiny)" and run.correct == {}


@pytest.mark.parametrize(
    "source, model",
    [
        ("tiny", "PaliGemma (tiny)"),
        ("tiny:smolvlm", "SmolVLM (Idefics3) (tiny)"),
        ("llava-1.5-7b", "LLaVA-1.5"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL"),
        ("Salesforce/blip-vqa-base", "BLIP-VQA"),
        ("google/paligemma2-3b-pt-448", "PaliGemma 2"),
        ("assets/base", "PaliGemma 2"),
        ("someone/unknown-model", "unknown backbone"),
    ],
)
def test_model_names_of_older_runs_come_from_their_base(source, model):
    assert model_of_source(source, ROOT / "assets") == model


def test_setting_differences_leave_bookkeeping_out(other_runs):
    runs, _ = load_runs([other_runs["vilt"], other_runs["qwen"]])
    runs[0].setting.update(threads=1, wall_seconds=3.0, lr=0.001)
    runs[1].setting.update(threads=2, wall_seconds=9.0, lr=0.001, lora_r=16)
    assert setting_differences(runs) == {
        "base": ["tiny:vilt", "tiny:qwen2_5_vl"],
        "seed": ["0", "1"],
        "lora_r": ["–", "16"],
    }


def test_names_stay_unique(other_runs, tmp_path):
    twin = tmp_path / "vilt"
    shutil.copytree(other_runs["vilt"], twin)
    runs, _ = load_runs([other_runs["vilt"], twin, (twin, "vilt")])
    assert [r.name for r in runs] == ["vilt", "vilt #2", "vilt #3"]
