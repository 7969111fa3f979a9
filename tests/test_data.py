"""Tests for vqa_demo.data.splits: loading splits in file order, validation messages, submissions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from vqa_demo.data.splits import (
    DataError,
    MCExample,
    MCSplit,
    examples_from_records,
    load_hf_dataset,
    load_split,
)
from vqa_demo.data.writers import write_metadata, write_submission

# Deliberately not in alphabetical order (nor in natural order: "img10" < "img9" as strings).
UNSORTED_NAMES = ["zebra.png", "charts/img10.png", "apple.png", "charts/img9.png", "Mango.png"]


def _make_image(path: Path, color: str = "red", size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _rows(names: list[str], labeled: bool = True) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        row = {
            "file_name": name,
            "question": f"What is shown in picture {i}?",
            "option1": f"a{i}",
            "option2": f"b{i}",
            "option3": f"c{i}",
            "option4": f"d{i}",
            "family": "table" if i % 2 else "chart",
        }
        if labeled:
            row["answer"] = i % 4 + 1
        rows.append(row)
    return rows


def _write_csv(split_dir: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / "metadata.csv"
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _make_split(tmp_path: Path, names=UNSORTED_NAMES, labeled=True, fmt="csv") -> Path:
    split_dir = tmp_path / "split"
    for name in names:
        _make_image(split_dir / name)
    write_metadata(split_dir, _rows(names, labeled), fmt=fmt)
    return split_dir


def _error(tmp_path: Path, header: list[str], rows: list[list], make_images=True) -> str:
    split_dir = tmp_path / "bad"
    if make_images:
        for row in rows:
            _make_image(split_dir / row[0])
    _write_csv(split_dir, header, rows)
    with pytest.raises(DataError) as info:
        load_split(split_dir)
    return str(info.value)


HEADER4 = ["file_name", "question", "option1", "option2", "option3", "option4", "answer"]


# ---------------------------------------------------------------- loading


def test_load_csv_split(tmp_path):
    split = load_split(_make_split(tmp_path))
    assert split.name == "split"
    assert len(split) == 5 and split.labeled and split.num_options == 4
    first = split[0]
    assert first.id == first.file_name == "zebra.png"
    assert first.question == "What is shown in picture 0?"
    assert first.options == ("a0", "b0", "c0", "d0")
    assert first.answer_index == 0
    assert first.image_path == tmp_path / "split" / "zebra.png"
    assert first.metadata == {"family": "chart"}
    assert split[3].answer_index == 3 and split[3].metadata == {"family": "table"}
    image = split[1].load_image()
    assert image.mode == "RGB" and image.size == (8, 6)


def test_jsonl_matches_csv(tmp_path):
    from_csv = load_split(_make_split(tmp_path / "a", fmt="csv"))
    from_jsonl = load_split(_make_split(tmp_path / "b", fmt="jsonl"))
    assert [(e.id, e.question, e.options, e.answer_index) for e in from_csv] == [
        (e.id, e.question, e.options, e.answer_index) for e in from_jsonl
    ]
    assert [e.metadata for e in from_csv] == [e.metadata for e in from_jsonl]


def test_order_is_metadata_order_not_sorted(tmp_path):
    split = load_split(_make_split(tmp_path))
    assert [e.file_name for e in split] == UNSORTED_NAMES
    assert sorted(UNSORTED_NAMES) != UNSORTED_NAMES


def test_submission_rows_follow_metadata_order(tmp_path):
    """Acceptance: the submission CSV lists file_name in metadata order, not sorted order."""
    split_dir = _make_split(tmp_path, labeled=False)
    split = load_split(split_dir)
    predictions = [3, 0, 2, 1, 0]
    out = write_submission(split, predictions, tmp_path / "out" / "submission.csv")

    with (split_dir / "metadata.csv").open(newline="") as handle:
        metadata_order = [row["file_name"] for row in csv.DictReader(handle)]
    with out.open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["file_name", "answer"]
        submitted = list(reader)
    assert [name for name, _ in submitted] == metadata_order == UNSORTED_NAMES
    assert [int(answer) for _, answer in submitted] == [p + 1 for p in predictions]


def test_submission_refuses_bad_input(tmp_path):
    split = load_split(_make_split(tmp_path, labeled=False))
    with pytest.raises(DataError, match="4 predictions for the 5 examples"):
        write_submission(split, [0, 0, 0, 0], tmp_path / "s.csv")
    with pytest.raises(DataError, match="prediction 4 for 'zebra.png'"):
        write_submission(split, [4, 0, 0, 0, 0], tmp_path / "s.csv")
    with pytest.raises(DataError, match="not an integer option index"):
        write_submission(split, [0.0, 0, 0, 0, 0], tmp_path / "s.csv")
    nameless = load_hf_dataset([{"question": "q", "options": ["a", "b"]}])
    with pytest.raises(DataError, match="no file_name"):
        write_submission(nameless, [0], tmp_path / "s.csv")


def test_unlabeled_split(tmp_path):
    split = load_split(_make_split(tmp_path, labeled=False))
    assert not split.labeled
    assert all(e.answer_index is None for e in split)
    # blank answer cells also mean "no gold answer"
    partial = examples_from_records(
        [
            {"question": "q", "options": ["a", "b"], "answer": ""},
            {"question": "q", "options": ["a", "b"], "answer": 2},
        ],
        root=None,
        name="partial",
    )
    assert [e.answer_index for e in partial] == [None, 1] and not partial.labeled


def test_options_list_column(tmp_path):
    csv_dir = tmp_path / "csv"
    _make_image(csv_dir / "x.png")
    _write_csv(
        csv_dir,
        ["file_name", "question", "options", "answer"],
        [["x.png", "Q?", '["yes", "no", "maybe"]', "3"]],
    )
    assert load_split(csv_dir)[0].options == ("yes", "no", "maybe")

    jsonl_dir = tmp_path / "jsonl"
    _make_image(jsonl_dir / "x.png")
    write_metadata(
        jsonl_dir,
        [{"file_name": "x.png", "question": "Q?", "options": [" yes ", "no"], "answer": 1}],
        "jsonl",
    )
    example = load_split(jsonl_dir)[0]
    assert example.options == ("yes", "no") and example.answer_index == 0


def test_variable_k_with_trailing_empties(tmp_path):
    split_dir = tmp_path / "var"
    header = ["file_name", "question", "option1", "option2", "option3", "option4", "option5", "answer"]
    rows = [
        ["a.png", "q", "1", "2", "", "", "", "2"],
        ["b.png", "q", "1", "2", "3", "4", "5", "5"],
        ["c.png", "q", "1", "2", "3", "", "", "3"],
    ]
    for row in rows:
        _make_image(split_dir / row[0])
    _write_csv(split_dir, header, rows)
    split = load_split(split_dir)
    assert [e.num_options for e in split] == [2, 5, 3]
    assert split.num_options is None
    assert [e.answer_index for e in split] == [1, 4, 2]


def test_whitespace_stripped_and_bom_handled(tmp_path):
    split_dir = tmp_path / "bom"
    _make_image(split_dir / "a.png")
    _write_csv(
        split_dir,
        HEADER4 + ["family"],
        [[" a.png ", "  What?  ", " x ", "y", "z", "w ", " 2 ", " table "]],
        encoding="utf-8-sig",
    )
    example = load_split(split_dir)[0]
    assert example.file_name == "a.png" and example.question == "What?"
    assert example.options == ("x", "y", "z", "w")
    assert example.answer_index == 1 and example.metadata == {"family": "table"}


def test_write_metadata_round_trip(tmp_path):
    examples = [
        MCExample("b.png", "q1", ("x", "y", "z"), 2, file_name="b.png", metadata={"family": "doc"}),
        MCExample("a.png", "q2", ("u", "v"), None, file_name="a.png", metadata={"family": "chart"}),
    ]
    write_metadata(tmp_path, examples)
    loaded = load_split(tmp_path, name="rt", check_images=False)
    assert loaded.examples == [
        MCExample("b.png", "q1", ("x", "y", "z"), 2, file_name="b.png", image_path=tmp_path / "b.png"),
        MCExample("a.png", "q2", ("u", "v"), None, file_name="a.png", image_path=tmp_path / "a.png"),
    ]
    assert [e.metadata for e in loaded] == [{"family": "doc"}, {"family": "chart"}]


def test_split_sequence_protocol(tmp_path):
    split = load_split(_make_split(tmp_path))
    assert [e.id for e in split] == [split[i].id for i in range(len(split))]
    assert split[-1].file_name == "Mango.png"
    empty = MCSplit("empty", [])
    assert len(empty) == 0 and not empty.labeled and empty.num_options is None


# ---------------------------------------------------------------- errors


def test_missing_column_names_missing_and_found(tmp_path):
    message = _error(tmp_path, ["file_name", "option1", "option2", "answer"], [["a.png", "x", "y", "1"]])
    assert "question" in message
    assert "columns found: file_name, option1, option2, answer" in message


def test_missing_options_columns(tmp_path):
    message = _error(tmp_path, ["file_name", "question", "answer"], [["a.png", "q", "1"]])
    assert "option1..optionK" in message and "columns found: file_name, question, answer" in message


def test_missing_file_name_column_for_imagefolder(tmp_path):
    message = _error(tmp_path, ["question", "option1", "option2"], [["q", "x", "y"]], make_images=False)
    assert "file_name" in message and "columns found: question, option1, option2" in message


@pytest.mark.parametrize(
    ("answer", "facts"),
    [
        ("0", ["answer 0", "out of range", "1 to 4", "K=4"]),
        ("5", ["answer 5", "out of range", "1 to 4", "K=4"]),
        ("B", ["answer 'B'", "not an integer", "K=4"]),
        ("1.5", ["answer '1.5'", "not an integer", "K=4"]),
    ],
)
def test_bad_answer(tmp_path, answer, facts):
    rows = [
        ["ok.png", "q", "a", "b", "c", "d", "1"],
        ["bad.png", "q", "a", "b", "c", "d", answer],
    ]
    message = _error(tmp_path, HEADER4, rows)
    for fact in ["row 2", "metadata.csv", "'bad.png'", *facts]:
        assert fact in message


def test_float_like_integer_answer_refused(tmp_path):
    split_dir = tmp_path / "f"
    _make_image(split_dir / "a.png")
    _write_csv(split_dir, HEADER4, [["a.png", "q", "a", "b", "c", "d", "2.0"]])
    with pytest.raises(DataError, match=r"answer '2.0' is not an integer; write .* plain digits"):
        load_split(split_dir)


def test_missing_images_listed(tmp_path):
    split_dir = tmp_path / "imgs"
    names = [f"m{i}.png" for i in range(7)] + ["present.png"]
    _make_image(split_dir / "present.png")
    _write_csv(split_dir, HEADER4, [[n, "q", "a", "b", "c", "d", "1"] for n in names])
    with pytest.raises(DataError) as info:
        load_split(split_dir)
    message = str(info.value)
    assert message.startswith(f"{split_dir / 'metadata.csv'}: 7 bad row(s)")
    for i in range(7):
        assert (
            f"row {i + 1} of metadata.csv (file_name 'm{i}.png'): image 'm{i}.png': No image file at"
            in message
        )
    assert "present.png" not in message
    # with check_images=False the split loads and the missing file fails only when opened
    split = load_split(split_dir, check_images=False)
    with pytest.raises(DataError, match="m0.png"):
        split[0].load_image()


def test_gap_in_row_options(tmp_path):
    message = _error(tmp_path, HEADER4, [["a.png", "q", "x", "", "z", "w", "1"]])
    assert "row 1" in message and "'a.png'" in message
    assert "option2 is empty but option4 is not" in message


def test_gap_in_option_columns(tmp_path):
    header = ["file_name", "question", "option1", "option2", "option4"]
    message = _error(tmp_path, header, [["a.png", "q", "x", "y", "z"]])
    assert "found option1, option2, option4" in message and "missing option3" in message


def test_too_few_and_too_many_options(tmp_path):
    message = _error(tmp_path, HEADER4, [["a.png", "q", "x", "", "", "", "1"]])
    assert "1 non-empty option" in message and "2 to 8" in message
    header = ["file_name", "question"] + [f"option{i}" for i in range(1, 10)]
    message = _error(tmp_path / "nine", header, [["a.png", "q", *"abcdefghi"]])
    assert "9 option column(s)" in message


def test_bad_options_json(tmp_path):
    message = _error(tmp_path, ["file_name", "question", "options"], [["a.png", "q", "yes, no"]])
    assert "row 1" in message and "not a JSON list" in message


def test_metadata_file_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metadata.csv").write_text("file_name,question,option1,option2\n")
    with pytest.raises(
        DataError, match="no metadata.csv or metadata.jsonl; these subfolders have one: train"
    ):
        load_split(tmp_path)
    (tmp_path / "train" / "metadata.jsonl").write_text("")
    with pytest.raises(DataError, match="both metadata.csv and metadata.jsonl"):
        load_split(tmp_path / "train")


# ---------------------------------------------------------------- in-memory datasets


def test_load_hf_dataset_without_images():
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict(
        {
            "question": ["q1", "q2"],
            "option1": ["a", "c"],
            "option2": ["b", "d"],
            "answer": [2, 1],
            "family": ["chart", "table"],
        }
    )
    split = load_hf_dataset(dataset, name="mem")
    assert split.name == "mem" and split.labeled and split.num_options == 2
    assert [e.id for e in split] == ["row-0", "row-1"]
    assert [e.answer_index for e in split] == [1, 0]
    assert split[1].metadata == {"family": "table"}
    with pytest.raises(DataError, match="has no image"):
        split[0].load_image()


def test_load_hf_dataset_with_images_and_options_list():
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict(
        {
            "image": [Image.new("RGB", (5, 4), "blue"), Image.new("L", (3, 2), 128)],
            "file_name": ["z.png", "a.png"],
            "question": ["q1", "q2"],
            "options": [["x", "y", "z"], ["u", "v", "w"]],
        }
    )
    split = load_hf_dataset(dataset)
    assert [e.id for e in split] == ["z.png", "a.png"]
    assert not split.labeled and split.num_options == 3
    first, second = split[0].load_image(), split[1].load_image()
    assert first.size == (5, 4) and first.getpixel((0, 0)) == (0, 0, 255)
    assert second.mode == "RGB" and second.size == (3, 2)
    with pytest.raises(DataError, match="pass one"):
        load_hf_dataset(datasets.DatasetDict({"train": dataset}))


# ---------------------------------------------------------------- images


def test_exif_rotated_image_is_upright(tmp_path):
    # Stored 20 wide x 10 high, red left half, blue right half; Orientation=6 means
    # "rotate 90 degrees clockwise to display", so upright it is 10 x 20, red on top.
    stored = Image.new("RGB", (20, 10), "blue")
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot" / "photo.jpg"
    path.parent.mkdir()
    stored.save(path, exif=exif.tobytes(), quality=95)
    write_metadata(path.parent, [{"file_name": "photo.jpg", "question": "q", "option1": "a", "option2": "b"}])

    upright = load_split(path.parent)[0].load_image()
    assert upright.size == (10, 20)
    top, bottom = upright.getpixel((5, 2)), upright.getpixel((5, 17))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    in_memory = load_hf_dataset([{"image": Image.open(path), "question": "q", "options": ["a", "b"]}])
    assert in_memory[0].load_image().size == (10, 20)


def test_json_value_in_records_kept_as_metadata_string():
    split = examples_from_records(
        [{"question": "q", "options": ["a", "b"], "tags": ["x", 1], "score": 0.5}], root=None, name="m"
    )
    assert split[0].metadata == {"tags": json.dumps(["x", 1]), "score": "0.5"}
