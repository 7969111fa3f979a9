"""A tiny random BLIP-VQA with its own processor and an in-process uncased WordPiece."""

from __future__ import annotations

from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor

from vqa_demo.model.families.tiny_parts import (
    CLIP_MEAN,
    CLIP_STD,
    TEXT_SIZES,
    VISION_SIZES,
    seeded,
    wordpiece_tokenizer,
)


def tiny_blip(
    seed: int = 0, image_size: int = 16, patch_size: int = 4
) -> tuple[BlipForQuestionAnswering, BlipProcessor]:
    """BLIP-VQA: ViT image encoder, BERT question encoder (cross-attends to the image), BERT answer decoder.

    The answer decoder starts from ``[DEC]`` (its bos) and ends with ``[SEP]``, as on the hub.
    """
    tokenizer = wordpiece_tokenizer(extra_special=("[DEC]", "[ENC]"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    image_processor = BlipImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=CLIP_MEAN, image_std=CLIP_STD
    )
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    config = BlipConfig(
        text_config=dict(
            **TEXT_SIZES,
            encoder_hidden_size=32,
            vocab_size=len(tokenizer),
            max_position_embeddings=64,
            # At BERT's 0.02 the answer decoder's cross-attention moves answer log-likelihoods by ~1e-6
            # between images: an image path no test could tell from a cut one.
            initializer_range=0.1,
            bos_token_id=ids("[DEC]"),
            sep_token_id=ids("[SEP]"),
            pad_token_id=ids("[PAD]"),
        ),
        # BlipVisionConfig's default initializer_range is 1e-10 (image states ~1e-7): the text's 0.02 instead.
        vision_config=dict(
            **VISION_SIZES, image_size=image_size, patch_size=patch_size, initializer_range=0.02
        ),
        projection_dim=32,
    )
    return seeded(BlipForQuestionAnswering, config, seed), processor
