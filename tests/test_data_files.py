"""Hostile data files: each bad row is reported with its number and reason, images pass the upload checks.

Crafted splits in temporary folders: paths that leave the split folder, images the app would refuse
(EPS that Pillow would hand to Ghostscript, cut-off and oversized files), answers that only look like
integers, duplicate options, control characters, broken CSV. The evaluate CLI is run the way a user
runs it (a subprocess) to show that ``fail`` stops before any model is loaded.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image

from training.train import TrainConfig
from training.train import main as train_main
from vqa_demo.data.splits import DataError, examples_from_records, load_split
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args

REPO = Path(__file__).resolve().parent.parent
HEADER = ["file_name", "question", "option1", "option2", "option3", "answer"]
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


def image(path: Path, size=(8, 6), color="red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def row(file_name="ok.png", question="Which colour?", options=("red", "green", "blue"), answer="1"):
    return [file_name, question, *options, answer]


def write_split(folder: Path, rows, header=HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "ok.png").exists():
        image(folder / "ok.png")
    with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


def refusal(folder: Path) -> str:
    """The message of loading ``folder`` (must fail), after checking that skipping keeps the good rows."""
    with pytest.raises(DataError) as info:
        load_split(folder)
    skipped = load_split(folder, on_bad_row="skip")
    assert [ex.file_name for ex in skipped] == ["ok.png"]
    assert [bad.row for bad in skipped.bad_rows] == [2]
    return str(info.value)


def test_file_name_leaving_the_split_folder_is_refused_per_row(tmp_path):
    secret = image(tmp_path / "private" / "photo.png")
    split = tmp_path / "split"
    (split / "sub").mkdir(parents=True)
    os.symlink(secret, split / "link.png")
    os.symlink(split / "ok.png", split / "sub" / "inside.png")
    names = ["../private/photo.png", str(secret), "link.png", "sub/../../private/photo.png", "sub/inside.png"]
    write_split(split, [row("ok.png")] + [row(name) for name in names])
    loaded = load_split(split, on_bad_row="skip")
    assert [ex.file_name for ex in loaded] == ["ok.png", "sub/inside.png"]
    reasons = {bad.row: bad.message for bad in loaded.bad_rows}
    assert sorted(reasons) == [2, 3, 4, 5]
    assert (
        "relative to the split folder, without '..'" in reasons[2] and "row 2 of metadata.csv" in reasons[2]
    )
    assert "relative to the split folder" in reasons[3]
    assert "leads outside the split folder" in reasons[4]
    with pytest.raises(DataError, match=r"4 bad row\(s\)"):
        load_split(split, check_images=False)


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    def ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was invoked")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    split = write_split(tmp_path / "s", [row(), row("drawing.png")])
    (split / "drawing.png").write_bytes(EPS)
    assert "image 'drawing.png': The file is a PostScript file, not a picture" in refusal(split)
    unchecked = load_split(split, check_images=False)
    with pytest.raises(DataError, match="PostScript"):
        unchecked[1].load_image()


def test_cut_off_and_oversized_images_are_bad_rows(tmp_path):
    split = write_split(tmp_path / "s", [row(), row("cut.png"), row("huge.png")])
    data = (split / "ok.png").read_bytes()
    big = image(tmp_path / "big.png", size=(300, 200))
    (split / "cut.png").write_bytes(big.read_bytes()[:120])
    Image.new("1", (8000, 6000)).save(split / "huge.png")  # 48 MP in a few kB
    loaded = load_split(split, on_bad_row="skip")
    assert [ex.file_name for ex in loaded] == ["ok.png"] and (split / "ok.png").read_bytes() == data
    messages = [bad.message for bad in loaded.bad_rows]
    assert "row 2" in messages[0] and "incomplete" in messages[0]
    assert "row 3" in messages[1] and "48,000,000 pixels and the limit is" in messages[1]


@pytest.mark.parametrize("answer", ["２", "٢", "1e0", "+2", " 2.0", "2.0", "0x2", "-1", "2 2", "½"])
def test_answers_must_be_plain_ascii_integers(tmp_path, answer):
    message = refusal(write_split(tmp_path / "s", [row(), row(answer=answer)]))
    assert "row 2 of metadata.csv" in message and "is not an integer" in message and "plain digits" in message


def test_answer_types_in_jsonl(tmp_path):
    split = tmp_path / "s"
    image(split / "ok.png")
    rows = [
        {"file_name": "ok.png", "question": "q", "options": ["a", "b"], "answer": value}
        for value in (2, 2.0, True)
    ]
    (split / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    loaded = load_split(split, on_bad_row="skip")
    assert [ex.answer_index for ex in loaded] == [1]
    assert [bad.row for bad in loaded.bad_rows] == [2, 3]


def test_duplicate_options_are_reported(tmp_path):
    message = refusal(write_split(tmp_path / "s", [row(), row(options=("Red", "green", " red "))]))
    assert "row 2 of metadata.csv" in message and "Options A and C are the same" in message


def test_control_characters_are_cleaned_as_in_the_app(tmp_path):
    split = write_split(
        tmp_path / "s", [row(question="Which\x00 colour\x07?", options=("red\x1b", "gr\x7feen", "blue"))]
    )
    (example,) = load_split(split)
    assert example.question == "Which colour?" and example.options == ("red", "green", "blue")
    # An option made only of control characters is empty, as in the form.
    message = refusal(write_split(tmp_path / "t", [row(), row(options=("red", "\x00\x01", "blue"))]))
    assert "Option B is empty" in message


def test_over_long_csv_field_gets_a_clear_message(tmp_path):
    split = write_split(tmp_path / "s", [row(), row(question="x" * 200_000)])
    with pytest.raises(DataError) as info:
        load_split(split)
    message = str(info.value)
    assert "row 2 (starting on line 3) has a cell longer than 131,072 characters; shorten it" in message
    assert "_csv.Error" not in message and "field larger than field limit" not in message


def test_unterminated_quote_is_reported_as_such(tmp_path):
    split = write_split(tmp_path / "s", [row()])
    with (split / "metadata.csv").open("a") as handle:
        handle.write('ok.png,"Which colour?,red,green,blue,1\n')
    with pytest.raises(
        DataError, match=r"row 2 \(starting on line 3\) has a quoted cell that is never closed"
    ):
        load_split(split)


def test_in_memory_image_bytes_pass_the_upload_checks():
    records = [{"question": "q", "options": ["a", "b"], "image": {"bytes": EPS}}]
    with pytest.raises(DataError, match="row 1 of hf: image: The file is a PostScript file"):
        examples_from_records(records, root=None, name="hf")


def test_training_refuses_bad_rows_before_building_anything(tmp_path):
    data = tmp_path / "data"
    write_split(data / "train", [row(), row(answer="٢")])
    write_split(data / "validation", [row()])
    with pytest.raises(DataError, match=r"row 2 of metadata.csv .*answer '٢' is not an integer"):
        train_main(TrainConfig(data=str(data), out=str(tmp_path / "run"), base="does-not-exist"))
    assert not (tmp_path / "run" / "best").exists()


@pytest.mark.slow  # a fresh interpreter is the point: ~20 s of imports
def test_evaluate_cli_fails_before_the_model_loads_with_the_list(tmp_path):
    split = write_split(tmp_path / "s", [row(), row("../x.png"), row(answer="+2")])
    result = subprocess.run(
        [sys.executable, "-m", "vqa_demo.evaluate", "--data", str(split), "--out", str(tmp_path / "out")]
        + ["--checkpoints", str(tmp_path / "no-checkpoints-here")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "2 bad row(s)" in result.stderr
    assert "row 2 of metadata.csv (file_name '../x.png')" in result.stderr
    assert "row 3 of metadata.csv" in result.stderr and "'+2' is not an integer" in result.stderr
    assert "no-checkpoints-here" not in result.stderr, "the model was reached before the data check"
    assert not (tmp_path / "out").exists()


def test_evaluate_cli_skip_reports_and_evaluates_the_rest(app_assets, tmp_path, capsys):
    split = tmp_path / "validation"
    shutil.copytree(app_assets.root / "validation", split)
    with (split / "metadata.csv").open(newline="") as handle:
        header = next(csv.reader(handle))
    good = len(load_split(split))
    with (split / "metadata.csv").open("a", newline="") as handle:
        bad = dict.fromkeys(header, "x") | {"file_name": "../escape.png", "answer": "1"}
        csv.DictWriter(handle, header).writerow(bad)
    args = ["--checkpoints", str(app_assets.root / "checkpoints"), "--base", str(app_assets.root / "base")]
    args += ["--data", str(split), "--out", str(tmp_path / "out"), "--on-bad-row", "skip"]
    metrics = evaluate_main(evaluate_args(args + ["--variants", "swag-attentive"]))
    assert metrics["variants"]["swag-attentive"]["n"] == good
    err = capsys.readouterr().err
    assert "1 bad row(s)" in err and f"row {good + 1} of metadata.csv (file_name '../escape.png')" in err
