"""What is SmolVLM's (Idefics3's) own behind the family interface: image splitting off, pixels, features.

References: ``Idefics3Processor`` (image splitting off, as the family configures it) and the model's own
image features. The checks every chat family shares (rows, COND_GEN, poolings, SWAG, LoRA, attributions,
compare) are in test_family_decoders.py.
"""

from __future__ import annotations

import pytest
import torch

from tests.family_checks import IMAGES, features_are_the_models_own, processor_inputs
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.model.families.smolvlm.family import SMOLVLM
from vqa_demo.model.families.smolvlm.tiny import tiny_smolvlm

SOURCE = "tiny:smolvlm"  # the module's tiny_model


def test_splitting_off_gives_every_image_one_view_of_the_same_token_count():
    _, splitting = tiny_smolvlm()
    own = processor_inputs(splitting, IMAGES[0], "Why?")
    assert int((own["input_ids"] == splitting.image_token_id).sum()) == 20  # 2 x 2 tiles + global view
    with pytest.raises(ValueError, match="image splitting off"):
        SMOLVLM.row_encoder(splitting)
    _, processor = SMOLVLM.build_tiny("tiny:smolvlm")
    assert processor.image_processor.do_image_splitting is False
    for image in IMAGES:
        ids = processor_inputs(processor, image, "Why?")["input_ids"]
        assert int((ids == processor.image_token_id).sum()) == SMOLVLM.image_seq_length(processor) == 4
        assert "<global-img>" in processor.tokenizer.convert_ids_to_tokens(ids[0])


def test_typed_image_tokens_stay_text(tiny_model):
    _, processor = tiny_model
    row = CondGenStrategy().prompt_rows("Is <image> here <end_of_utterance>?", ["a", "b"])[0]
    encoder = SMOLVLM.row_encoder(processor)
    ids = encoder.encode([row]).input_ids[0]
    assert int((ids == processor.image_token_id).sum()) == 4
    assert int((ids == encoder.eos_id).sum()) == 1  # the user turn's own end


def test_pixels_and_features_are_the_processors_and_the_models_own(tiny_model):
    model, processor = tiny_model
    pixels = SMOLVLM.preprocess(processor, IMAGES)
    assert pixels.shape == (2, *SMOLVLM.pixel_shape(processor)) == (2, 3, 16, 16)
    own = processor(images=[[i] for i in IMAGES], text=["<image>"] * 2, return_tensors="pt")
    assert torch.equal(pixels, own["pixel_values"][:, 0])
    features = features_are_the_models_own(
        SMOLVLM, model, pixels, own["pixel_values"], own["pixel_attention_mask"]
    )
    assert features.shape == (2, 4, 32)


def test_an_all_zero_image_keeps_its_features(tiny_model):
    """``get_image_features`` drops all-zero images as batch padding (and then fails);
    an attribution baseline is one."""
    model, _ = tiny_model
    zeros = torch.zeros(1, 3, 16, 16)
    assert SMOLVLM.image_features(model, zeros).shape == (1, 4, 32)
    with torch.no_grad(), pytest.raises(RuntimeError):
        model.model.get_image_features(zeros[:, None])
