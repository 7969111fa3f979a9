"""Long options: every option the inputs accept is scored and trained in full; anything cut is reported."""

from __future__ import annotations

import csv

import pytest
import torch

from tests.conftest import color_image
from training.train import TrainConfig, main, smoke_data
from vqa_demo.config import HeadConfig
from vqa_demo.inputs import prepare_question
from vqa_demo.inputs.text import MAX_OPTION_CHARS
from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.model.encoding import RowEncoder, answer_token_budget
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import build_rows, training_cuts, variant_loss

COMMON = "a dark green square with a thin border drawn in the lower left corner, next to the small red circle"
LONG_OPTIONS = [COMMON + " of the picture", COMMON + " of the page"]


@pytest.fixture(scope="module")
def backbone():
    return build_tiny_backbone(seed=3)


def encoder_for(backbone, **kwargs) -> RowEncoder:
    return RowEncoder(
        backbone.tokenizer, backbone.processor.image_token_id, backbone.image_seq_length, **kwargs
    )


def test_options_that_differ_only_after_token_47_get_different_full_scores(tiny_predictor):
    encoder = tiny_predictor.encoder_for(tiny_predictor.variants["cond_gen"].config)
    ids = [encoder.text_ids(option) for option in LONG_OPTIONS]
    shared = next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)
    assert shared > 47  # the first 47 tokens (the old suffix cut) are identical

    result = tiny_predictor.predict(
        color_image((0, 160, 0)), "Where is the square?", LONG_OPTIONS, ["cond_gen"]
    )
    details = result["cond_gen"].cond_gen
    # sum / mean = the number of scored tokens: every option token plus <eos>.
    counts = details.loglik_sum / details.loglik_mean
    assert counts.round().tolist() == [len(i) + 1 for i in ids]
    assert abs(details.loglik_sum[0] - details.loglik_sum[1]) > 1e-4


def test_every_option_the_inputs_accept_fits_the_answer_budget(backbone):
    # 4-byte characters: one token per UTF-8 byte on a byte-level tokenizer, the worst case.
    prepared = prepare_question("Which?", ["😀" * 1000, "🙂" * MAX_OPTION_CHARS])
    encoder = encoder_for(backbone)
    assert encoder.max_suffix_tokens == answer_token_budget() >= 4 * MAX_OPTION_CHARS + 1
    for option in prepared.options:
        assert len(option) == MAX_OPTION_CHARS
        ids, cut = encoder.suffix(option)
        assert not cut and ids == [*encoder.text_ids(option), encoder.eos_id]
        assert len(ids) > 4 * MAX_OPTION_CHARS


def test_a_long_gold_answer_is_trained_in_full(backbone):
    """The COND_GEN training loss covers every answer token, as transformers' own loss on full labels does."""
    encoder = encoder_for(backbone)
    core = backbone.core
    question, options, answer = "Where is the square?", LONG_OPTIONS, 1
    rows = encoder.encode([build_rows("cond_gen", question, options, answer_index=answer)[0]])
    labels = rows.labels[0][rows.labels[0] != -100].tolist()
    assert labels == [*encoder.text_ids(options[answer]), encoder.eos_id] and len(labels) > 48
    assert rows.truncated == [False]

    pixels = backbone.processor.image_processor([color_image((0, 160, 0))], return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        ctx = HeadContext(core, encoder, HeadConfig(head="cond_gen"))
        ours = variant_loss(ctx, [question], [options], [answer], image_features(core, pixels))
        reference = core(
            input_ids=rows.input_ids,
            attention_mask=rows.attention_mask,
            token_type_ids=rows.token_type_ids,
            pixel_values=pixels,
            labels=rows.labels,
        ).loss
    assert abs(float(ours) - float(reference)) < 1e-5


def test_training_cuts_names_prompt_and_answer_overflows(backbone):
    encoder = encoder_for(backbone, max_text_tokens=64)
    over_budget = "€" * 500  # 1500 byte tokens: only a data file (no input layer) can hold this
    questions = ["Short?", "word " * 80, "Short?"]
    options = [["red", "blue"], ["red", "blue"], ["red", over_budget]]
    answers = [0, 0, 1]
    cond_gen = HeadConfig(head="cond_gen", pooling=None)
    swag = HeadConfig(head="swag", pooling="last_token")
    assert training_cuts(cond_gen, encoder, questions, options, answers) == [1, 2]
    # Classifier heads have no answer suffix; the overlong option only overflows a 64-token prompt.
    assert training_cuts(swag, encoder, questions, options, answers) == [1, 2]
    assert training_cuts(swag, encoder_for(backbone, max_text_tokens=2000), questions, options, answers) == []


def test_training_reports_a_cut_gold_answer(tmp_path):
    data = smoke_data(tmp_path, seed=0)
    metadata = data / "train" / "metadata.csv"
    with metadata.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1][f"option{rows[1]['answer']}"] = "€" * 500
    with metadata.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg = TrainConfig(
        variant="cond_gen", pooling=None, base="tiny", out=str(tmp_path / "run"), data=str(data)
    )
    cfg.smoke, cfg.max_steps, cfg.max_val = True, 1, 2
    with pytest.warns(UserWarning, match=rf"1 of \d+ training examples are cut .*{rows[1]['file_name']}"):
        main(cfg)
