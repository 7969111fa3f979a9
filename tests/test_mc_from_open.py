"""Open-answer splits to multiple choice: types, distractors, balance, determinism, the CLI round trip."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

import pytest
from PIL import Image

import training.train as train_module
from training.distractors import AnswerPool, answer_type, balanced_positions, question_prefix
from training.mc_from_open import OpenRow, convert, main, parse_args
from vqa_demo.data.splits import DataError, load_split
from vqa_demo.evaluation.text_metrics import normalize_vqa_answer

ANIMALS = [("what animal is this?", a) for a in ("cat", "dog", "horse", "cow")]
FRUITS = [("what fruit is shown?", a) for a in ("apple", "pear", "banana", "plum")]
NUMBERS = [("how many cars are there?", a) for a in ("2", "three", "4", "5", "7")]
COLOURS = [("what colour is the ball?", a) for a in ("red", "Blue", "green", "light blue")]
YES_NO = [("is there a cat?", "yes"), ("is it raining?", "no"), ("is the sky clear?", "Yes")]


def make_open_split(folder, pairs, fmt="csv", extra=None):
    """An open-answer imagefolder: one 8x8 PNG per row and ``file_name, question, answer`` metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (question, answer) in enumerate(pairs):
        file_name = f"img_{index:03d}.png"
        Image.new("RGB", (8, 8), (index * 7 % 256, 40, 90)).save(folder / file_name)
        rows.append({"file_name": file_name, "question": question, "answer": answer, **(extra or {})})
    if fmt == "jsonl":
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder


def open_rows(pairs):
    return [OpenRow(f"img_{i}.png", q, a, {}) for i, (q, a) in enumerate(pairs)]


def options_of(record, num_options):
    return [record[f"option{i + 1}"] for i in range(num_options)]


def varied_pairs(n=60, seed=3):
    """A mixed split of ``n`` rows drawn from the four typed pools above."""
    rng = random.Random(seed)
    pools = ANIMALS + FRUITS + NUMBERS + COLOURS
    return [rng.choice(pools) for _ in range(n)]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("Yes", "yes/no"),
        ("no.", "yes/no"),
        ("2", "number"),
        ("Two", "number"),
        ("2.5", "number"),
        ("1,000", "number"),
        ("red", "colour"),
        ("Light Blue", "colour"),
        ("red and white", "colour"),
        ("blue sky", "other"),
        ("3 cars", "other"),
        ("the cat", "other"),
        ("yes please", "other"),
    ],
)
def test_answer_type(answer, kind):
    assert answer_type(answer) == kind


def test_question_prefix_is_the_first_two_normalised_words():
    assert question_prefix("How many CARS?") == "how many"
    assert question_prefix("What is the colour?") == "what is"


def test_same_prefix_answers_are_preferred_and_types_match():
    # animals and fruits are both 'other' with four answers each: a row's 3 distractors are exactly the
    # other three answers seen with its own question prefix
    rows = open_rows(ANIMALS + FRUITS + NUMBERS + COLOURS)
    conversion = convert(rows, num_options=4, seed=1)
    assert len(conversion.records) == len(rows)
    for record in conversion.records:
        options = options_of(record, 4)
        gold = options[record["answer"] - 1]
        assert record["answer_type"] == answer_type(gold)
        assert {answer_type(o) for o in options} == {answer_type(gold)}
        if record["question"].startswith("what animal"):
            assert sorted(options) == ["cat", "cow", "dog", "horse"]
        if record["question"].startswith("what fruit"):
            assert sorted(options) == ["apple", "banana", "pear", "plum"]


def test_other_type_falls_back_beyond_the_prefix_when_it_has_too_few():
    # only 2 animals: the third distractor must come from the fruits (same type 'other')
    rows = open_rows(ANIMALS[:2] + FRUITS)
    record = convert(rows, num_options=4, seed=0).records[0]
    options = options_of(record, 4)
    assert {"cat", "dog"} <= set(options)
    assert len(set(options) & {"apple", "pear", "banana", "plum"}) == 2


def test_normalised_duplicates_are_never_two_options():
    pairs = [("how many dogs?", a) for a in ("Two", "2", "two", "3", "four", "4", "5", "6.")] + [
        ("what animal is it?", a) for a in ("the cat", "Cat", "cat!", "a dog", "horse", "cow")
    ]
    conversion = convert(open_rows(pairs), num_options=4, seed=5)
    assert len(conversion.records) == len(pairs)
    for record in conversion.records:
        keys = [normalize_vqa_answer(o) for o in options_of(record, 4)]
        assert len(set(keys)) == 4, keys
    # a distractor is shown in the split's most frequent surface form of its answer
    pool = AnswerPool(pairs)
    assert pool.surface["2"] == "Two" and pool.surface["cat"] == "the cat" and pool.surface["4"] == "four"


def test_gold_text_is_the_rows_own_answer():
    rows = open_rows(NUMBERS + ANIMALS)
    for row, record in zip(rows, convert(rows, num_options=3, seed=2).records):
        assert options_of(record, 3)[record["answer"] - 1] == row.answer


def test_same_seed_same_output_and_other_seed_differs():
    rows = open_rows(varied_pairs())
    first = convert(rows, num_options=4, seed=11).records
    assert convert(rows, num_options=4, seed=11).records == first
    assert convert(rows, num_options=4, seed=12).records != first


@pytest.mark.parametrize(("n", "num_options"), [(60, 4), (37, 3), (23, 5)])
def test_gold_positions_are_balanced_overall_and_per_type(n, num_options):
    conversion = convert(open_rows(varied_pairs(n)), num_options=num_options, seed=0)
    histogram = conversion.gold_histogram()
    assert sum(histogram) == len(conversion.records) == n - sum(conversion.skipped.values())
    assert len(conversion.records) >= 10
    assert max(histogram) - min(histogram) <= 1
    for kind in {r["answer_type"] for r in conversion.records}:
        counts = Counter(r["answer"] for r in conversion.records if r["answer_type"] == kind)
        per_position = [counts.get(p + 1, 0) for p in range(num_options)]
        assert max(per_position) - min(per_position) <= 1, (kind, per_position)


def test_balanced_positions_deals_round_robin():
    positions = balanced_positions(["a"] * 5 + ["b"] * 3, 4, random.Random(0))
    assert sorted(positions[:5]) == [0, 0, 1, 2, 3]  # type 'a' takes the deal 0,1,2,3,0
    assert sorted(positions[5:]) == [1, 2, 3]  # 'b' continues at 1


def test_types_with_too_few_answers_are_skipped_or_filled():
    rows = open_rows(YES_NO + ANIMALS)
    skipped = convert(rows, num_options=4, seed=0)
    assert skipped.skipped == {"yes/no": 3}
    assert [r["answer_type"] for r in skipped.records] == ["other"] * 4
    assert "distractors" not in skipped.records[0]

    filled = convert(rows, num_options=4, seed=0, fill=True)
    assert filled.skipped == {} and filled.filled == 3 and len(filled.records) == 7
    for record in filled.records[:3]:
        options = options_of(record, 4)
        assert record["distractors"] == "filled"
        # the one other yes/no answer first, then two from other types
        assert sorted(normalize_vqa_answer(o) for o in options if answer_type(o) == "yes/no") == ["no", "yes"]
    assert {r["distractors"] for r in filled.records[3:]} == {"same_type"}
    # K = 2 suits yes/no without filling
    assert convert(rows, num_options=2, seed=0).skipped == {}


def test_num_options_out_of_range_is_refused():
    with pytest.raises(DataError, match="--num-options 9"):
        convert(open_rows(ANIMALS), num_options=9)


def run_cli(source, out, *flags):
    return main(parse_args(["--source", str(source), "--out", str(out), *flags]))


def test_cli_round_trip_loads_with_the_projects_loader(tmp_path, capsys):
    pairs = varied_pairs(30) + YES_NO
    source = make_open_split(tmp_path / "open", pairs, fmt="jsonl", extra={"shop": "north"})
    conversion = run_cli(source, tmp_path / "mc", "--num-options", "4", "--seed", "7")
    printed = capsys.readouterr().out
    assert "yes/no  rows     3" in printed and "skipped (too few distinct answers)     3" in printed
    histogram = conversion.gold_histogram()
    assert f"gold position: A {histogram[0]}  B {histogram[1]}" in printed
    split = load_split(tmp_path / "mc")
    assert len(split) == 30 and split.num_options == 4 and split.labeled
    kept = [p for p in pairs if answer_type(p[1]) != "yes/no"]
    for example, (question, answer) in zip(split, kept):
        assert example.question == question
        assert example.options[example.answer_index] == answer
        assert example.metadata == {"answer_type": answer_type(answer), "shop": "north"}
        assert example.load_image().size == (8, 8)
    # same seed, same files
    run_cli(source, tmp_path / "mc2", "--seed", "7")
    assert (tmp_path / "mc" / "metadata.csv").read_text() == (tmp_path / "mc2" / "metadata.csv").read_text()


def test_cli_bad_rows_fail_or_are_skipped(tmp_path, capsys):
    source = make_open_split(tmp_path / "open", ANIMALS + FRUITS + [("what is this?", "...")])
    (source / "img_001.png").unlink()
    with pytest.raises(SystemExit, match=r"2 bad row\(s\)") as error:
        run_cli(source, tmp_path / "mc")
    assert "row 2 of metadata.csv (file_name 'img_001.png')" in str(error.value)
    assert "row 9" in str(error.value) and "empty once punctuation and articles go" in str(error.value)
    conversion = run_cli(source, tmp_path / "mc", "--on-bad-row", "skip", "--format", "jsonl")
    assert len(conversion.records) == 7
    assert len(load_split(tmp_path / "mc" / "metadata.jsonl")) == 7
    assert "skipped" in capsys.readouterr().err


def test_cli_refuses_clashing_columns_list_answers_and_its_own_source(tmp_path):
    source = make_open_split(tmp_path / "open", ANIMALS, extra={"option1": "x"})
    with pytest.raises(SystemExit, match="option1, which the conversion writes"):
        run_cli(source, tmp_path / "mc")
    listed = make_open_split(tmp_path / "listed", [("what animal?", ["cat", "dog"])] + ANIMALS, fmt="jsonl")
    with pytest.raises(SystemExit, match="answer must be one text, not a list"):
        run_cli(listed, tmp_path / "mc")
    good = make_open_split(tmp_path / "good", ANIMALS)
    with pytest.raises(SystemExit, match="is the source split"):
        run_cli(good, good)
    with pytest.raises(SystemExit, match="missing column"):
        (tmp_path / "bare").mkdir()
        (tmp_path / "bare" / "metadata.csv").write_text("file_name,question\na.png,what?\n")
        run_cli(tmp_path / "bare", tmp_path / "mc")


@pytest.mark.slow
def test_converted_splits_train_and_evaluate_with_open_answer_metrics(tmp_path):
    data = tmp_path / "data"
    for name, seed in (("train", 1), ("validation", 2)):
        source = make_open_split(tmp_path / f"open-{name}", varied_pairs(32, seed=seed))
        run_cli(source, data / name, "--seed", "0")
    cfg = train_module.TrainConfig(variant="cond_gen", base="tiny", out=str(tmp_path / "run"), data=str(data))
    cfg.smoke, cfg.threads, cfg.selection_split = True, 1, str(data / "validation")
    result = train_module.main(cfg)
    assert 0.0 <= result["best_accuracy"] <= 1.0
    metrics = json.loads((tmp_path / "run" / "best_selection" / "metrics.json").read_text())
    variant = metrics["variants"]["cond_gen"]
    assert set(variant["by_metadata"]["answer_type"]) <= {"number", "colour", "other"}
    open_metrics = variant["open_answer_metrics"]
    assert open_metrics["n"] == variant["n"] == 16
    for name in ("exact_match", "token_f1", "rouge_l", "cosine"):
        assert open_metrics[name]["low"] <= open_metrics[name]["mean"] <= open_metrics[name]["high"]
