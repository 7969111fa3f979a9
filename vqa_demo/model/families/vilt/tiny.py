"""A tiny random ViLT-VQA with its own processor, an in-process uncased WordPiece and 8 answers."""

from __future__ import annotations

import torch
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
    model = seeded(ViltForQuestionAnswering, config, seed)
    # At the 0.02 initializer range the answer logits are ~0.1 and another image moves them by ~6e-4:
    # the classifier baseline's image path could not be told from a cut one. Logits of order 1 instead
    # (as a trained VQA classifier's), drawn from the seed.
    answers = model.classifier[-1].weight
    with torch.no_grad():
        answers.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(seed))
    return model, processor
