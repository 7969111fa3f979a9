"""Tests for the synthetic diagram MC-VQA generator (`training.synthetic`): small n, 64 px images."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from training import synthetic
from training.synthetic import (
    COLUMNS,
    FAMILIES,
    derive_seed,
    generate_split,
    make_mc_item,
    pretraining_items,
)
from vqa_demo.model.strategies import build_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = 64


def read_rows(split_dir: Path) -> list[dict[str, str]]:
    with open(split_dir / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def split_bytes(split_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(split_dir.iterdir())}


def options_of(row: dict[str, str]) -> list[str]:
    return [row[f"option{k}"] for k in range(1, 5)]


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_split(tmp_path / "a", 10, seed=3, prefix="train", image_size=SIZE)
    second = generate_split(tmp_path / "b", 10, seed=3, prefix="train", image_size=SIZE)
    assert split_bytes(first) == split_bytes(second)
    assert len(split_bytes(first)) == 11  # 10 PNGs + metadata.csv


def test_different_seeds_and_splits_differ(tmp_path):
    base = generate_split(tmp_path / "a", 8, seed=0, prefix="train", image_size=SIZE)
    other_seed = generate_split(tmp_path / "b", 8, seed=1, prefix="train", image_size=SIZE)
    validation = generate_split(tmp_path / "c", 8, seed=0, prefix="validation", image_size=SIZE)
    assert read_rows(base) != read_rows(other_seed)
    base_images = {data for name, data in split_bytes(base).items() if name.endswith(".png")}
    validation_images = {data for name, data in split_bytes(validation).items() if name.endswith(".png")}
    assert not base_images & validation_images


def test_metadata_columns_answers_and_unique_options(tmp_path):
    split_dir = generate_split(tmp_path, 20, seed=5, prefix="train", image_size=SIZE)
    with open(split_dir / "metadata.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == list(COLUMNS)
    rows = read_rows(split_dir)
    assert [row["file_name"] for row in rows] == [f"train_{i:06d}.png" for i in range(20)]
    for row in rows:
        assert row["answer"] in {"1", "2", "3", "4"}
        assert len(set(options_of(row))) == 4 and all(options_of(row))
        assert row["question"].endswith("?")
        with Image.open(split_dir / row["file_name"]) as image:
            assert image.size == (SIZE, SIZE) and image.mode == "RGB"


def test_gold_position_and_families_balanced(tmp_path):
    rows = read_rows(generate_split(tmp_path, 20, seed=7, prefix="train", image_size=SIZE))
    assert Counter(row["answer"] for row in rows) == {"1": 5, "2": 5, "3": 5, "4": 5}
    assert Counter(row["family"] for row in rows) == {family: 4 for family in FAMILIES}
    assert {"shapes", "bar_chart", "pie_chart", "table"} <= set(FAMILIES)


def test_family_subset_and_unknown_family(tmp_path):
    rows = read_rows(
        generate_split(tmp_path, 6, seed=0, prefix="train", image_size=SIZE, families=["clock", "table"])
    )
    assert Counter(row["family"] for row in rows) == {"clock": 3, "table": 3}
    with pytest.raises(ValueError, match="choose from"):
        generate_split(tmp_path, 2, seed=0, prefix="train", families=["histogram"])


def test_rerun_with_fewer_examples_removes_stale_images(tmp_path):
    generate_split(tmp_path, 6, seed=0, prefix="train", image_size=SIZE)
    generate_split(tmp_path, 3, seed=0, prefix="train", image_size=SIZE)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"train_{i:06d}.png" for i in range(3)]


def items(family: str, count: int):
    return [make_mc_item(family, derive_seed(11, family, i), i % 4, image_size=32) for i in range(count)]


def test_gold_option_matches_the_scene():
    """Re-derive the truth from the spec for questions whose answer is a simple function of it."""
    checked = Counter()
    for item in items("shapes", 60):
        gold = item.options[item.answer - 1]
        shapes = item.scene.shapes
        if item.question == "How many shapes are there?":
            assert gold == str(len(shapes))
            checked["count"] += 1
        elif item.question.startswith("How many") and item.question.endswith(" shapes are there?"):
            colour = item.question.split()[2]
            assert gold == str(sum(s.colour == colour for s in shapes))
            checked["colour count"] += 1
        elif item.question.startswith("What colour is the "):
            kind = item.question.removeprefix("What colour is the ").removesuffix("?")
            assert [s.colour for s in shapes if s.kind == kind] == [gold]
            checked["colour"] += 1
    for item in items("bar_chart", 30):
        if item.question in ("What colour is the tallest bar?", "What colour is the longest bar?"):
            chart = item.scene
            assert item.options[item.answer - 1] == chart.colours[chart.values.index(max(chart.values))]
            checked["bar max"] += 1
    for item in items("clock", 10):
        if item.question == "What time does the clock show?":
            assert item.options[item.answer - 1] == f"{item.scene.hour}:{item.scene.minute:02d}"
            checked["clock"] += 1
    for item in items("table", 30):
        if item.question.startswith("What is in row "):
            row_text, column_text = (
                item.question.removeprefix("What is in row ").removesuffix("?").split(", column ")
            )
            table = item.scene
            expected = table.rows[int(row_text) - 1][table.columns.index(column_text)]
            assert item.options[item.answer - 1] == expected
            checked["table cell"] += 1
    assert set(checked) == {"count", "colour count", "colour", "bar max", "clock", "table cell"}, checked


def test_cli_writes_both_splits(tmp_path):
    argv = ["--out", str(tmp_path), "--n-train", "4", "--n-val", "4", "--seed", "2"]
    synthetic.main(synthetic.parse_args([*argv, "--image-size", str(SIZE), "--families", "shapes,table"]))
    for split in ("train", "validation"):
        rows = read_rows(tmp_path / split)
        assert len(rows) == 4 and {row["family"] for row in rows} <= {"shapes", "table"}
        assert all((tmp_path / split / row["file_name"]).is_file() for row in rows)
        assert rows[0]["file_name"].startswith(f"{split}_")


@pytest.mark.slow
def test_the_module_runs_as_a_command(tmp_path):
    command = [sys.executable, "-m", "training.synthetic", "--out", str(tmp_path), "--n-train", "2"]
    command += ["--n-val", "2", "--image-size", str(SIZE), "--families", "shapes"]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=120)
    assert len(read_rows(tmp_path / "validation")) == 2


def test_cli_rejects_unknown_family(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.parse_args(["--out", str(tmp_path), "--families", "maps"])
    assert exit_info.value.code != 0 and "choose from" in capsys.readouterr().err


def test_pretraining_items_are_deterministic_images_and_text():
    first = list(pretraining_items(15, seed=4, image_size=SIZE))
    second = list(pretraining_items(15, seed=4, image_size=SIZE))
    assert len(first) == 15
    assert [(p, s) for _, p, s in first] == [(p, s) for _, p, s in second]
    assert first[0][0].tobytes() == second[0][0].tobytes()
    for image, prefix, suffix in first:
        assert isinstance(image, Image.Image) and image.size == (SIZE, SIZE)
        assert prefix.strip() and suffix.strip()
        assert prefix == "caption en" or prefix.startswith("answer en ")
    assert any(p == "caption en" for _, p, _ in first) and any(p != "caption en" for _, p, _ in first)


def test_lettered_pretraining_items_point_at_the_gold_option():
    plain = list(pretraining_items(30, seed=3, image_size=SIZE))
    assert [(p, s) for _, p, s in plain] == [
        (p, s) for _, p, s in pretraining_items(30, seed=3, image_size=SIZE, lettered=0.0)
    ]
    lettered = list(pretraining_items(30, seed=3, image_size=SIZE, lettered=1.0))
    asked = 0
    for (_, prefix, suffix), (_, plain_prefix, plain_suffix) in zip(lettered, plain):
        if plain_prefix == "caption en":
            assert (prefix, suffix) == (plain_prefix, plain_suffix)
            continue
        question = plain_prefix.removeprefix("answer en ")
        options = [
            part.split(") ", 1)[1] for part in prefix.split("\nOptions: ")[1].split("\n")[0].split(" | ")
        ]
        row = build_rows("multi_class", question, options)[0]
        assert prefix == row.question + row.tail  # exactly the MULTI_CLASS prompt
        assert options["ABCD".index(suffix)] == plain_suffix  # the letter names the gold answer
        asked += 1
    assert asked >= 10
