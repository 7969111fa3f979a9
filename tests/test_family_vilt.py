"""ViLT behind the family interface, checked against ViLT's own processor and forward.

References are transformers' ``ViltProcessor`` (token ids, pixel values and pixel mask) and
``ViltForQuestionAnswering`` run on each row alone (states, the VQA classifier's logits). Every
numeric check is <= 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.family_checks import random_image
from tests.family_pipeline_checks import swag_rows_vs_single_passes
from training.train import main as train_main
from training.train import parse_args
from vqa_demo.config import ConfigError, LoraSettings
from vqa_demo.explain.attribution import attribute
from vqa_demo.model.backbone import add_lora, build_tiny_backbone
from vqa_demo.model.families.registry import FAMILIES, family_for
from vqa_demo.model.families.vilt.family import BASELINE_NAME, VILT, cropped
from vqa_demo.model.families.vilt.tiny import VILT_ANSWERS
from vqa_demo.model.heads import MultiClassHead
from vqa_demo.model.prompts import PromptRow
from vqa_demo.model.strategies import STRATEGIES
from vqa_demo.testing import random_variant_predictor, randomize
from vqa_demo.ui.explain_panels import pooling_panels
from vqa_demo.variant import Variant

TOL = 1e-5
QUESTIONS = ["What colour is the circle?", "How many shapes are there in this picture?"]
OPTIONS = [["red", "Blue", "green and yellow", "no"], ["2", "three", "3", "yes"]]
CLASSIFIERS = ["multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]

# Landscape and portrait: the processor keeps the aspect ratio, so a batch of them is padded.
IMAGES = [random_image(30, 40, 0), random_image(48, 24, 1)]
SOURCE = "tiny:vilt"  # the module's tiny_model


def own_inputs(processor, images, texts):
    processor.tokenizer.padding_side = "right"
    return processor(images=list(images), text=list(texts), return_tensors="pt", padding=True)


def test_family_is_chosen_from_the_model_type_and_has_no_cond_gen(tiny_model):
    model, _ = tiny_model
    assert family_for(model.config) is VILT and model.config.model_type == "vilt"
    assert not VILT.supports(STRATEGIES["cond_gen"])
    assert VILT.supports(STRATEGIES["multi_class"]) and VILT.supports(STRATEGIES["swag"])


def test_rows_are_the_processors_ids_and_cut_at_40_tokens(tiny_model):
    _, processor = tiny_model
    encoder = VILT.row_encoder(processor)
    rows = [*STRATEGIES["swag"].prompt_rows(QUESTIONS[0], OPTIONS[0]), PromptRow("", QUESTIONS[1], "")]
    encoded = encoder.encode(rows, with_suffix=False)
    assert not any(encoded.truncated)
    for row, ids, mask in zip(rows, encoded.input_ids, encoded.attention_mask):
        reference = own_inputs(processor, IMAGES[:1], [row.prefix + "\n"])["input_ids"][0]
        assert ids[mask.bool()].tolist() == reference.tolist()
    long_row = STRATEGIES["multi_class"].prompt_rows(" ".join([QUESTIONS[1]] * 5), OPTIONS[1])[0]
    cut = encoder.encode([long_row], with_suffix=False)
    assert cut.truncated == [True] and cut.input_ids.shape[1] == 40
    shortened, _ = encoder.prefix_text(long_row)
    assert (
        cut.input_ids[0].tolist() == own_inputs(processor, IMAGES[:1], [shortened])["input_ids"][0].tolist()
    )


def test_canvas_holds_the_processors_pixels_and_mask(tiny_model):
    _, processor = tiny_model
    canvas = VILT.preprocess(processor, IMAGES)
    assert tuple(canvas.shape[1:]) == VILT.pixel_shape(processor)
    pixel_values, pixel_mask = cropped(canvas)
    reference = processor.image_processor(IMAGES, return_tensors="pt")  # pads the batch itself
    assert torch.equal(pixel_mask, reference["pixel_mask"])
    assert torch.equal(pixel_values, reference["pixel_values"])
    # The canvas is the largest image the processor can make, so an extreme aspect ratio still fits.
    wide = VILT.preprocess(processor, [random_image(16, 100, 2)])
    assert (
        wide[0, 3].sum()
        == processor.image_processor([random_image(16, 100, 2)], return_tensors="pt")["pixel_mask"].sum()
    )


def test_states_and_pooling_under_padding_equal_each_row_alone(tiny_model):
    """Two rows of different text lengths and image sizes: the text states (hence both poolings)
    equal ViLT's own forward on each row alone, through its processor."""
    model, processor = tiny_model
    encoder = VILT.row_encoder(processor)
    rows = [STRATEGIES["multi_class"].prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    encoded = encoder.encode(rows, with_suffix=False)
    assert (encoded.attention_mask == 0).any()
    features = VILT.image_features(model, VILT.preprocess(processor, IMAGES))
    heads = [MultiClassHead(VILT.hidden_size(model), pooling, 4) for pooling in ("last_token", "attentive")]
    for seed, head in enumerate(heads):
        randomize(head, seed)
    worst = 0.0
    with torch.no_grad():
        batched = VILT.language_forward(model, encoded, features).last_hidden_state
        mask = encoded.attention_mask.bool()
        batched_scores = [head(batched, mask, 4)[0] for head in heads]
        for r, row in enumerate(rows):
            own = own_inputs(processor, IMAGES[r : r + 1], [encoder.prefix_text(row)[0]])  # as cut to 40
            length = own["input_ids"].shape[1]
            states = model.vilt(**own).last_hidden_state[:, :length]
            worst = max(worst, float((batched[r, :length] - states[0]).abs().max()))
            own_mask = own["attention_mask"].bool()
            for head, scores in zip(heads, batched_scores):
                worst = max(worst, float((scores[r] - head(states, own_mask, 4)[0][0]).abs().max()))
    print(f"ViLT states and pooled scores under padding vs own forward alone: max |diff| = {worst:.2e}")
    assert worst <= TOL


@pytest.fixture(scope="module")
def predictor():
    backbone = build_tiny_backbone(source="tiny:vilt")
    predictor = random_variant_predictor(backbone, CLASSIFIERS)
    for name, config in backbone.family.baseline_configs(backbone.source).items():
        predictor.variants[name] = Variant(name, config)
    return predictor


@pytest.mark.parametrize("name", ["swag-last_token", "swag-attentive"])
def test_swag_rows_equal_single_passes(predictor, name):
    worst = swag_rows_vs_single_passes(predictor, name, IMAGES, QUESTIONS, OPTIONS)
    print(f"ViLT {name} rows vs single passes: max |diff| = {worst:.2e}")
    assert worst <= TOL


def test_baseline_is_vilts_own_classifier_on_known_options(predictor):
    model, processor = predictor.backbone.core, predictor.backbone.processor
    results = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS, [BASELINE_NAME])
    worst = 0.0
    for b, (question, options) in enumerate(zip(QUESTIONS, OPTIONS)):
        # The LoRA layers are injected into the model: its own forward runs as the bare base here.
        with torch.no_grad(), predictor.activate(None):
            logits = model(**own_inputs(processor, IMAGES[b : b + 1], [question])).logits[0]
        prediction = results[b][BASELINE_NAME]
        for k, option in enumerate(options):
            if option.lower() in VILT_ANSWERS:
                worst = max(
                    worst,
                    abs(prediction.option_scores[k] - float(logits[VILT_ANSWERS.index(option.lower())])),
                )
            else:
                assert prediction.option_scores[k] == -np.inf and prediction.probabilities[k] == 0
                assert (
                    repr(option) in prediction.note and "not in ViLT's answer vocabulary" in prediction.note
                )
    print(f"ViLT baseline vs its own classifier: max |diff| = {worst:.2e}")
    assert worst <= TOL


def test_baseline_says_plainly_when_it_knows_no_option(predictor):
    result = predictor.predict(IMAGES[0], QUESTIONS[0], ["purple", "a triangle"], [BASELINE_NAME])
    prediction = result[BASELINE_NAME]
    assert np.isneginf(prediction.option_scores).all()
    assert "no option is in ViLT's answer vocabulary" in prediction.note
    assert np.allclose(prediction.probabilities, 0.5)  # no preference, not NaN
    assert prediction.to_dict()["extras"]["note"] == prediction.note


def test_every_classifier_variant_answers(predictor):
    results = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS)
    assert set(results[0]) == {*CLASSIFIERS, BASELINE_NAME}
    for name in CLASSIFIERS:
        assert np.isfinite(results[1][name].option_scores).all()


def test_training_cond_gen_on_vilt_is_refused_plainly(tmp_path):
    cfg = parse_args(
        ["--variant", "cond_gen", "--base", "tiny:vilt", "--smoke", "--out", str(tmp_path / "run")]
    )
    with pytest.raises(SystemExit, match="cond_gen needs a model that writes answers; vilt has none"):
        train_main(cfg)


def test_training_the_classifier_baseline_is_refused_at_config_validation(tmp_path):
    cfg = parse_args(["--base", "tiny:vilt", "--smoke", "--out", str(tmp_path / "run")])
    cfg.variant = "vilt_answer_classifier"
    with pytest.raises(
        ConfigError, match="zero-training baseline .* train one of cond_gen, multi_class, swag"
    ):
        cfg.run_config()
    assert not (tmp_path / "run").exists()


def test_the_classifier_baseline_is_a_registered_strategy_that_runs_on_vilt_only():
    strategy = STRATEGIES["vilt_answer_classifier"]
    assert [name for name, family in FAMILIES.items() if family.refusal(strategy) is None] == ["vilt"]
    assert "runs on vilt only" in FAMILIES["llava"].refusal(strategy)


def test_the_classifier_baselines_loss_is_the_cross_entropy_of_its_option_scores(predictor):
    """Not trained, but its loss is the real one: K-way cross-entropy of the options' answer logits,
    with a gradient into the model."""
    variant = predictor.variants[BASELINE_NAME]
    ctx = predictor.context(variant)
    options = [["red", "blue", "green"], ["yes", "no", "purple"]]
    features = VILT.image_features(ctx.core, predictor.pixel_values(IMAGES))
    total, count = variant.strategy.loss_terms(ctx, list(QUESTIONS), options, [2, 0], features)
    scores = variant.strategy.scores(ctx, list(QUESTIONS), options, features).scores
    reference = torch.nn.functional.cross_entropy(torch.tensor(scores), torch.tensor([2, 0]), reduction="sum")
    assert count == 2 and abs(float(total.detach()) - float(reference)) <= TOL
    total.backward()
    trainable = [p for p in ctx.core.parameters() if p.requires_grad]
    assert trainable and any(float(p.grad.abs().sum()) > 0 for p in trainable if p.grad is not None)
    ctx.core.zero_grad(set_to_none=True)


@pytest.mark.slow
def test_compare_smoke_evaluates_vilts_own_classifier_as_a_zero_training_baseline(compare_smoke):
    """``training.compare --base tiny:vilt --smoke`` (every family's checks of it: test_family_compare.py):
    ViLT's own classifier is evaluated beside the four trained classifier variants, untrained."""
    _, comparison = compare_smoke("tiny:vilt")
    baseline = comparison["variants"][BASELINE_NAME]
    assert (
        baseline["checkpoint"] is None
        and baseline["train_seconds"] == 0.0
        and "zero-training" in baseline["training"]
    )


def test_the_pooling_caption_says_the_pooled_states_are_the_text_positions(predictor):
    (result,) = predictor.predict_batch(IMAGES[:1], QUESTIONS[:1], OPTIONS[:1], ["multi_class-attentive"])
    attention = result["multi_class-attentive"].attention
    ((heatmap, chips, caption),), legend = pooling_panels(IMAGES[0], [attention], 0.5)
    assert attention.image_grid.size == 0 and heatmap is None
    assert "ViLT's text positions" in caption and "every image patch" in caption and "grid" not in caption
    assert chips.count("title=") == len(attention.tokens) and ">[CLS]<" in chips
    assert "Image (" not in legend and "Text (pooling weight per text token)" in legend


def test_saliency_explains_vilt(predictor):
    name = "multi_class-attentive"
    predicted = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS, [name])
    attributions = attribute(predictor, IMAGES, QUESTIONS, OPTIONS, name, method="saliency")
    for b, attribution in enumerate(attributions):
        assert abs(attribution.score - predicted[b][name].option_scores[attribution.target]) <= TOL
        assert attribution.tokens[0] == "[CLS]" and attribution.pixel_magnitude.max() > 0


def test_the_integrated_gradient_baseline_is_a_zero_image_under_the_same_pixel_mask(predictor):
    """The baseline keeps each canvas's mask channel (which pixels exist) and zeroes the pixels: a
    valid ViLT input, on which ViLT's own forward (zero pixels, the processor's mask) gives the
    states our forward gives on the baseline canvas."""
    model, processor = predictor.backbone.core, predictor.backbone.processor
    canvas = VILT.preprocess(processor, IMAGES)
    baseline = VILT.pixel_baseline(canvas)
    assert torch.equal(baseline[:, 3], canvas[:, 3]) and not baseline[:, :3].any()
    own = own_inputs(processor, IMAGES[:1], [QUESTIONS[0]])
    rows = VILT.row_encoder(processor).encode([PromptRow("", QUESTIONS[0], "")], with_suffix=False)
    with torch.no_grad(), predictor.activate(None):
        reference = model.vilt(**{**own, "pixel_values": torch.zeros_like(own["pixel_values"])})
        states = VILT.language_forward(model, rows, baseline[:1]).last_hidden_state
    length = own["input_ids"].shape[1]
    assert (states[0, :length] - reference.last_hidden_state[0, :length]).abs().max() <= TOL


def test_attributing_the_classifier_baseline_is_refused_plainly(predictor):
    with pytest.raises(ValueError, match="explain a multi_class or swag variant"):
        attribute(predictor, IMAGES[:1], QUESTIONS[:1], OPTIONS[:1], BASELINE_NAME, method="saliency")


@pytest.mark.parametrize("name", ["multi_class-attentive", "swag-last_token"])
def test_integrated_gradients_explain_vilt_and_are_complete(predictor, name):
    """From the predicted score, complete (attributions add up to the change from the baseline: a
    zero image under the same mask, ``[PAD]`` text), and zero on the canvas's padding, where neither
    the image nor the baseline has pixels."""
    predicted = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS, [name])
    attributions = attribute(predictor, IMAGES, QUESTIONS, OPTIONS, name, n_steps=16)
    canvas = VILT.preprocess(predictor.backbone.processor, IMAGES)
    for b, attribution in enumerate(attributions):
        assert abs(attribution.score - predicted[b][name].option_scores[attribution.target]) <= TOL
        assert abs(attribution.score - attribution.baseline_score) > 1e-3
        assert attribution.relative_error < 0.05, attribution.relative_error
        outside = canvas[b, 3].numpy() == 0
        assert outside.any() and not attribution.pixel_map[outside].any()
        assert np.abs(attribution.pixel_map[~outside]).sum() > 0


def test_integrated_gradients_of_a_batch_equal_each_image_alone(predictor):
    """The landscape and the portrait image are cropped to one batch size together; each one's
    attribution equals its attribution alone."""
    name = "swag-attentive"
    batched = attribute(predictor, IMAGES, QUESTIONS, OPTIONS, name, n_steps=8)
    for b in range(2):
        (alone,) = attribute(
            predictor, IMAGES[b : b + 1], QUESTIONS[b : b + 1], OPTIONS[b : b + 1], name, n_steps=8
        )
        np.testing.assert_allclose(alone.pixel_map, batched[b].pixel_map, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(alone.token_scores, batched[b].token_scores, atol=1e-5, rtol=1e-4)
        assert abs(alone.convergence_delta - batched[b].convergence_delta) <= TOL


@pytest.mark.parametrize("vision", [False, True])
def test_lora_targets_leave_the_vqa_classifier_alone(vision):
    """The one encoder's attention/MLP linears (6 per layer) in both scopes; ``all-linear`` must not
    wrap the VQA classifier or the pooler (the baseline reads them as trained)."""
    backbone = build_tiny_backbone(source="tiny:vilt")
    add_lora(backbone, LoraSettings(r=4, alpha=8, dropout=0.0, vision=vision))
    wrapped = {
        name.rsplit(".lora_A", 1)[0] for name, _ in backbone.model.named_parameters() if ".lora_A" in name
    }
    assert len(wrapped) == 6 * 2 and all(".vilt.encoder.layer." in name for name in wrapped)
