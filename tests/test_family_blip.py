"""BLIP-VQA behind the family interface, checked against BLIP's own processor and forward.

References are transformers' ``BlipProcessor`` (token ids), ``BlipForQuestionAnswering.forward``'s
loss (the answer log-likelihood is ``-loss x n``), its ``generate`` (greedy answers), and the question
encoder on each row alone (pooling under padding, SWAG rows). Every numeric check is <= 1e-5. Its
``training.compare`` smoke run is checked in test_family_compare.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.family_checks import IMAGES, sum_error
from tests.family_pipeline_checks import swag_rows_vs_single_passes
from vqa_demo.config import HeadConfig, LoraSettings
from vqa_demo.model.backbone import add_lora, build_tiny_backbone
from vqa_demo.model.families.blip.family import BLIP
from vqa_demo.model.families.registry import family_for, tiny_model
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.heads import SwagHead
from vqa_demo.model.prompts import PromptRow
from vqa_demo.model.strategies import STRATEGIES
from vqa_demo.predictor import Predictor, Variant
from vqa_demo.testing import random_variant_predictor, randomize, tiny_run_config

TOL = 1e-5
QUESTIONS = ["What colour is the circle?", "How many shapes are there in this picture? Count them all"]
OPTIONS = [["red", "blue and green", "3", "yes"], ["2", "three shapes", "no", "green"]]

SOURCE = "tiny:blip"  # the module's tiny_model


def context(model, processor, **kwargs) -> HeadContext:
    return HeadContext(model, BLIP.row_encoder(processor, **kwargs), HeadConfig())


def rows_of(question: str, options: list[str]) -> list[PromptRow]:
    """The rows of all three heads for one example (cond_gen, multi_class, K swag rows)."""
    return [
        row
        for head in ("cond_gen", "multi_class", "swag")
        for row in STRATEGIES[head].prompt_rows(question, options)
    ]


def own_inputs(processor, image, text):
    return processor(images=image, text=text, return_tensors="pt")


def test_family_is_chosen_from_the_model_type(tiny_model):
    model, _ = tiny_model
    assert family_for(model.config) is BLIP and model.config.model_type == "blip"


def test_rows_are_the_processors_ids(tiny_model):
    _, processor = tiny_model
    encoder = BLIP.row_encoder(processor)
    for question, options in zip(QUESTIONS, OPTIONS):
        rows = rows_of(question, options)
        encoded = encoder.encode(rows, with_suffix=False)
        for row, ids, mask in zip(rows, encoded.input_ids, encoded.attention_mask):
            reference = own_inputs(processor, IMAGES[0], row.prefix + "\n")["input_ids"][0]
            assert ids[mask.bool()].tolist() == reference.tolist()
    # The answer-decoder row is the tokenizer's [CLS] answer [SEP] with [CLS] replaced by [DEC].
    reference = processor.tokenizer("blue and green")["input_ids"]
    assert encoder.answer_ids("blue and green") == ([processor.tokenizer.bos_token_id, *reference[1:]], False)


def test_long_prompt_is_cut_to_the_position_limit_and_flagged(tiny_model):
    model, processor = tiny_model
    limit = model.config.text_config.max_position_embeddings
    encoder = BLIP.row_encoder(processor)
    question = " ".join(["how many red circles and blue squares"] * 20)
    encoded = encoder.encode([PromptRow("", question, "\nAnswer:")], with_suffix=False)
    ids = encoded.input_ids[0].tolist()
    assert encoded.truncated == [True] and len(ids) == limit
    assert ids[0] == processor.tokenizer.cls_token_id and ids[-1] == processor.tokenizer.sep_token_id
    cue = encoder.text_ids("\nAnswer:")
    assert ids[-1 - len(cue) : -1] == cue  # the question was cut, the cue kept
    shortened, _ = encoder.prefix_text(PromptRow("", question, "\nAnswer:"))
    assert ids == own_inputs(processor, IMAGES[0], shortened)["input_ids"][0].tolist()
    with torch.no_grad():  # the model takes it (the limit is its position embeddings)
        BLIP.language_forward(
            model, encoded, BLIP.image_features(model, BLIP.preprocess(processor, IMAGES[:1]))
        )


def loss_reference(model, processor, image, prompt: str, answer_ids: list[int]) -> float:
    """BLIP's own forward: the mean loss over the predicted answer tokens, times their number."""
    with torch.no_grad():
        loss = model(**own_inputs(processor, image, prompt), labels=torch.tensor([answer_ids])).loss
    return -float(loss) * (len(answer_ids) - 1)


def test_option_loglik_is_the_models_own_loss(tiny_model):
    """Two questions of different lengths in one batch: each option's log-likelihood equals BLIP's
    own loss on that (image, question, answer) alone, although the batch pads the shorter question."""
    model, processor = tiny_model
    ctx = context(model, processor)
    rows = [STRATEGIES["cond_gen"].prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    encoded = ctx.encoder.encode(rows, with_suffix=False)
    assert encoded.attention_mask.sum(1).unique().numel() == 2  # padded in the batch
    features = BLIP.image_features(model, BLIP.preprocess(processor, IMAGES))
    total, mean = BLIP.answer_scorer.option_loglik(ctx, encoded, features, OPTIONS)
    worst = 0.0
    for b, (row, options) in enumerate(zip(rows, OPTIONS)):
        for k, option in enumerate(options):
            answer = ctx.encoder.answer_ids(option)[0]
            reference = loss_reference(model, processor, IMAGES[b], row.prefix + "\n", answer)
            worst = max(worst, abs(float(total[b, k]) - reference))
            assert float(mean[b, k]) == pytest.approx(float(total[b, k]) / (len(answer) - 1), abs=TOL)
    print(f"BLIP option log-lik vs own forward: max |diff| = {worst:.2e}")
    assert worst <= TOL


def test_one_call_encodes_each_question_once_and_scores_as_the_two_separate_passes(tiny_model):
    """COND_GEN's scores and answers of one call read one pass of the question encoder, and equal
    :meth:`option_loglik` and :meth:`generate` run separately (each encoding on its own), which
    equal BLIP's own loss x answer length and its own greedy ``generate`` (the tests above)."""
    model, processor = tiny_model
    ctx = context(model, processor)
    rows = [STRATEGIES["cond_gen"].prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    encoded = ctx.encoder.encode(rows, with_suffix=False)
    features = BLIP.image_features(model, BLIP.preprocess(processor, IMAGES))
    calls = []
    hook = model.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        total, mean, generated = BLIP.answer_scorer.scores_and_answers(ctx, encoded, features, OPTIONS, 6)
    finally:
        hook.remove()
    assert len(calls) == 1
    separate_total, separate_mean = BLIP.answer_scorer.option_loglik(ctx, encoded, features, OPTIONS)
    diff = max(float((total - separate_total).abs().max()), float((mean - separate_mean).abs().max()))
    print(f"BLIP one encoding vs two: max |diff| of option log-liks = {diff:.1e}")
    assert diff <= 1e-6
    assert generated == BLIP.answer_scorer.generate(ctx, encoded, features, 6)
    for b, (row, options) in enumerate(zip(rows, OPTIONS)):
        for k, option in enumerate(options):
            reference = loss_reference(
                model, processor, IMAGES[b], row.prefix + "\n", ctx.encoder.answer_ids(option)[0]
            )
            assert sum_error(total[b, k], reference) <= TOL


def test_generation_is_the_models_greedy_generate(tiny_model):
    model, processor = tiny_model
    ctx = context(model, processor)
    rows = [PromptRow("", q, "") for q in QUESTIONS]
    encoded = ctx.encoder.encode(rows, with_suffix=False)
    features = BLIP.image_features(model, BLIP.preprocess(processor, IMAGES))
    generated = BLIP.answer_scorer.generate(ctx, encoded, features, max_new_tokens=6)
    sep, pad = processor.tokenizer.sep_token_id, processor.tokenizer.pad_token_id
    for b, question in enumerate(QUESTIONS):
        own = model.generate(
            **own_inputs(processor, IMAGES[b], question + "\n"),
            max_new_tokens=6,
            do_sample=False,
            num_beams=1,
        )
        reference = [t for t in own[0, 1:].tolist() if t != pad]
        reference = reference[: reference.index(sep)] if sep in reference else reference
        assert generated[b] == reference and generated[b]


def test_training_loss_is_the_models_own_loss_and_trains(tiny_model):
    model, processor = tiny_model
    ctx = context(model, processor)
    answers = ["blue and green", "2"]
    rows = [PromptRow("", q, "\nAnswer:", suffix=a) for q, a in zip(QUESTIONS, answers)]
    encoded = ctx.encoder.encode(rows, with_suffix=True)
    features = BLIP.image_features(model, BLIP.preprocess(processor, IMAGES))
    total, count = BLIP.answer_scorer.suffix_loss(ctx, encoded, features, label_smoothing=0.0)
    reference, tokens = 0.0, 0
    for b, row in enumerate(rows):
        answer = ctx.encoder.answer_ids(row.suffix)[0]
        reference -= loss_reference(model, processor, IMAGES[b], row.prefix + "\n", answer)
        tokens += len(answer) - 1
    assert count == tokens and sum_error(total.detach(), reference) <= TOL
    total.backward()
    assert model.text_decoder.bert.encoder.layer[0].crossattention.self.query.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_pooled_states_under_padding_equal_each_row_alone(tiny_model):
    """The question encoder's states at real positions, hence both poolings, ignore the padding."""
    model, processor = tiny_model
    ctx = context(model, processor)
    rows = rows_of(QUESTIONS[0], OPTIONS[0])[:2]  # cond_gen's and multi_class's rows differ in length
    encoded = ctx.encoder.encode(rows, with_suffix=False)
    features = BLIP.image_features(model, BLIP.preprocess(processor, IMAGES[:1])).expand(2, -1, -1)
    head = SwagHead(BLIP.hidden_size(model), "attentive")
    randomize(head, 0)
    with torch.no_grad():
        batched = BLIP.language_forward(model, encoded, features).last_hidden_state
        scores, _ = head.row_scores(batched, encoded.attention_mask.bool())
        for r in range(2):
            alone = ctx.encoder.encode(rows[r : r + 1], with_suffix=False)
            states = BLIP.language_forward(model, alone, features[:1]).last_hidden_state
            length = int(alone.attention_mask.sum())
            assert (batched[r, :length] - states[0]).abs().max() <= TOL
            assert (
                abs(float(scores[r]) - float(head.row_scores(states, alone.attention_mask.bool())[0][0]))
                <= TOL
            )
    # The reference for the states themselves: BLIP's own question encoder on the processor's row.
    own = own_inputs(processor, IMAGES[0], rows[0].prefix + "\n")
    with torch.no_grad():
        image = model.vision_model(pixel_values=own["pixel_values"]).last_hidden_state
        reference = model.text_encoder(
            input_ids=own["input_ids"], attention_mask=own["attention_mask"], encoder_hidden_states=image
        ).last_hidden_state
    length = int(own["attention_mask"].sum())
    assert (batched[0, :length] - reference[0]).abs().max() <= TOL


@pytest.fixture(scope="module")
def predictor():
    return random_variant_predictor(build_tiny_backbone(source="tiny:blip"), max_new_tokens=4)


@pytest.mark.parametrize("name", ["swag-last_token", "swag-attentive"])
def test_swag_rows_equal_single_passes(predictor, name):
    """Each option's SWAG score in a batch of B examples x K rows equals that (image, question, option)
    row scored on its own (padding of the question encoder's rows changes nothing)."""
    worst = swag_rows_vs_single_passes(predictor, name, IMAGES, QUESTIONS, OPTIONS)
    print(f"BLIP {name} rows vs single passes: max |diff| = {worst:.2e}")
    assert worst <= TOL


def test_every_variant_answers_and_vision_runs_once_per_image_per_call(predictor):
    calls = []
    vision = predictor.backbone.core.vision_model
    hook = vision.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    try:
        results = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS)
    finally:
        hook.remove()
    assert calls == [len(IMAGES)]  # one pass over both images, shared by all five variants
    assert set(results[0]) == {
        "cond_gen",
        "multi_class-last_token",
        "multi_class-attentive",
        "swag-last_token",
        "swag-attentive",
    }
    cond_gen = results[1]["cond_gen"].cond_gen
    assert cond_gen.generated_text and np.isfinite(cond_gen.loglik_sum).all()


def test_a_cond_gen_predict_runs_the_question_encoder_once(predictor):
    calls = []
    hook = predictor.backbone.core.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        (result,) = predictor.predict_batch(IMAGES[:1], QUESTIONS[:1], OPTIONS[:1], ["cond_gen"])
    finally:
        hook.remove()
    assert len(calls) == 1 and result["cond_gen"].cond_gen.generated_text


@pytest.mark.parametrize("vision", [False, True])
def test_lora_targets(vision):
    """``language``: the question encoder's and answer decoder's attention/MLP linears (10 per layer);
    ``all-linear`` adds the ViT but never the decoder's output layer, which is tied to the embeddings."""
    backbone = build_tiny_backbone(source="tiny:blip")
    add_lora(backbone, LoraSettings(r=4, alpha=8, dropout=0.0, vision=vision))
    wrapped = {
        name.rsplit(".lora_A", 1)[0] for name, _ in backbone.model.named_parameters() if ".lora_A" in name
    }
    language = {name for name in wrapped if ".text_encoder." in name or ".text_decoder.bert." in name}
    assert len(language) == 10 * 2 * 2
    assert not any(".text_decoder.cls." in name for name in wrapped)
    assert len(wrapped - language) == (8 if vision else 0)  # ViT: qkv, projection, fc1, fc2 per layer


def test_tiny_encoder_families_build_the_same_tokenizer_every_time():
    """A training run and the evaluation that rebuilds ``tiny:blip`` / ``tiny:vilt`` must agree on ids
    (tokenizers' WordPiece trainer broke ties differently on every run)."""
    for name in ("blip", "vilt"):
        first, second = (tiny_model(name)[1].tokenizer for _ in range(2))
        assert first.get_vocab() == second.get_vocab(), name


def test_an_all_linear_variant_does_not_leak_into_the_shared_image_features():
    """A variant with LoRA in the ViT (``all-linear``) computes its own image features; the others
    share the bare tower's, so their scores equal those of a predictor without that variant."""
    alone = random_variant_predictor(build_tiny_backbone(source="tiny:blip"), ["swag-last_token"])
    expected = alone.predict_batch(IMAGES, QUESTIONS, OPTIONS)
    mixed = random_variant_predictor(build_tiny_backbone(source="tiny:blip"), ["swag-last_token"])
    vision = LoraSettings(r=4, alpha=8, dropout=0.0, init_weights=False, vision=True)
    add_lora(mixed.backbone, vision, adapter_name="all_linear")
    variants = [
        *mixed.variants.values(),
        Variant("cond_gen-all-linear", tiny_run_config("cond_gen", lora=vision), None, "all_linear"),
    ]
    mixed = Predictor(mixed.backbone, variants, matcher=mixed.matcher)
    assert mixed.adapters.adapts_tower()
    results = mixed.predict_batch(IMAGES, QUESTIONS, OPTIONS)
    for b in range(2):
        diff = np.abs(
            results[b]["swag-last_token"].option_scores - expected[b]["swag-last_token"].option_scores
        )
        assert diff.max() <= TOL
