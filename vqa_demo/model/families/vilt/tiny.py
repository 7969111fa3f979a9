"""A tiny random ViLT-VQA with its own processor, an in-process uncased WordPiece and 8 answers."""

from __future__ import annotations

from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessorPil, ViltProcessor

from vqa_demo.model.families.tiny_parts import TEXT_SIZES, seeded, wordpiece_tokenizer

# ViLT's answer vocabulary (the hub checkpoint has 3129 VQAv2 answers).
VILT_ANSWERS = ("red", "blue", "green", "yellow", "yes", "no", "2", "3")


def tiny_vilt(
    seed: int = 0, image_size: int = 32, patch_size: int = 8
) -> tuple[ViltForQuestionAnswering, ViltProcessor]:
    """ViLT: one transformer over ``[CLS] question [SEP]`` + image patches; pooled ``[CLS]`` -> VQA head.

    Its answer vocabulary is :data:`VILT_ANSWERS` (``config.label2id``).
    """
    tokenizer = wordpiece_tokenizer()
    image_processor = ViltImageProcessorPil(size={"shortest_edge": image_size}, size_divisor=patch_size)
    processor = ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = ViltConfig(
        **TEXT_SIZES,
        vocab_size=len(tokenizer),
        max_position_embeddings=40,
        image_size=image_size,
        patch_size=patch_size,
        num_images=-1,
        id2label=dict(enumerate(VILT_ANSWERS)),
        label2id={answer: i for i, answer in enumerate(VILT_ANSWERS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    return seeded(ViltForQuestionAnswering, config, seed), processor
