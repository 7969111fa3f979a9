"""User mistakes at the CLIs: one line ``error: ...`` naming the problem and the fix, exit code 2, no
traceback. Called in-process through each CLI's ``cli(argv)`` (one subprocess checks the real thing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import httpx
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from PIL import Image

from training import compare, train
from vqa_demo import evaluate
from vqa_demo.data.writers import write_metadata
from vqa_demo.hub_errors import hub_problem
from vqa_demo.testing import tiny_run_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """An imagefolder with train/ and validation/ (2 rows each) and a datasets folder with train only."""
    root = tmp_path_factory.mktemp("cli-data")
    for split in ("train", "validation"):
        (root / "folder" / split).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(root / "folder" / split / "a.png")
        rows = [{"file_name": "a.png", "question": "q?", "option1": "x", "option2": "y", "answer": 1}] * 2
        write_metadata(root / "folder" / split, rows)
    dataset = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 8))] * 2, "question": ["q?"] * 2, "choices": [["a", "b"]] * 2}
    )
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(root / "hf"))
    return root


def user_error(capsys, cli, argv: list[str]) -> str:
    """Run ``cli(argv)``; assert exit code 2, no traceback and one ``error:`` line; return it.

    (Data sources may print which schema they read before the error: an information line.)"""
    with pytest.raises(SystemExit) as caught:
        cli(argv)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(lines) and lines[-1].startswith("error: "), lines
    assert all(" schema: " in line for line in lines[:-1]), lines
    return lines[-1]


def run_config_dir(folder: Path, source: str) -> Path:
    config = tiny_run_config("cond_gen")
    config.backbone.source = source
    folder.mkdir(parents=True)
    (folder / "run_config.json").write_text(json.dumps(config.to_dict()))
    return folder


TRAIN_CASES = [
    (["--pooling", "mean"], ["argument --pooling: invalid choice: 'mean'", "attentive", "--help"]),
    (["--variant", "swag", "--base", "tiny", "--smoke"], ["swag needs pooling", "last_token", "--help"]),
    (["--variant", "cond", "--base", "tiny"], ["argument --variant: invalid choice: 'cond'", "cond_gen"]),
    (["--epochs", "two"], ["argument --epochs: invalid float value: 'two'"]),
    (["--report-to", "mlflow"], ["argument --report-to: invalid choice", "tensorboard"]),
    (
        ["--quantization", "4bit", "--base", "tiny", "--smoke"],
        ["--quantization 4bit needs a CUDA GPU", "drop --quantization"],
    ),
    (["--quantization", "2bit"], ["argument --quantization: invalid choice: '2bit'", "'4bit', '8bit'"]),
]


@pytest.mark.parametrize(("argv", "words"), TRAIN_CASES)
def test_train_flag_mistakes(capsys, argv, words):
    """Seven flag mistakes: argparse's errors and the settings checks, each one line."""
    if "cuda" in " ".join(words).lower() and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = user_error(capsys, train.cli, argv)
    assert all(w in err for w in words), err


def test_train_data_mistakes(capsys, data, tmp_path):
    out = ["--base", "tiny", "--smoke", "--out", str(tmp_path / "run")]
    err = user_error(capsys, train.cli, ["--data", str(tmp_path / "nope"), *out])
    assert "no such folder or file" in err and "hub dataset id" in err
    err = user_error(capsys, train.cli, ["--data", str(data / "folder" / "train"), *out])
    assert "is a single split; training needs train and validation" in err
    err = user_error(capsys, train.cli, ["--data", str(data / "hf"), *out])
    assert "2 of 2 training rows have no answer" in err and "--columns answer=" in err
    err = user_error(capsys, train.cli, ["--data", str(data / "hf"), "--columns", "question", *out])
    assert "--columns: 'question' is not role=column" in err


def test_compare_mistakes_and_help(capsys, tmp_path):
    err = user_error(capsys, compare.cli, ["--variants", "swag"])
    assert "argument --variants: invalid choice: 'swag'" in err and "swag-attentive" in err
    if not __import__("torch").cuda.is_available():
        err = user_error(capsys, compare.cli, ["--base", "tiny", "--quantization", "8bit", "--smoke"])
        assert "--quantization 8bit needs a CUDA GPU" in err
    with pytest.raises(SystemExit) as caught:
        compare.cli(["--help"])
    help_text = capsys.readouterr().out
    assert caught.value.code == 0 and help_text.index("Train the five variants") < help_text.index("options:")
    assert "--variants" in help_text and "--variant " not in help_text and "--pooling" not in help_text


def test_train_help_lists_choices_and_defaults(capsys):
    with pytest.raises(SystemExit):
        train.cli(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--variant {cond_gen,multi_class,swag}", "--pooling {last_token,attentive}"):
        assert flag in text
    assert "--prompt-style {default,choose_from}" in text and "--quantization {4bit,8bit}" in text
    assert "answer head (default: cond_gen)" in text and "--prog" not in text
    assert text.count("(default:") >= 35


def test_evaluate_mistakes(capsys, data, tmp_path):
    valid = ["--data", str(data / "folder" / "validation"), "--out", str(tmp_path / "eval")]
    err = user_error(capsys, evaluate.cli, ["--checkpoints", str(tmp_path / "none"), *valid])
    assert "--checkpoints" in err and "no variant checkpoints (no such folder)" in err
    err = user_error(capsys, evaluate.cli, ["--data", str(tmp_path / "x"), "--out", str(tmp_path)])
    assert "no such folder or file" in err
    err = user_error(capsys, evaluate.cli, ["--data", str(data / "hf"), "--split", "test", "--out", "o"])
    assert "has no 'test' split (splits found: train)" in err
    err = user_error(capsys, evaluate.cli, ["--batch-size", "many", *valid])
    assert "argument --batch-size: invalid int value" in err
    run = run_config_dir(tmp_path / "run" / "best", str(tmp_path / "gone" / "base"))
    err = user_error(capsys, evaluate.cli, ["--checkpoints", str(run), *valid])
    assert "the base model" in err and "was not found; pass --base" in err


def test_hub_base_offline_through_evaluate(capsys, data, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    run = run_config_dir(tmp_path / "run" / "best", "tiny")
    valid = ["--data", str(data / "folder" / "validation"), "--out", str(tmp_path / "eval")]
    err = user_error(capsys, evaluate.cli, ["--checkpoints", str(run), "--base", "someone/no-model", *valid])
    assert "--base someone/no-model: this model is not in your local Hugging Face cache" in err
    assert "HF_HUB_OFFLINE=1 is set" in err
    err = user_error(capsys, evaluate.cli, ["--checkpoints", str(run), "--base", "./typo/base", *valid])
    assert "no such model on the Hugging Face Hub and no such local folder; check the id" in err


def test_gated_and_missing_hub_errors_get_their_own_sentences():
    request = httpx.Request("GET", "https://huggingface.co/google/x/resolve/main/config.json")
    gated = GatedRepoError(
        "Access to model google/x is restricted.", response=httpx.Response(401, request=request)
    )
    missing = RepositoryNotFoundError("Repository Not Found", response=httpx.Response(404, request=request))
    for error, words in ((gated, "is gated on the Hugging Face Hub"), (missing, "no such model on the")):
        try:  # wrapped the way transformers wraps the hub's errors
            raise OSError("google/x is not a local folder") from error
        except OSError as wrapped:
            message = hub_problem(wrapped, "google/x", "--base")
        assert words in message and "\n" not in message
    assert "HF_TOKEN" in hub_problem(gated, "google/x", "--base")


@pytest.mark.slow  # a fresh interpreter is the point
def test_train_offline_hub_base_as_a_user_runs_it(data, tmp_path):
    """The real command with HF_HUB_OFFLINE=1 and a hub id not in the cache: one line, exit 2, no retries."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_HOME"] = str(tmp_path / "hf-home")
    command = [sys.executable, "-m", "training.train", "--base", "someone/not-cached-model"]
    command += ["--data", str(data / "folder"), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert (
        "error: --base someone/not-cached-model: this model is not in your local Hugging Face cache"
        in done.stderr
    )
