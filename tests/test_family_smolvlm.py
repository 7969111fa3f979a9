"""SmolVLM (Idefics3) behind the family interface, against its own processor and its own plain forward.

References: ``Idefics3Processor`` (image splitting off, as the family configures it) on the chat
template for row ids and pixels, and the model's plain forward (its own image features and positions)
for log-likelihoods and hidden states.
"""

from __future__ import annotations

import pytest
import torch

from tests import chat_family_checks as checks
from tests.family_checks import check_evaluate_cli_and_app_on_a_comparison
from vqa_demo.config import VARIANTS
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.smolvlm import SMOLVLM
from vqa_demo.model.tiny_families import tiny_smolvlm

LEAD, END = " ", "<end_of_utterance>"


@pytest.fixture(scope="module")
def tiny():
    return SMOLVLM.build_tiny("tiny:smolvlm")


def same(image):
    """The processor itself brings every image to the one view: the reference image is the image."""
    return image


def test_splitting_off_gives_every_image_one_view_of_the_same_token_count():
    _, splitting = tiny_smolvlm()
    own = checks.processor_inputs(splitting, checks.IMAGES[0], "Why?")
    assert int((own["input_ids"] == splitting.image_token_id).sum()) == 20  # 2 x 2 tiles + global view
    with pytest.raises(ValueError, match="image splitting off"):
        SMOLVLM.row_encoder(splitting)
    _, processor = SMOLVLM.build_tiny("tiny:smolvlm")
    assert processor.image_processor.do_image_splitting is False
    for image in checks.IMAGES:
        ids = checks.processor_inputs(processor, image, "Why?")["input_ids"]
        assert int((ids == processor.image_token_id).sum()) == SMOLVLM.image_seq_length(processor) == 4
        assert "<global-img>" in processor.tokenizer.convert_ids_to_tokens(ids[0])


def test_rows_equal_the_processors_ids(tiny):
    _, processor = tiny
    assert checks.check_rows_match_processor(SMOLVLM, processor, same, LEAD, END) == 4


def test_the_encoder_equals_the_processors_own_chat_template_tokenization(tiny):
    _, processor = tiny
    row = CondGenStrategy().prompt_rows("Why?", ["a", "b"])[0]
    content = [{"type": "image", "image": checks.IMAGES[1]}, {"type": "text", "text": row.prefix}]
    own = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    encoded = SMOLVLM.row_encoder(processor).encode([row])
    assert torch.tensor(own["input_ids"]).reshape(-1).tolist() == encoded.input_ids[0].tolist()


def test_typed_image_tokens_stay_text(tiny):
    _, processor = tiny
    row = CondGenStrategy().prompt_rows("Is <image> here <end_of_utterance>?", ["a", "b"])[0]
    encoder = SMOLVLM.row_encoder(processor)
    ids = encoder.encode([row]).input_ids[0]
    assert int((ids == processor.image_token_id).sum()) == 4
    assert int((ids == encoder.eos_id).sum()) == 1  # the user turn's own end


def test_pixels_and_features_are_the_processors_and_the_models_own(tiny):
    model, processor = tiny
    pixels = SMOLVLM.preprocess(processor, checks.IMAGES)
    assert pixels.shape == (2, *SMOLVLM.pixel_shape(processor)) == (2, 3, 16, 16)
    own = processor(images=[[i] for i in checks.IMAGES], text=["<image>"] * 2, return_tensors="pt")
    assert torch.equal(pixels, own["pixel_values"][:, 0])
    features = SMOLVLM.image_features(model, pixels)
    with torch.no_grad():
        reference = model.model.get_image_features(
            own["pixel_values"], own["pixel_attention_mask"]
        ).pooler_output
    assert features.shape == (2, 4, 32)
    assert torch.equal(features, torch.stack(reference))


def test_an_all_zero_image_keeps_its_features(tiny):
    """``get_image_features`` drops all-zero images as batch padding (and then fails);
    an attribution baseline is one."""
    model, _ = tiny
    zeros = torch.zeros(1, 3, 16, 16)
    assert SMOLVLM.image_features(model, zeros).shape == (1, 4, 32)
    with torch.no_grad(), pytest.raises(RuntimeError):
        model.model.get_image_features(zeros[:, None])


def test_cond_gen_loglik_and_generation_equal_the_plain_forward(tiny):
    model, processor = tiny
    worst = checks.check_cond_gen_matches_plain_forward(SMOLVLM, model, processor, same, LEAD, END)
    print(f"smolvlm cond_gen max |diff| {worst:.2e}")


@pytest.mark.parametrize("pooling", ["last_token", "attentive"])
def test_pooled_states_under_padding_equal_rows_alone(tiny, pooling):
    model, processor = tiny
    worst = checks.check_pooling_under_padding(SMOLVLM, model, processor, same, pooling)
    print(f"smolvlm {pooling} max |diff| {worst:.2e}")


def test_swag_rows_equal_single_passes(tiny):
    model, processor = tiny
    worst = checks.check_swag_rows_match_single_passes(SMOLVLM, model, processor, same)
    print(f"smolvlm swag max |diff| {worst:.2e}")


def test_vision_tower_runs_once_per_image_per_call():
    seen = checks.check_vision_runs_once_per_call(
        "tiny:smolvlm", "model.vision_model", lambda args, kwargs: len(kwargs["pixel_values"])
    )
    assert seen == 2


def test_lora_targets_language_and_all_linear():
    language = checks.lora_wrapped("tiny:smolvlm", vision=False)
    assert len(language) == 2 * 7 and all(".text_model.layers." in n for n in language)
    everything = checks.lora_wrapped("tiny:smolvlm", vision=True)
    assert set(language) < set(everything)
    assert any(".vision_model.encoder." in n for n in everything)
    assert any(".connector.modality_projection.proj" in n for n in everything)
    assert not any(n.endswith("lm_head") for n in everything)


def test_a_saved_base_loads_back_with_splitting_off(tmp_path):
    assert checks.check_saved_base_loads_back("tiny:smolvlm", tmp_path) == 0


def test_attributions_score_what_the_predictor_scores():
    worst = checks.check_attribution_scores_equal_predictions("tiny:smolvlm")
    print(f"smolvlm attribution vs prediction max |diff| {worst:.2e}")


@pytest.mark.slow
def test_compare_smoke_writes_all_five_variants(tmp_path):
    comparison = checks.compare_smoke("tiny:smolvlm", tmp_path / "cmp")
    assert sorted(comparison["variants"]) == sorted(VARIANTS)
    assert comparison["n"] == 16
    check_evaluate_cli_and_app_on_a_comparison(tmp_path / "cmp", comparison, tmp_path)
