"""SmolVLM (the Idefics3 architecture) behind the backbone family interface (:mod:`vqa_demo.model.family`).

Rows are the model's chat template (``<|im_start|>User:<fake_token_around_image><global-img>
<image> x N<fake_token_around_image>{prompt}<end_of_utterance>\\nAssistant:`` + `` answer`` +
``<end_of_utterance>``), token for token as ``Idefics3Processor`` writes them
(:class:`~vqa_demo.model.chat_encoding.ChatRowEncoder`).

Image splitting is off. SmolVLM's processor normally cuts an image into a grid of tiles (as many as
its size needs, up to 4 x 4 on the hub) plus a global view, so the number of image tokens depends on
the image. This family sets ``do_image_splitting = False`` on the processor (:func:`single_view`):
every image is resized to one square view of ``max_image_size`` (384 px on SmolVLM-Instruct, 81
tokens after SigLIP's 14 px patches and the 3 x 3 pixel shuffle; 16 px and 4 tokens in the tiny
model), framed by ``<global-img>``. (``return_row_col_info`` is set too, so the image processor
reports that layout to the row encoder as it does to the processor itself.) All images
thus have the same ``N`` tokens and features stack into ``float[B, N, D]``; fine detail that the tiles
would keep is lost (the hub model was trained with both layouts).

Image features run the vision tower and connector directly rather than ``get_image_features``, which
drops any all-zero image as batch padding (an attribution baseline of zeros would vanish).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import AutoProcessor, Idefics3ForConditionalGeneration

from vqa_demo.model.chat_encoding import ChatRowEncoder
from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.smolvlm.tiny import tiny_smolvlm
from vqa_demo.model.family import DECODER_LINEARS, check_scope


def single_view(processor):
    """``processor`` with image splitting switched off (one global view per image); returns it."""
    processor.image_processor.do_image_splitting = False
    processor.image_processor.return_row_col_info = True
    return processor


def view_side(processor) -> int:
    """The side of the one square view every image is resized to (splitting must be off)."""
    if processor.image_processor.do_image_splitting:
        raise ValueError(
            "SmolVLM's processor must have image splitting off: build it with single_view(processor)"
        )
    return int(processor.image_processor.max_image_size["longest_edge"])


class SmolVLMFamily(ChatDecoderFamily):
    """SmolVLM / Idefics3: SigLIP on one square view, pixel shuffle + linear connector, Llama decoder."""

    name = "smolvlm"
    title = "SmolVLM (Idefics3)"
    model_types = ("idefics3",)
    model_class = Idefics3ForConditionalGeneration
    tiny_sources = ("tiny:smolvlm",)
    tiny_builder = staticmethod(tiny_smolvlm)
    vision_modules = ("vision_model", "connector")
    token_types_in_prefix = False
    end_token = "<end_of_utterance>"
    answer_lead = " "  # the template writes "Assistant: answer"

    def build_tiny(self, source: str, seed: int = 0):
        model, processor = tiny_smolvlm(seed=seed)
        return model, single_view(processor)

    def load_pretrained(self, source: str, **kwargs):
        model = self.load_model(source, **kwargs)
        return model, single_view(AutoProcessor.from_pretrained(source))

    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192) -> ChatRowEncoder:
        """The chat-template encoder, for a processor with splitting off only."""
        view_side(processor)
        return super().row_encoder(processor, separator, max_text_tokens)

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        side = view_side(processor)
        return 3, side, side

    def preprocess(self, processor, images: Sequence[Image.Image]) -> torch.Tensor:
        """``float[B, 3, S, S]``: the processor's single view of each image (resize + normalisation)."""
        view_side(processor)
        pictures = [[img.convert("RGB")] for img in images]
        out = processor.image_processor(pictures, return_tensors="pt")
        assert out["pixel_values"].shape[1] == 1 and bool(out["pixel_attention_mask"].all()), (
            "one unpadded view"
        )
        return out["pixel_values"][:, 0]

    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """``float[B, N, D]``: SigLIP on the whole view (no padded patches), then pixel shuffle + projection."""
        model = core.model
        patch = core.config.vision_config.patch_size
        grid = pixel_values.shape[-1] // patch
        patch_mask = torch.ones(
            pixel_values.shape[0], grid, grid, dtype=torch.bool, device=pixel_values.device
        )
        with torch.set_grad_enabled(grad):
            states = model.vision_model(
                pixel_values=pixel_values.to(core.dtype), patch_attention_mask=patch_mask
            )
            return model.connector(states.last_hidden_state)

    def lora_targets(self, scope: str, names: tuple[str, ...] = DECODER_LINEARS) -> dict:
        """``language``: the text model's attention and MLP linears (SmolVLM's decoder is
        ``model.text_model``); ``all-linear``: also SigLIP's and the connector's projection."""
        check_scope(scope)
        if scope == "all-linear":
            return super().lora_targets(scope, names)
        return {
            "target_modules": r".*\.text_model\.layers\.\d+\.(self_attn|mlp)\.(" + "|".join(names) + r")$"
        }


SMOLVLM = SmolVLMFamily()
