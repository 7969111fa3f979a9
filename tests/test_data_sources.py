"""``--data`` sources and schemas with real ``datasets`` objects built in-process (no hub, no mocks)."""

from __future__ import annotations

import csv
import json

import datasets
import pytest
from PIL import Image

from vqa_demo.data.rows import DataError
from vqa_demo.data.schemas import detect_schema, parse_columns
from vqa_demo.data.sources import load_data_split, rows_split
from vqa_demo.data.writers import write_submission


def images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 6), (40 * i % 255, 90, 200)) for i in range(n)]


def aokvqa(n: int = 3, labeled: bool = True) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "image": images(n),
            "question_id": [f"q{9 - i}" for i in range(n)],  # not sorted: order must be kept
            "question": [f"What is {i}?" for i in range(n)],
            "choices": [["cat", "dog", "bird", "fish"] for _ in range(n)],
            "correct_choice_idx": [(i % 4) if labeled else None for i in range(n)],
            "direct_answers": [["cat"] * 3 for _ in range(n)],
        }
    )


def test_aokvqa_schema_keeps_order_and_zero_based_answers():
    split = rows_split(aokvqa(), "validation", "mem")
    assert [e.id for e in split] == ["q9", "q8", "q7"]
    assert [e.answer_index for e in split] == [0, 1, 2]
    assert split[0].options == ("cat", "dog", "bird", "fish")
    assert split[0].metadata["direct_answers"] == json.dumps(["cat"] * 3)
    assert split[2].load_image().size == (8, 6)


def test_scienceqa_schema_hint_and_rows_without_image():
    dataset = datasets.Dataset.from_dict(
        {
            "image": [images(1)[0], None],
            "question": ["Which is a mammal?", "Which is hot?"],
            "choices": [["shark", "whale"], ["ice", "fire", "snow"]],
            "answer": [1, 1],
            "hint": ["Context: sea animals.", ""],
            "subject": ["bio", "phys"],
        }
    )
    assert detect_schema(dataset.column_names).name == "scienceqa"
    with pytest.raises(DataError, match=r"row 2 of mem: has no image"):
        rows_split(dataset, "validation", "mem")
    split = rows_split(dataset, "validation", "mem", on_bad_row="skip")
    assert len(split) == 1 and [b.row for b in split.bad_rows] == [2]
    assert split[0].question == "Context: sea animals.\nWhich is a mammal?"
    assert split[0].answer_index == 1 and split[0].metadata == {"subject": "bio"}


def test_ai2d_schema_answers_as_index_text_or_letter():
    dataset = datasets.Dataset.from_dict(
        {
            "image": images(4),
            "question": ["a?", "b?", "c?", "d?"],
            "options": [["red", "green", "blue"]] * 4,
            "answer": ["2", "Green", "a", "purple"],
        }
    )
    assert detect_schema(dataset.column_names).name == "ai2d"
    with pytest.raises(DataError) as caught:
        rows_split(dataset, "validation", "mem")
    message = str(caught.value)
    assert "1 bad row" in message and "row 4 of mem" in message
    assert "'purple' is neither a 0-based index 0 to 2, a letter A to C, nor the text" in message
    split = rows_split(dataset, "validation", "mem", on_bad_row="skip")
    assert [e.answer_index for e in split] == [2, 1, 0]


def test_mmbench_schema_letters_and_fewer_options():
    dataset = datasets.Dataset.from_dict(
        {
            "index": [11, 12],
            "image": images(2),
            "question": ["Which?", "Where?"],
            "hint": [None, "Look left."],
            "A": ["one", "left"],
            "B": ["two", "right"],
            "C": ["three", None],
            "D": ["four", None],
            "answer": ["D", "A"],
            "category": ["count", "place"],
        }
    )
    split = rows_split(dataset, "test", "mem")
    assert [e.id for e in split] == ["11", "12"]
    assert split[0].options == ("one", "two", "three", "four") and split[1].options == ("left", "right")
    assert [e.answer_index for e in split] == [3, 0]
    assert split[1].question == "Look left.\nWhere?"
    assert split[1].metadata == {"category": "place"}


def test_out_of_range_index_is_a_bad_row():
    dataset = aokvqa(2)
    dataset = dataset.map(lambda r, i: {"correct_choice_idx": 4 if i == 1 else 0}, with_indices=True)
    with pytest.raises(
        DataError, match=r"row 2 of mem: answer 4 is out of range; .* 0-based option index 0 to 3"
    ):
        rows_split(dataset, "validation", "mem")


def test_columns_flag_maps_any_schema():
    dataset = datasets.Dataset.from_dict(
        {"img": images(2), "prompt": ["x?", "y?"], "o1": ["a", "c"], "o2": ["b", "d"], "label": [1, 0]}
    )
    with pytest.raises(DataError, match="match no known schema .* --columns question="):
        rows_split(dataset, "validation", "mem")
    split = rows_split(
        dataset, "validation", "mem", columns="question=prompt,options=o1|o2,answer=label,image=img"
    )
    assert [e.options for e in split] == [("a", "b"), ("c", "d")] and [e.answer_index for e in split] == [
        1,
        0,
    ]
    assert split[0].load_image().size == (8, 6)
    with pytest.raises(DataError, match=r"no column\(s\) choices; columns found: img, prompt"):
        rows_split(dataset, "validation", "mem", columns="question=prompt,options=choices")
    with pytest.raises(DataError, match="is not role=column"):
        parse_columns("question=prompt,opts=o1")


def test_save_to_disk_dict_and_single_dataset(tmp_path):
    dataset_dict = datasets.DatasetDict({"train": aokvqa(4), "val": aokvqa(3)})
    dataset_dict.save_to_disk(str(tmp_path / "dd"))
    train = load_data_split(tmp_path / "dd", "train")
    val = load_data_split(tmp_path / "dd", "validation")  # "val" is an alias of validation
    assert (len(train), len(val), val.name) == (4, 3, "val")
    with pytest.raises(DataError, match=r"has no 'test' split \(splits found: train, val\); add or rename"):
        load_data_split(tmp_path / "dd", "test")
    aokvqa(2, labeled=False).save_to_disk(str(tmp_path / "single"))
    single = load_data_split(tmp_path / "single", "test")
    assert len(single) == 2 and not single.labeled


def test_submission_of_a_dataset_is_keyed_by_its_id_column(tmp_path):
    split = rows_split(aokvqa(3, labeled=False), "test", "mem")
    path = write_submission(split, [2, 0, 1], tmp_path / "sub.csv")
    rows = list(csv.reader(path.open()))
    assert rows == [["question_id", "answer"], ["q9", "3"], ["q8", "1"], ["q7", "2"]]


def test_parquet_and_jsonl_files(tmp_path):
    aokvqa(3).to_parquet(str(tmp_path / "validation.parquet"))
    from_file = load_data_split(tmp_path / "validation.parquet")
    from_folder = load_data_split(tmp_path, "validation")
    assert [e.id for e in from_file] == [e.id for e in from_folder] == ["q9", "q8", "q7"]
    assert from_file[1].load_image().size == (8, 6)
    (tmp_path / "pics").mkdir()
    images(1)[0].save(tmp_path / "pics" / "a.png")
    rows = [{"image": "pics/a.png", "question": "q?", "choices": ["x", "y"], "answer": "y"}]
    (tmp_path / "val.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    split = load_data_split(tmp_path / "val.jsonl")
    assert split[0].answer_index == 1 and split[0].image_path == tmp_path / "pics" / "a.png"
    escape = [{"image": "../x.png", "question": "q?", "choices": ["x", "y"], "answer": 0}]
    (tmp_path / "bad.jsonl").write_text(json.dumps(escape[0]) + "\n")
    with pytest.raises(DataError, match="without '..'"):
        load_data_split(tmp_path / "bad.jsonl")


def test_imagefolder_unchanged_and_missing_data(tmp_path):
    from vqa_demo.data.writers import write_metadata

    root = tmp_path / "folder"
    for split_name in ("train", "validation"):
        (root / split_name).mkdir(parents=True)
        images(1)[0].save(root / split_name / "a.png")
        write_metadata(
            root / split_name,
            [{"file_name": "a.png", "question": "q", "option1": "x", "option2": "y", "answer": 2}],
        )
    assert load_data_split(root, "validation")[0].answer_index == 1
    assert load_data_split(root / "train", "validation").name == "train"  # a split folder is itself
    with pytest.raises(DataError, match=r"no 'test' split \(found: train, validation\)"):
        load_data_split(root, "test")
    with pytest.raises(DataError, match="no such folder or file"):
        load_data_split(tmp_path / "nope" / "x", "validation")


def test_hub_id_offline_not_in_cache(monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError, match=r"--data someone/no-such-set: this dataset is not in your local .* HF_HUB_OFFLINE=1"
    ):
        load_data_split("someone/no-such-set", "validation")
