"""BLIP's explanations: attributions of every head, COND_GEN's answer-decoder log-likelihood
included, and the Explain panel through the app's predictor holder.

References: the predictor's own scores (the attributed function at the input), integrated gradients'
completeness, and the rendered panel (caption, token chips).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vqa_demo.explain.attribution import attribute
from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.testing import random_variant_predictor
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.explain_panels import METHOD_LABELS
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.tabs.ask import AskCallbacks
from vqa_demo.ui.tabs.explain import ExplainCallbacks

TOL = 1e-5
QUESTIONS = ["What colour is the circle?", "How many shapes are there in this picture? Count them all"]
OPTIONS = [["red", "blue and green", "3", "yes"], ["2", "three shapes", "no", "green"]]


def random_image(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


IMAGES = [random_image(32, 32, 0), random_image(30, 40, 1)]


@pytest.fixture(scope="module")
def predictor():
    return random_variant_predictor(build_tiny_backbone(source="tiny:blip"), max_new_tokens=4)


@pytest.mark.parametrize("name", ["swag-attentive", "cond_gen"])
def test_integrated_gradients_start_from_the_predicted_score_and_are_complete(predictor, name):
    """Integrated gradients of a SWAG variant (the classifier's score) and of COND_GEN (the chosen
    option's answer-decoder log-likelihood, as a function of the pixels and the question's token
    embeddings) start from the predicted score and add up to the score change from the baseline."""
    predicted = predictor.predict_batch(IMAGES, QUESTIONS, OPTIONS, [name])
    attributions = attribute(predictor, IMAGES, QUESTIONS, OPTIONS, name, n_steps=8)
    for b, attribution in enumerate(attributions):
        prediction = predicted[b][name]
        expected = prediction.option_scores[prediction.choice]  # COND_GEN: its decision rule's score
        assert attribution.target == prediction.choice and abs(attribution.score - float(expected)) <= TOL
        assert attribution.relative_error < 0.05 and attribution.tokens[0] == "[CLS]"
        assert abs(attribution.score - attribution.baseline_score) > 1e-3  # a change to complete
        assert attribution.log_likelihood == (name == "cond_gen") and attribution.suffix_start is None


def test_cond_gen_saliency_reaches_the_pixels_and_every_question_token(predictor):
    """The gradient of an option's log-likelihood flows through the answer decoder, the question
    encoder and the ViT: every pixel row and every question token gets some."""
    (attribution,) = attribute(
        predictor, IMAGES[1:], QUESTIONS[1:], OPTIONS[1:], "cond_gen", targets=[1], method="saliency"
    )
    predicted = predictor.predict_batch(IMAGES[1:], QUESTIONS[1:], OPTIONS[1:], ["cond_gen"])
    assert abs(attribution.score - float(predicted[0]["cond_gen"].option_scores[1])) <= TOL
    assert (attribution.pixel_magnitude.max(axis=1) > 0).all() and (attribution.token_scores > 0).all()
    question = predictor.backbone.tokenizer(QUESTIONS[1])["input_ids"]
    assert len(attribution.tokens) >= len(question) and attribution.tokens[-1] == "[SEP]"


def answered_in_the_app(predictor, tmp_path, names: list[str]):
    """``(holder, AskResult)``: the Ask tab's answer with ``names`` ticked, through the app's holder."""
    image_file = tmp_path / "shapes.png"
    IMAGES[0].save(image_file)
    holder = PredictorHolder(predictor=predictor)
    ask = AskCallbacks(holder, AppConfig(assets=tmp_path))
    ticks = [name in names for name in holder.names]
    *_, result = ask.answer(str(image_file), QUESTIONS[0], *answer_inputs(None, None, OPTIONS[0], ticks)[2:])
    assert list(result.predictions) == names
    return holder, result


def test_the_explain_panel_renders_a_cond_gen_attribution_through_the_app_holder(predictor, tmp_path):
    holder, result = answered_in_the_app(predictor, tmp_path, ["cond_gen"])
    explain = ExplainCallbacks(holder)
    for method in METHOD_LABELS:
        image, chips, caption, (attribution, _) = explain.attribute(result, "cond_gen", method, 8, 0.5)
        assert isinstance(image, Image.Image), caption
        # the decision rule's own score (loglik_mean by default) is what is attributed
        assert "cond_gen**'s log-likelihood per answer token" in caption and "not coloured" in caption
        assert "[CLS]</span>" in chips and chips.count("<span") == len(attribution.tokens)
        assert ("Completeness" in caption) == (method == "Integrated gradients")


def test_the_pooling_caption_says_the_pooled_states_are_the_question_encoders(predictor, tmp_path):
    """BLIP pools its question encoder's states: no per-patch weights, and the caption says why
    instead of the image share (which would read 0 %) and the image tokens' grid."""
    holder, result = answered_in_the_app(predictor, tmp_path, ["multi_class-attentive", "swag-attentive"])
    picker, heatmap, tokens, caption, *_ = ExplainCallbacks(holder).refresh(result, 0.6)
    attention = result.predictions[picker["value"]].attention
    assert attention.image_grid.size == 0 and np.isclose(attention.token_weights.sum(), 1)
    assert heatmap is None and "question encoder" in caption and "cross-attention" in caption
    assert "grid" not in caption and "%" not in caption
    assert "Image (" not in caption and "Text (pooling weight per text token)" in caption
    assert tokens.count("<span") == len(attention.tokens) and "[CLS]</span>" in tokens
