"""The training CLI: smoke runs, resume equivalence, NaN stop, and one evaluation path."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import training.steps as steps_module
import training.train as train_module
from training.steps import NonFiniteLossError
from training.train import TrainConfig, main, parse_args
from vqa_demo.checkpoints import check_variant_dir
from vqa_demo.config import VARIANTS, LoraSettings, RunConfig, TrainSettings
from vqa_demo.data.jsonl import read_jsonl
from vqa_demo.data.splits import load_split
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.loading import load_predictor
from vqa_demo.model.encoding import RowEncoder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return train_module.smoke_data(tmp_path_factory.mktemp("data"), seed=0)


def smoke_config(out, data_dir, **overrides) -> TrainConfig:
    cfg = TrainConfig(
        variant="swag", pooling="attentive", base="tiny", out=str(out), data=str(data_dir), smoke=True
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def read_metrics(out):
    return read_jsonl(out / "metrics.jsonl")


def test_cli_parses_flags():
    cfg = parse_args(
        ["--variant", "multi_class", "--pooling", "last_token", "--smoke", "--max-steps", "3", "--lr", "1e-3"]
    )
    assert (cfg.variant, cfg.pooling, cfg.smoke, cfg.max_steps, cfg.lr) == (
        "multi_class",
        "last_token",
        True,
        3,
        1e-3,
    )


def test_training_defaults_are_the_run_configs_defaults():
    """A training run with no flags saves exactly the default RunConfig: one source for the shared defaults."""
    assert parse_args([]).run_config() == RunConfig()
    # A changed default flag reaches the saved config's field.
    assert parse_args(["--epochs", "3", "--lora-r", "4"]).run_config() == RunConfig(
        lora=LoraSettings(r=4), train=TrainSettings(epochs=3.0)
    )


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "pooling"), [("cond_gen", None), ("multi_class", "last_token")])
def test_smoke_run_writes_loadable_checkpoint_and_metrics(tmp_path, data_dir, variant, pooling):
    result = main(smoke_config(tmp_path, data_dir, variant=variant, pooling=pooling))
    config = check_variant_dir(tmp_path / "best")
    assert config.head.head == variant and config.head.pooling == pooling
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    assert all(math.isfinite(r["loss"]) for r in records)
    evals = [r for r in records if "accuracy" in r]
    assert [r["step"] for r in evals] == [4, 8]
    assert result["best_accuracy"] == max(r["accuracy"] for r in evals)


@pytest.mark.slow
def test_resume_finishes_like_an_uninterrupted_run(tmp_path, data_dir):
    full = main(smoke_config(tmp_path / "full", data_dir))
    stopped = main(smoke_config(tmp_path / "cut", data_dir, stop_after_steps=4))
    assert stopped["stopped_at"] == 4
    # Leftovers of a save that was killed half-way must not matter.
    (tmp_path / "cut" / ".state.partial").mkdir()
    resumed = main(smoke_config(tmp_path / "cut", data_dir, resume=True))
    assert resumed["best_accuracy"] == full["best_accuracy"]
    assert read_metrics(tmp_path / "cut") == [
        {k: v for k, v in r.items() if k != "seconds"} | {"seconds": c["seconds"]}
        for r, c in zip(read_metrics(tmp_path / "full"), read_metrics(tmp_path / "cut"))
    ]
    # The clock goes on across the interruption: the resumed part's seconds start where the cut part's end.
    clock = [r["seconds"] for r in read_metrics(tmp_path / "cut")]
    assert clock == sorted(clock) and resumed["seconds"] >= clock[-1] > clock[0] > 0
    for name in ("adapter_model.safetensors", "head.safetensors"):
        a, b = load_file(tmp_path / "full" / "last" / name), load_file(tmp_path / "cut" / "last" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.slow
def test_training_time_validation_equals_cli_evaluation_for_all_five_variants(tmp_path, data_dir):
    """One evaluation path: every example's choice and scores, not just the accuracy."""
    selection = str(data_dir / "validation")  # an explicit selection split, evaluated again below
    for name, (head, pooling) in VARIANTS.items():
        main(
            smoke_config(
                tmp_path / name,
                data_dir,
                variant=head,
                pooling=pooling,
                max_steps=4,
                selection_split=selection,
            )
        )
    metrics = evaluate_main(
        evaluate_args(
            ["--checkpoints", *(str(tmp_path / name / "best") for name in VARIANTS)]
            + ["--data", str(data_dir / "validation"), "--out", str(tmp_path / "eval"), "--batch-size", "32"]
        )
    )
    cli = read_predictions(tmp_path / "eval" / "predictions.jsonl")
    assert len(cli) == len(load_split(data_dir / "validation"))
    for name in VARIANTS:
        logged = json.loads((tmp_path / name / "best" / "run_config.json").read_text())["metrics"]
        assert metrics["variants"][name]["accuracy"] == logged["selection_accuracy"]
        during_training = read_predictions(tmp_path / name / "best_selection" / "predictions.jsonl")
        assert [r["id"] for r in during_training] == [r["id"] for r in cli]
        for trained, evaluated in zip(during_training, cli):
            a, b = trained["variants"][name], evaluated["variants"][name]
            assert a["choice"] == b["choice"], (name, trained["id"])
            for key in (
                "option_scores",
                "probabilities",
                "loglik_mean",
                "loglik_sum",
                "loglik_char",
                "cosine",
            ):
                if key in a:
                    torch.testing.assert_close(torch.tensor(b[key]), torch.tensor(a[key]), rtol=0, atol=1e-5)
            assert a.get("generated_text") == b.get("generated_text")


@pytest.mark.slow
def test_non_default_separator_trains_saves_loads_and_predicts_the_same_encoding(
    tmp_path, data_dir, monkeypatch
):
    separator = " =>\n"
    encoded: dict[str, dict[str, tuple[int, ...]]] = {"train": {}, "predict": {}}
    phase = ["train"]
    real_prefix_ids = RowEncoder.prefix_ids

    def recording_prefix_ids(self, row):
        ids, truncated = real_prefix_ids(self, row)
        encoded[phase[0]][row.prefix] = tuple(ids)
        return ids, truncated

    monkeypatch.setattr(RowEncoder, "prefix_ids", recording_prefix_ids)
    main(
        smoke_config(
            tmp_path, data_dir, variant="cond_gen", pooling=None, max_steps=2, prompt_separator=separator,
            log_examples=True,
        )
    )  # fmt: skip
    config = check_variant_dir(tmp_path / "best")
    assert config.prompt.separator == separator

    phase[0] = "predict"
    predictor = load_predictor([tmp_path / "best"])
    trained = {i for r in read_jsonl(tmp_path / "examples.jsonl") for share in r["ranks"] for i in share}
    examples = [ex for ex in load_split(data_dir / "train").examples if ex.id in trained][:4]
    predictor.predict_batch(
        [ex.load_image() for ex in examples],
        [ex.question for ex in examples],
        [list(ex.options) for ex in examples],
    )
    separator_ids = tuple(predictor.backbone.tokenizer(separator, add_special_tokens=False)["input_ids"])
    assert len(separator_ids) > 1
    assert all(ids[-len(separator_ids) :] == separator_ids for ids in encoded["train"].values())
    shared = encoded["train"].keys() & encoded["predict"].keys()
    assert len(shared) == len(examples)
    assert all(encoded["train"][prefix] == encoded["predict"][prefix] for prefix in shared)


def test_non_finite_loss_stops_with_the_step(tmp_path, data_dir, monkeypatch):
    real_loss = steps_module.variant_loss_terms
    calls = {"n": 0}

    def flaky_loss(*args, **kwargs):
        calls["n"] += 1
        total, terms = real_loss(*args, **kwargs)
        return (total * float("nan") if calls["n"] == 3 else total), terms

    monkeypatch.setattr(steps_module, "variant_loss_terms", flaky_loss)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        main(smoke_config(tmp_path, data_dir))


class Killed(BaseException):
    """Stands in for SIGKILL arriving in the middle of a save."""


@pytest.mark.slow
def test_kill_during_state_save_resumes_from_last_complete_state(tmp_path, data_dir, monkeypatch):
    import training.resume as resume_module

    full = main(smoke_config(tmp_path / "full", data_dir))
    real_save_file, calls = resume_module.save_tensors, {"n": 0}

    def dying_save_file(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if (
            calls["n"] == 4
        ):  # the first file of the second state save (step 8): lora, head, rng, then lora again
            real_save_file(tensors, path, *args, **kwargs)
            raise Killed()
        return real_save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(resume_module, "save_tensors", dying_save_file)
    with pytest.raises(Killed):
        main(smoke_config(tmp_path / "cut", data_dir))
    monkeypatch.setattr(resume_module, "save_tensors", real_save_file)
    state = json.loads((tmp_path / "cut" / "state" / "state.json").read_text())
    assert state["step"] == 4, "the interrupted save must leave the previous state in place"
    resumed = main(smoke_config(tmp_path / "cut", data_dir, resume=True))
    assert resumed["best_accuracy"] == full["best_accuracy"]
    a = load_file(tmp_path / "full" / "last" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "last" / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
