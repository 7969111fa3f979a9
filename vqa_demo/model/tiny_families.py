"""Tiny random models of each other VLM family's real structure, with working processors, all in-process.

One builder per family returns ``(model, processor)``: the family's own ``*ForConditionalGeneration`` /
``*ForQuestionAnswering`` class from a small config (hidden <= 64, 2 layers, images of 16-32 pixels)
and the family's own processor class around an in-process tokenizer
(:mod:`vqa_demo.model.tiny_family_tokenizers`). Nothing is downloaded; weights are seeded random. These are
the grounds for the per-family backbones and their tests, not models that answer questions.
"""

from __future__ import annotations

import torch
from transformers import (
    BlipConfig,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
    BlipProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    ViltConfig,
    ViltForQuestionAnswering,
    ViltImageProcessorPil,
    ViltProcessor,
)

from vqa_demo.model.tiny_family_tokenizers import (
    GEMMA3_CHAT_TEMPLATE,
    LLAVA_CHAT_TEMPLATE,
    QWEN2_5_VL_CHAT_TEMPLATE,
    SMOLVLM_CHAT_TEMPLATE,
    gemma3_tokenizer,
    llava_tokenizer,
    qwen2_5_vl_tokenizer,
    smolvlm_tokenizer,
    wordpiece_tokenizer,
)

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
# A small causal decoder shared by the families whose language model is Llama/Qwen2-shaped.
TEXT_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
VISION_SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
# ViLT's answer vocabulary (the hub checkpoint has 3129 VQAv2 answers).
VILT_ANSWERS = ("red", "blue", "green", "yellow", "yes", "no", "2", "3")


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video processor.

    The video processor class needs torchvision, which this project does not depend on; images and
    text are processed by the unchanged parent code, videos raise.
    """

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)

    def save_pretrained(self, save_directory, **kwargs):
        """The image processor and the tokenizer, which carries the chat template (no video processor)."""
        self.image_processor.save_pretrained(save_directory, **kwargs)
        self.tokenizer.chat_template = self.chat_template
        return self.tokenizer.save_pretrained(save_directory, **kwargs)


def seeded(model_class, config, seed: int):
    """``model_class(config)`` with weights drawn from ``seed``, in eval mode, float32."""
    torch.manual_seed(seed)
    return model_class(config).eval()


def tiny_qwen2_5_vl(
    seed: int = 0, image_size: int = 32
) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """Qwen2.5-VL: native-resolution patches (4 px, 2x2 merged), window attention, 3-D (m)RoPE.

    An ``image_size`` square image gives ``(image_size / 8) ** 2`` ``<|image_pad|>`` tokens; other
    sizes are resized (multiples of 8, area within 16x16 .. 32x32) as the real processor does.
    """
    tokenizer = qwen2_5_vl_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 16 * 16, "longest_edge": image_size * image_size},
        patch_size=4,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_5_VL_CHAT_TEMPLATE
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=dict(
            **TEXT_SIZES,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            # head_dim 8 = 2 * (2 + 1 + 1): temporal, height, width rotary sections.
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            bos_token_id=None,
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            patch_size=4,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=16,
            fullatt_block_indexes=[1],
            out_hidden_size=32,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    return seeded(Qwen2_5_VLForConditionalGeneration, config, seed), processor


def tiny_llava(
    seed: int = 0, image_size: int = 16, patch_size: int = 4
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """LLaVA-1.5: CLIP vision tower (penultimate layer, CLS dropped), 2-layer MLP projector, Llama.

    An image gives ``(image_size / patch_size) ** 2`` ``<image>`` tokens (16 by default).
    """
    tokenizer = llava_tokenizer()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            **VISION_SIZES, image_size=image_size, patch_size=patch_size, projection_dim=32
        ),
        text_config=dict(
            model_type="llama",
            **TEXT_SIZES,
            num_key_value_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            bos_token_id=ids("<s>"),
            eos_token_id=ids("</s>"),
            pad_token_id=ids("<pad>"),
        ),
        image_token_index=ids("<image>"),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    return seeded(LlavaForConditionalGeneration, config, seed), processor


def tiny_smolvlm(
    seed: int = 0, tile_size: int = 16, patch_size: int = 4
) -> tuple[Idefics3ForConditionalGeneration, Idefics3Processor]:
    """SmolVLM (Idefics3 architecture): SigLIP on ``tile_size`` tiles, pixel shuffle (x2), Llama.

    The processor splits an image into at most 2x2 tiles plus a global view, each of
    ``(tile_size / patch_size / 2) ** 2`` ``<image>`` tokens (4 by default), framed by
    ``<fake_token_around_image>`` and ``<row_r_col_c>`` / ``<global-img>`` tags.
    """
    tokenizer = smolvlm_tokenizer()
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * tile_size},
        max_image_size={"longest_edge": tile_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_seq_len = (tile_size // patch_size // 2) ** 2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Idefics3Config(
        vision_config=dict(**VISION_SIZES, image_size=tile_size, patch_size=patch_size),
        text_config=dict(
            model_type="llama",
            **TEXT_SIZES,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            bos_token_id=ids("<|im_start|>"),
            eos_token_id=ids("<end_of_utterance>"),
            pad_token_id=ids("<|im_end|>"),
        ),
        image_token_id=ids("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
    )
    return seeded(Idefics3ForConditionalGeneration, config, seed), processor


def tiny_gemma3(
    seed: int = 0, image_size: int = 16, patch_size: int = 4, sliding_window: int = 64
) -> tuple[Gemma3ForConditionalGeneration, Gemma3Processor]:
    """Gemma 3: SigLIP tower, average-pooled to 4 soft tokens per image, Gemma 3 text (sliding + global).

    The processor expands each ``<start_of_image>`` into
    ``"\\n\\n<start_of_image>" + 4 x <image_soft_token> + "<end_of_image>\\n\\n"``.
    """
    tokenizer = gemma3_tokenizer()
    tokens_per_image = 4
    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=tokens_per_image,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config=dict(
            **TEXT_SIZES,
            num_key_value_heads=2,
            head_dim=8,
            query_pre_attn_scalar=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=512,
            # One local (sliding-window) and one global layer, Gemma 3's two kinds.
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=sliding_window,
            bos_token_id=ids("<bos>"),
            eos_token_id=ids("<eos>"),
            pad_token_id=ids("<pad>"),
        ),
        # As in google/gemma-3-4b-it: SigLIP without its attention-pooling head.
        vision_config=dict(
            model_type="siglip_vision_model",
            **VISION_SIZES,
            image_size=image_size,
            patch_size=patch_size,
            vision_use_head=False,
        ),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    model = seeded(Gemma3ForConditionalGeneration, config, seed)
    # transformers starts the projector at zero (a checkpoint overwrites it); a stand-in kept that way
    # would give image features of exactly 0, and no image test could fail. Same scale as the embeddings.
    projector = model.model.multi_modal_projector.mm_input_projection_weight
    with torch.no_grad():
        projector.normal_(
            0.0, config.text_config.initializer_range, generator=torch.Generator().manual_seed(seed)
        )
    return model, processor


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


TINY_FAMILIES = {
    "qwen2_5_vl": tiny_qwen2_5_vl,
    "llava": tiny_llava,
    "smolvlm": tiny_smolvlm,
    "gemma3": tiny_gemma3,
    "blip": tiny_blip,
    "vilt": tiny_vilt,
}
