"""Qwen2.5-VL behind the backbone family interface (:mod:`vqa_demo.model.family`).

Rows are the model's chat template (``<|im_start|>system ... <|vision_start|><|image_pad|> x N
<|vision_end|>{prompt}<|im_end|>\\n<|im_start|>assistant\\n`` + answer + ``<|im_end|>``; no ``<bos>``),
token for token as ``Qwen2_5_VLProcessor`` writes them (:class:`~vqa_demo.model.chat_encoding.ChatRowEncoder`,
which marks image tokens with ``token_type_ids`` 1).

Fixed image size. Qwen2.5-VL reads images at their native resolution, so the number of image tokens
depends on each image's size and aspect ratio. Every image is resized to one ``S x S`` square first
(:func:`fixed_side`: 448 px on the hub checkpoints, i.e. 32 x 32 patches of 14 px merged 2 x 2 into
256 tokens; the largest multiple of ``patch x merge`` within the processor's pixel limits otherwise),
and the processor's pixel limits are set to exactly ``S * S`` (:func:`fixed_view`), so it keeps
that square as it is and lays every prompt out with the same ``N`` tokens. Image features thus stack
into ``float[B, N, D]`` as every other family's do. Small text in large images loses
detail that the native resolution would keep; that is the price of one shared layout.

Pixels. The processor's output is flattened patches ``[B * P, 3 * 2 * ps * ps]`` (each patch twice
along time, for video). :meth:`Qwen25VLFamily.preprocess` turns it back into the image ``float[B, 3, S, S]``
(exactly, a permutation), and :func:`patchify` makes the processor's layout again inside the
differentiable feature computation, so attributions see an ordinary image tensor.

Positions. Image tokens take 3-D (time, height, width) rotary positions and the text after them
continues at the largest position + 1, which is less than the token count; 1-D positions there shift
log-probabilities measurably. Every forward gets them explicitly from :func:`mrope_positions`, which
gives what the model's own ``get_rope_index`` does for one still image per row (tested equal under left
and right padding). It reads the image tokens from the rows' ``token_type_ids``, not from a model,
because the interface's ``prefix_positions`` is given none. Continuation tokens (the answer) go on
from the row's largest position + 1 on all three axes. ``model.model.rope_deltas`` (state left by the last forward) is never used.

LoRA: the base class's targets fit (``language``: ``model.language_model.layers.*`` attention and MLP
linears; ``all-linear``: also the ViT's ``qkv``/``proj``/MLP and the patch merger, never ``lm_head``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil
from transformers.image_utils import SizeDict

from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.qwen2_5_vl.processor import ImageOnlyQwen2_5_VLProcessor
from vqa_demo.model.families.qwen2_5_vl.tiny import tiny_qwen2_5_vl

HUB_SIDE = 448  # px: 32 x 32 patches of 14 px, 2 x 2 merged -> 256 image tokens


def fixed_side(image_processor, preferred: int = HUB_SIDE) -> int:
    """The square side ``S`` every image is resized to: a multiple of ``patch x merge`` (the model's
    token size), at most ``preferred`` and within the processor's ``[min, max]`` pixel counts."""
    factor = image_processor.patch_size * image_processor.merge_size
    size = image_processor.size
    side = min(preferred, math.isqrt(size["longest_edge"])) // factor * factor
    if side * side < size["shortest_edge"]:
        raise ValueError(f"no {factor}-px multiple fits the image processor's pixel limits {dict(size)}")
    return side


def fixed_view(processor, preferred: int = HUB_SIDE):
    """``processor`` with its pixel limits set to exactly ``S * S`` (:func:`fixed_side`); returns it."""
    image_processor = processor.image_processor
    area = fixed_side(image_processor, preferred) ** 2
    image_processor.size = SizeDict(shortest_edge=area, longest_edge=area)
    return processor


def patchify(pixels: torch.Tensor, patch: int, merge: int, temporal: int) -> torch.Tensor:
    """``float[B, C, S, S]`` -> the processor's flattened patches ``float[B * g * g, C * temporal * patch^2]``
    (``g = S / patch``; merge windows contiguous, each patch repeated ``temporal`` times)."""
    batch, channels, height, width = pixels.shape
    gh, gw = height // patch, width // patch
    x = pixels.reshape(batch, channels, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # B, gh/m, gw/m, m, m, C, p, p
    x = x.unsqueeze(6).expand(*x.shape[:6], temporal, patch, patch)
    return x.reshape(batch * gh * gw, channels * temporal * patch * patch)


def unpatchify(patches: torch.Tensor, side: int, patch: int, merge: int, temporal: int) -> torch.Tensor:
    """The inverse of :func:`patchify` for ``side x side`` images (the first temporal copy)."""
    grid = side // patch
    x = patches.reshape(-1, grid // merge, grid // merge, merge, merge, 3, temporal, patch, patch)[
        :, :, :, :, :, :, 0
    ]
    return x.permute(0, 5, 1, 3, 6, 2, 4, 7).reshape(-1, 3, side, side)


def merged_grid(image_mask: torch.Tensor) -> int:
    """The side of the square grid of merged patches that a row's ``N`` image tokens form."""
    side = math.isqrt(int(image_mask[0].sum()))
    assert side * side == int(image_mask[0].sum()), "one square image per row"
    return side


def mrope_positions(image_mask: torch.Tensor, attention_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """``long[3, R, T]`` (time, height, width) rotary positions of rows holding one ``grid x grid`` image.

    What ``Qwen2_5_VLModel.get_rope_index`` gives for one still image per row (tested equal to it):
    text before the image counts 0, 1, ...; the image's token ``(i, j)`` sits at ``(s, s + i, s + j)``
    (``s`` the next position); text after it continues at ``s + grid``. Pads (``attention_mask`` 0,
    either side) get 0 and are masked out. ``image_mask bool[R, T]``.
    """
    real = attention_mask.bool()
    text = real & ~image_mask
    past_image = image_mask.long().cummax(dim=1).values.bool() & ~image_mask
    # Each text token advances the count by one, the whole image by ``grid``.
    steps = text.long().cumsum(dim=1) - text.long() + past_image.long() * grid
    start = steps.masked_fill(~image_mask, 0).amax(dim=1, keepdim=True)  # s: where the image begins
    rank = (image_mask.long().cumsum(dim=1) - 1).clamp(min=0)  # row-major index within the image
    height = torch.where(image_mask, start + rank // grid, steps)
    width = torch.where(image_mask, start + rank % grid, steps)
    return torch.stack([steps, height, width]).masked_fill(~real, 0)


def image_only_processor(source: str, **kwargs) -> ImageOnlyQwen2_5_VLProcessor:
    """A saved Qwen2.5-VL processor without its video processor (whose class needs torchvision)."""
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(source, **kwargs)
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ValueError(
            f"{source} has no chat template in its tokenizer files: Qwen2.5-VL's rows are laid out by it"
        )
    return ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )


class Qwen25VLFamily(ChatDecoderFamily):
    """Qwen2.5-VL: windowed ViT on 14 px patches merged 2 x 2, Qwen2.5 decoder with 3-D (m)RoPE."""

    name = "qwen2_5_vl"
    title = "Qwen2.5-VL"
    model_types = ("qwen2_5_vl",)
    model_class = Qwen2_5_VLForConditionalGeneration
    tiny_sources = ("tiny:qwen2_5_vl",)
    tiny_builder = staticmethod(tiny_qwen2_5_vl)
    vision_modules = ("visual",)  # the ViT and its patch merger (the projector)
    token_types_in_prefix = False
    end_token = "<|im_end|>"

    def build_tiny(self, source: str, seed: int = 0):
        model, processor = tiny_qwen2_5_vl(seed=seed)
        return model, fixed_view(processor)  # the backbone's one fixed view

    def load_pretrained(self, source: str, **kwargs):
        model = self.load_model(source, **kwargs)
        return model, fixed_view(image_only_processor(source))

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        side = fixed_side(processor.image_processor)
        return 3, side, side

    def preprocess(self, processor, images: Sequence[Image.Image]) -> torch.Tensor:
        """``float[B, 3, S, S]``: each image resized to the fixed square, then the processor's
        normalisation (its patches folded back into an image)."""
        image_processor = processor.image_processor
        side = fixed_side(image_processor)
        pictures = [img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC) for img in images]
        out = image_processor(pictures, return_tensors="pt")
        grid = side // image_processor.patch_size
        assert out["image_grid_thw"].tolist() == [[1, grid, grid]] * len(pictures), (
            "the processor resized again"
        )
        return unpatchify(
            out["pixel_values"],
            side,
            image_processor.patch_size,
            image_processor.merge_size,
            image_processor.temporal_patch_size,
        )

    def grid_thw(self, core, pixel_values: torch.Tensor) -> torch.Tensor:
        """``long[B, 3]``: one time step and the patch grid of each ``float[B, 3, S, S]`` image."""
        grid = pixel_values.shape[-1] // core.config.vision_config.patch_size
        return torch.tensor([[1, grid, grid]] * pixel_values.shape[0], device=pixel_values.device)

    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """``float[B, N, D]`` from the vision tower and merger, one image at a time in one pass."""
        vision = core.config.vision_config
        patches = patchify(
            pixel_values.to(core.dtype),
            vision.patch_size,
            vision.spatial_merge_size,
            vision.temporal_patch_size,
        )
        with torch.set_grad_enabled(grad):
            pooled = core.model.get_image_features(patches, self.grid_thw(core, pixel_values)).pooler_output
        return torch.stack(pooled)

    def encoder_outputs(self, features: torch.Tensor):
        # The model concatenates a sequence of per-image features; one [R * N, D] block is the same.
        return super().encoder_outputs((features.reshape(-1, features.shape[-1]),))

    def prefix_positions(self, rows, features) -> torch.Tensor:
        """``long[3, B, P]``: the 3-D positions of the left-padded prefix rows, each as if alone."""
        return self.positions(rows.token_type_ids, rows.attention_mask)

    def positions(self, token_type_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``long[3, R, T]`` of rows (either padding) whose image tokens have ``token_type_ids`` 1."""
        image = token_type_ids == 1
        return mrope_positions(image, attention_mask, merged_grid(image))

    def language_forward(self, core, rows, features, use_cache=False, position_ids=None):
        """As the base class, with the 3-D positions when none are given (right-padded rows)."""
        if position_ids is None:
            position_ids = self.positions(rows.token_type_ids, rows.attention_mask)
        return super().language_forward(core, rows, features, use_cache, position_ids)

    def embeds_forward(self, core, embeds, attention_mask, token_type_ids, features) -> torch.Tensor:
        """As the base class, with the rows' 3-D positions (the model would fall back to 1-D ones)."""
        return core.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=self.positions(token_type_ids, attention_mask),
            mm_encoder_outputs=self.encoder_outputs(features),
            use_cache=False,
        ).last_hidden_state

    def continuation_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Text after the prefix: the same position on all three axes, ``long[3, R, S]``."""
        return positions.unsqueeze(0).expand(3, *positions.shape)


QWEN2_5_VL = Qwen25VLFamily()
