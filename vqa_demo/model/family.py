"""The backbone family interface: what a head strategy needs from a vision-language model family.

A *family* (PaliGemma, LLaVA-1.5, Gemma 3, Qwen2.5-VL, SmolVLM, BLIP, ViLT) is one
:class:`BackboneFamily` instance in the registry (:data:`~vqa_demo.model.families.registry.FAMILIES`),
chosen from the checkpoint's ``config.model_type`` (never from its name). Strategies, the predictor,
training, attributions and backbone loading reach the model only through these methods, so a
family that implements them gets every head type its :meth:`~BackboneFamily.supports` allows.

Per family (shapes: B images/examples, R rows, T row tokens, N image tokens, D hidden size):

- rows: :meth:`~BackboneFamily.row_encoder` returns an object with
  :class:`~vqa_demo.model.encoding.RowEncoder`'s contract (``encode(rows, with_suffix) ->
  EncodedRows`` right padded, ``prefix_ids``, ``suffix``/``suffix_ids``/``pad_suffixes``, ``eos_id``,
  ``pad_id``, ``tokenizer``; truncation only removes user text, question first): token for token what
  the family's processor (or chat template) produces for the same prompt and answer;
- pixels: :meth:`~BackboneFamily.preprocess` -> ``float[B, 3, H, W]`` (the processor's own resize and
  normalisation), :meth:`~BackboneFamily.pixel_shape` the ``(3, H, W)`` it produces,
  :meth:`~BackboneFamily.patch_grid` the vision tower's patches on one such input (a
  :class:`PatchGrid`: what an attribution's pixel map is summed over, per patch);
- image features once per image: :meth:`~BackboneFamily.image_features` -> ``float[B, N, D]``; rows
  reuse them through :meth:`~BackboneFamily.select_features` (``index long[R]`` -> ``[R, N, D]``; SWAG
  repeats an example's features for each of its option rows);
- language forward: :meth:`~BackboneFamily.language_forward` over rows with their features ->
  ``last_hidden_state float[R, T, D]`` after the final norm (what the LM head reads; what poolings
  read), with ``cache`` when asked; :meth:`~BackboneFamily.continue_forward` feeds tokens after a
  cache; :meth:`~BackboneFamily.lm_logits` -> ``float[..., V]``;
- the left-padded shared-prefix cache (COND_GEN): :meth:`~BackboneFamily.prefix_positions` for the
  left-padded prefix, :meth:`~BackboneFamily.next_positions` (``long[B]``, the first suffix token's
  position) and :meth:`~BackboneFamily.continuation_positions` for the suffix tokens, which
  :attr:`~BackboneFamily.answer_scorer` (:data:`~vqa_demo.model.answer_scorer.PREFIX_CACHE`) uses
  for COND_GEN; an encoder-decoder family sets its own scorer, a family without a language-model
  head (ViLT) none;
- LoRA: :meth:`~BackboneFamily.lora_targets` for ``language`` or ``all-linear``;
  :meth:`~BackboneFamily.frozen_modules` stay frozen (the vision tower and projector);
- construction: :meth:`~BackboneFamily.build_tiny` (random weights, in-process) and
  :meth:`~BackboneFamily.load_pretrained` (a hub id or local directory, dtype, 4/8-bit on CUDA).

Each family lives in its own folder, ``vqa_demo/model/families/<name>/`` (the class, its tiny builder
and tokenizer, its facts), and is registered by one line in :mod:`vqa_demo.model.families.registry`,
which also holds :func:`~vqa_demo.model.families.registry.family_for`; ``--base tiny:<family>`` names
are the families' :attr:`~BackboneFamily.tiny_sources`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vqa_demo.model.answer_scorer import PREFIX_CACHE, AnswerScorer
from vqa_demo.model.base_checks import UnsafeBaseError, check_finite, check_loading_info

# Every LoRA scope a family offers: the language model's linear layers, or every linear layer.
LORA_SCOPES = ("language", "all-linear")

# The decoder linears LoRA adapts in ``language`` scope (attention and MLP projections).
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class PatchGrid:
    """The vision tower's patches on one model input ``float[C, H, W]``: ``rows x cols`` patches of
    ``patch_height x patch_width`` pixels from the top left; pixels outside them are padding."""

    rows: int
    cols: int
    patch_height: int
    patch_width: int

    @property
    def height(self) -> int:
        return self.rows * self.patch_height

    @property
    def width(self) -> int:
        return self.cols * self.patch_width

    @property
    def pixels_per_patch(self) -> int:
        return self.patch_height * self.patch_width


class BackboneFamily:
    """One model family: how its rows, images, forward passes, cache positions and LoRA targets work.

    Subclasses set the class attributes and override what differs; the defaults are a causal
    decoder VLM whose ``core.model`` takes ``mm_encoder_outputs`` and ``cache``.
    """

    name: str = ""
    title: str = ""  # the family's name as its authors write it (tables, labels)
    model_types: tuple[str, ...] = ()  # ``config.model_type`` values of this family
    model_class: type = object  # the transformers class of the whole model (``Backbone.core``)
    tiny_sources: tuple[str, ...] = ()  # ``--base`` names that build a tiny random model
    # How COND_GEN scores, generates and trains answers: a causal decoder's shared-prefix cache by
    # default, an encoder-decoder's own (BLIP); None where :attr:`generates_text` is False.
    answer_scorer: AnswerScorer | None = PREFIX_CACHE
    vision_modules: tuple[str, ...] = ("vision_tower", "multi_modal_projector")  # under ``core.model``
    token_types_in_prefix: bool = True  # pass ``token_type_ids`` in the prefix/row forward
    # What the poolings read when it holds no image positions (the Explain captions say it); None:
    # the image tokens are among the pooled positions.
    pooled_states: str | None = None

    @property
    def generates_text(self) -> bool:
        """A language-model head that writes answers (COND_GEN possible): the family has a scorer."""
        return self.answer_scorer is not None

    def describe(self, config: dict) -> str:
        """The model's name for people, from its ``config.json`` content (e.g. ``PaliGemma 2``)."""
        return self.title

    # --- construction -------------------------------------------------------------------------
    # ``tiny_builder(seed=0) -> (model, processor)``: the family's tiny random model (its ``tiny.py``)
    # with its own processor as built, as the raw-library tests and benchmarks use it.
    tiny_builder = None

    def build_tiny(self, source: str, seed: int = 0) -> tuple[torch.nn.Module, object]:
        """``(model, processor)`` of a random model of the family's structure (``source`` in
        :attr:`tiny_sources`), its processor as the backbone uses it; :attr:`tiny_builder` by default."""
        return type(self).tiny_builder(seed=seed)

    def load_pretrained(self, source: str, **kwargs) -> tuple[torch.nn.Module, object]:
        """``(model, processor)`` from a hub id or saved directory; ``kwargs`` go to ``from_pretrained``."""
        from transformers import AutoProcessor

        return self.load_model(source, **kwargs), AutoProcessor.from_pretrained(source)

    def load_model(self, source: str, **kwargs) -> torch.nn.Module:
        """The model of ``source`` in eval mode; refused (:class:`~vqa_demo.model.base_checks.UnsafeBaseError`)
        when loading left weights missing, unused or mis-shaped, or a weight holds NaN or infinity."""
        try:
            model, info = self.model_class.from_pretrained(source, output_loading_info=True, **kwargs)
        except (RuntimeError, ValueError, AttributeError, KeyError, TypeError) as error:
            # A base whose config and weights disagree (shapes, a switched model_type) fails deep inside.
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            raise UnsafeBaseError(
                f"the base {source} could not be loaded as a {self.title} model ({type(error).__name__}: "
                f"{first_line}); give a complete checkpoint whose config.json matches its weights"
            ) from None
        check_loading_info(info, source)
        check_finite(model, source)
        return model.eval()

    def fit_processor(self, model: torch.nn.Module, processor):
        """The processor adjusted to ``model``; every built or loaded backbone goes through this (as is
        by default)."""
        return processor

    def baseline_configs(self, source: str) -> dict:
        """Run configs (:class:`~vqa_demo.config.RunConfig`) by variant name of the zero-training
        variants the family answers with as it is on base ``source`` (ViLT's own answer classifier)."""
        return {}

    def supports(self, strategy) -> bool:
        """Whether head ``strategy`` (a :class:`~vqa_demo.model.head_strategy.HeadStrategy`) runs here."""
        if strategy.only_family not in (None, self.name):
            return False
        return self.generates_text or not strategy.generates_text

    def refusal(self, strategy) -> str | None:
        """Why head ``strategy`` cannot run on this family (None if it can), as one sentence."""
        if self.supports(strategy):
            return None
        if strategy.only_family not in (None, self.name):
            return (
                f"{strategy.name} runs on {strategy.only_family} only, not {self.name}: choose another head"
            )
        return f"{strategy.name} needs a model that writes answers; {self.name} has none: choose another head"

    # --- rows and pixels ----------------------------------------------------------------------
    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192):
        """The processor-exact row encoder (:class:`~vqa_demo.model.encoding.RowEncoder` contract)."""
        raise NotImplementedError

    def image_seq_length(self, processor) -> int:
        """Image tokens per image ``N``."""
        return int(processor.image_seq_length)

    def pixel_shape(self, processor) -> tuple[int, int, int]:
        """``(3, H, W)`` of one preprocessed image."""
        size = processor.image_processor.size
        return 3, size["height"], size["width"]

    def patch_grid(self, core, processor, pixel_values: torch.Tensor) -> PatchGrid | None:
        """The patches of one model input ``pixel_values float[C, H, W]``: by default one per image
        token, a square grid over the whole input; None where the tokens form no square grid that
        splits it evenly."""
        tokens = self.image_seq_length(processor)
        side = math.isqrt(tokens)
        height, width = pixel_values.shape[-2:]
        if side == 0 or side * side != tokens or height % side or width % side:
            return None
        return PatchGrid(side, side, height // side, width // side)

    def preprocess(self, processor, images: Sequence[Image.Image]) -> torch.Tensor:
        """``float[B, 3, H, W]`` on the CPU: the processor's resize and normalisation of RGB copies."""
        pictures = [img.convert("RGB") for img in images]
        return processor.image_processor(pictures, return_tensors="pt")["pixel_values"]

    # --- image features -----------------------------------------------------------------------
    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Projected image features ``float[B, N, D]`` for ``pixel_values float[B, 3, H, W]``.

        Without ``grad`` (the frozen-tower case) no graph is kept: the features are constants.
        """
        with torch.set_grad_enabled(grad):
            # The vision tower may be held in another precision than the language model (bf16 vision
            # beside an int8 language model): pixels in the tower's dtype, features in the LM's.
            tower_dtype = next(core.model.vision_tower.parameters()).dtype
            features = core.model.get_image_features(pixel_values.to(tower_dtype)).pooler_output
            return features.to(core.get_input_embeddings().weight.dtype)

    def pixel_baseline(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Integrated gradients' image baseline for model inputs ``pixel_values``, same shape: all
        zero, a uniform image at the processor's mean colour (zero after normalisation)."""
        return torch.zeros_like(pixel_values)

    def select_features(self, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Row ``r``'s features are example ``index[r]``'s: ``float[B, N, D]`` -> ``float[R, N, D]``."""
        return features[index]

    def repeat_features(self, features: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Each example's features ``counts[b]`` times in order (SWAG's option rows), ``float[sum, N, D]``."""
        index = torch.arange(len(counts), device=counts.device).repeat_interleave(counts)
        return self.select_features(features, index)

    def encoder_outputs(self, features: torch.Tensor) -> dict[str, BaseModelOutputWithPooling]:
        """``features`` in the form ``core.model(mm_encoder_outputs=...)`` takes."""
        return {"image": BaseModelOutputWithPooling(pooler_output=features)}

    # --- language forward ---------------------------------------------------------------------
    def language_forward(self, core, rows, features, use_cache=False, position_ids=None):
        """The language model over ``rows`` (:class:`~vqa_demo.model.encoding.EncodedRows`, ``[R, T]``)
        with each row's features ``float[R, N, D]``: ``last_hidden_state float[R, T, D]`` and, with
        ``use_cache``, ``cache``. ``position_ids`` are needed for left-padded rows."""
        extra = {"token_type_ids": rows.token_type_ids} if self.token_types_in_prefix else {}
        return core.model(
            input_ids=rows.input_ids,
            attention_mask=rows.attention_mask,
            position_ids=position_ids,
            mm_encoder_outputs=self.encoder_outputs(features),
            use_cache=use_cache,
            **extra,
        )

    def embeds_forward(self, core, embeds, attention_mask, token_type_ids, features) -> torch.Tensor:
        """``last_hidden_state float[R, T, D]`` from input embeddings ``float[R, T, D]`` (image positions
        hold the image token's embedding; the features replace them), as :meth:`language_forward`."""
        extra = {"token_type_ids": token_type_ids} if self.token_types_in_prefix else {}
        return core.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            mm_encoder_outputs=self.encoder_outputs(features),
            use_cache=False,
            **extra,
        ).last_hidden_state

    def continue_forward(self, core, cache, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor):
        """Feed ``ids long[R, L]`` after a cached prefix (``mask long[R, P + L]``); returns the model
        output (``last_hidden_state float[R, L, D]``, ``cache``)."""
        return core.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
        )

    def lm_logits(self, core, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits ``float[..., V]`` with final soft-capping where the config has it."""
        logits = core.lm_head(hidden).float()
        cap = getattr(core.config.get_text_config(), "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def input_embeddings(self, core) -> torch.nn.Module:
        """The token embedding module (attributions perturb its output)."""
        return core.get_input_embeddings()

    # --- shared-prefix cache positions --------------------------------------------------------
    def prefix_positions(self, rows, features) -> torch.Tensor:
        """Position ids of left-padded prefix rows ``[B, P]``: each real token's position when its row
        is encoded alone (0-based by default; pads get 0 and are masked)."""
        return (rows.attention_mask.cumsum(dim=1) - 1).clamp(min=0)

    def next_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """``long[B]``: the position of the first token after each prefix (last position + 1)."""
        batch_dim = positions.dim() - 2  # 3-D rotary positions are ``[3, B, P]``
        dims = [d for d in range(positions.dim()) if d != batch_dim]
        return positions.amax(dim=dims) + 1

    def continuation_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """The family's position ids for continuation tokens at 1-D positions ``long[R, S]``."""
        return positions

    # --- LoRA ---------------------------------------------------------------------------------
    def lora_targets(self, scope: str, names: tuple[str, ...] = DECODER_LINEARS) -> dict:
        """peft ``LoraConfig`` keyword arguments (``target_modules``, maybe ``exclude_modules``) for
        ``scope`` in :data:`LORA_SCOPES`; ``names`` are the language-model linears to adapt."""
        check_scope(scope)
        language = r".*language_model.*\.(" + "|".join(map(re.escape, names)) + r")$"
        if scope == "language":
            return {"target_modules": language}
        return {"target_modules": "all-linear"}

    def frozen_modules(self, core) -> list[torch.nn.Module]:
        """Modules whose base weights never train (the vision tower and projector)."""
        return [getattr(core.model, name) for name in self.vision_modules if hasattr(core.model, name)]

    def hidden_size(self, core) -> int:
        return int(core.config.get_text_config().hidden_size)


def check_scope(scope: str) -> None:
    if scope not in LORA_SCOPES:
        raise ValueError(f"LoRA targets must be one of {LORA_SCOPES}, got {scope!r}")
