"""Checks of the chat-templated decoder families (LLaVA, Gemma 3, Qwen2.5-VL, SmolVLM) against each
family's own processor and its own plain forward; tests/test_family_decoders.py runs them on every family.

The references never use the project's encoder or cache: ids and tensors come from the processor's
``apply_chat_template(tokenize=True)`` on the image, hidden states and log-likelihoods from the model's
own forward on those tensors (no cache), greedy answers from repeated plain forwards and from its own
``generate``. What a check expects of a family (answer lead, end token, image tokens, module paths) is
written down in :data:`PINNED`, not read from the product's family object; :data:`CHAT_FAMILIES` holds
one spec per registered chat family (a family not pinned yet gets one read from its object). Checks return the
measured max |difference| where there is one (relative, :func:`sum_error`, for summed
log-likelihoods); the tests assert it is <= :data:`TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqa_demo.config import HeadConfig
from vqa_demo.model.backbone import Backbone, build_tiny_backbone
from vqa_demo.model.classifier_strategies import MultiClassStrategy, SwagStrategy
from vqa_demo.model.cond_gen import CondGenStrategy, answer_scores
from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.qwen2_5_vl.family import fixed_side
from vqa_demo.model.families.registry import FAMILIES
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.testing import TrigramMatcher, randomize

TOLERANCE = 1e-5


def sum_error(ours: float, reference: float) -> float:
    """``|ours - reference| / max(1, |reference|)``: absolute for small numbers, relative once they pass 1.

    For sums that grow with their length (summed log-likelihoods, summed losses): float32 rounds a
    number x in steps of about ``|x| * 1.2e-7``, so above 128 one step alone exceeds an absolute 1e-5.
    """
    return abs(float(ours) - float(reference)) / max(1.0, abs(float(reference)))


QUESTIONS = ("What colour is the circle?", "How many shapes are there? Answer with a number")
# Four options each (the predictor's random multi_class heads are built for K = 4), of 1-3 tokens.
OPTIONS = (["red", "blue and green", "green", "3"], ["two", "a few more", "7", "big red triangle"])


def random_image(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# Two sizes and aspect ratios: the families' fixed layouts must give both the same token count.
IMAGES = (random_image(32, 32, 0), random_image(30, 40, 1))


def as_is(processor, image: Image.Image) -> Image.Image:
    """The processor itself brings every image to the one view: the reference image is the image."""
    return image


def fixed_square(processor, image: Image.Image) -> Image.Image:
    """Qwen2.5-VL's reference image: resized to the family's fixed square (bicubic, as the processor
    resamples), which the processor then keeps as it is."""
    side = fixed_side(processor.image_processor)
    return image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)


def pixel_batch(args: tuple, kwargs: dict) -> int:
    """Images in one vision-tower call that takes ``pixel_values float[N, ...]``."""
    return (args[0] if args else kwargs["pixel_values"]).shape[0]


@dataclass(frozen=True)
class ChatFamily:
    """What the checks expect of one chat-templated family's tiny model."""

    source: str
    end: str  # ends the answer (and generation)
    image_tokens: int  # per row, whatever the image's size
    tower: str  # the vision tower's attribute path on the core model
    vision_parts: tuple[str, ...]  # each in the name of some all-linear LoRA target
    lead: str = ""  # written before the answer in the assistant turn
    tower_images: Callable[[tuple, dict], int] = pixel_batch  # images in one tower call (args, kwargs)
    language_layers: str = ".language_model.layers."  # in the name of every language-only LoRA target
    reference_image: Callable[[object, Image.Image], Image.Image] = as_is

    @property
    def name(self) -> str:
        return self.source.removeprefix("tiny:")


PINNED = [
    ChatFamily("tiny:llava", "</s>", 16, "model.vision_tower", (".vision_tower.",), lead=" "),
    ChatFamily("tiny:gemma3", "<end_of_turn>", 4, "model.vision_tower", (".vision_tower.",)),
    ChatFamily(
        "tiny:qwen2_5_vl",
        "<|im_end|>",
        16,  # 32 px / 4 px patches, 2 x 2 merged
        "model.visual",
        (".visual.blocks.", ".visual.merger."),
        tower_images=lambda args, kwargs: len(kwargs["grid_thw"]),  # one row per image
        reference_image=fixed_square,
    ),
    ChatFamily(
        "tiny:smolvlm",
        "<end_of_utterance>",
        4,
        "model.vision_model",
        (".vision_model.encoder.", ".connector.modality_projection.proj"),
        lead=" ",  # the template writes "Assistant: answer"
        language_layers=".text_model.layers.",
    ),
]


def derived_spec(family) -> ChatFamily:
    """What the checks expect of a registered chat family that :data:`PINNED` does not write down: read
    from the family object (its end token, answer lead, image tokens and vision tower), so a newly
    registered family runs every check at once; pin it above to check against independent numbers."""
    source = family.tiny_sources[0]
    _, processor = family.build_tiny(source)
    tower = family.vision_modules[0]
    return ChatFamily(
        source,
        family.end_token,
        family.image_seq_length(processor),
        f"model.{tower}",
        (f".{tower}.",),
        lead=family.answer_lead,
    )


def chat_families() -> list[ChatFamily]:
    """One spec per registered chat-templated family, in registry order."""
    pinned = {spec.name: spec for spec in PINNED}
    chat = [f for f in FAMILIES.values() if isinstance(f, ChatDecoderFamily)]
    return [pinned.get(f.name) or derived_spec(f) for f in chat]


CHAT_FAMILIES = chat_families()


def tiny(source: str) -> Backbone:
    return build_tiny_backbone(seed=3, source=source)


def processor_inputs(processor, image: Image.Image, prompt: str) -> dict[str, torch.Tensor]:
    """The processor's own tensors for one row: its chat template (one image, then ``prompt``) tokenized
    with the generation prompt."""
    content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
    messages = [{"role": "user", "content": content}]
    return dict(
        processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
    )


def chat_text(processor, prompt: str) -> str:
    """The family's chat template around one user turn (an image, then ``prompt``) as text."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def answer_ids(processor, spec: ChatFamily, answer: str) -> list[int]:
    """The assistant turn's answer tokens as the template writes them: ``lead + answer``, then the end."""
    tokenizer = processor.tokenizer
    ids = tokenizer(spec.lead + answer, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.convert_tokens_to_ids(spec.end)]


def with_answer(inputs: dict, answer: list[int]) -> dict:
    """``inputs`` (one row) with ``answer`` appended as text tokens (token type 0)."""
    extended = dict(inputs)
    tail = torch.tensor([answer], dtype=torch.long)
    extended["input_ids"] = torch.cat([inputs["input_ids"], tail], dim=1)
    extended["attention_mask"] = torch.ones_like(extended["input_ids"])
    for key in ("token_type_ids", "mm_token_type_ids"):
        if key in inputs:
            extended[key] = torch.cat([inputs[key], torch.zeros_like(tail)], dim=1)
    return extended


@torch.no_grad()
def plain_logits(model, inputs: dict, answer: list[int]) -> torch.Tensor:
    """``float[T, V]``: the model's own forward (no cache) on the processor's row + ``answer``."""
    return model(**with_answer(inputs, answer)).logits[0].float()


def plain_answer_loglik(model, inputs: dict, answer: list[int]) -> float:
    """Summed ``log p(answer | prompt)`` from one plain full forward of prompt + answer."""
    start = inputs["input_ids"].shape[1] - 1  # position j predicts token j + 1
    picked = plain_logits(model, inputs, answer)[start : start + len(answer)].log_softmax(-1)
    return float(picked.gather(-1, torch.tensor(answer)[:, None]).sum())


def plain_greedy(model, inputs: dict, eos_id: int, max_new_tokens: int) -> list[int]:
    """Greedy decoding by repeated full forwards (no cache), stopping at ``eos_id``."""
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        next_id = int(plain_logits(model, inputs, tokens)[-1].argmax())
        if next_id == eos_id:
            break
        tokens.append(next_id)
    return tokens


@torch.no_grad()
def plain_states(model, inputs: dict) -> torch.Tensor:
    """One row's final hidden states ``float[T, D]`` (after the final norm) from the base model's plain
    forward on the processor's tensors (its own image features and positions)."""
    return model.model(**inputs).last_hidden_state[0]


def reference_inputs(backbone: Backbone, spec: ChatFamily, image: Image.Image, prompt: str) -> dict:
    return processor_inputs(backbone.processor, spec.reference_image(backbone.processor, image), prompt)


def features_of(backbone: Backbone, images=IMAGES) -> torch.Tensor:
    """``float[B, N, D]``: the family's image features of ``images``."""
    return backbone.family.image_features(backbone.core, backbone.pixel_values(list(images)))


def features_are_the_models_own(family, model, pixels: torch.Tensor, *own_inputs) -> torch.Tensor:
    """The family's image features of ``pixels`` equal the model's own ``get_image_features(*own_inputs)``
    on the processor's tensors, exactly; returns them ``float[B, N, D]``."""
    features = family.image_features(model, pixels)
    with torch.no_grad():
        own = model.model.get_image_features(*own_inputs).pooler_output
    assert torch.equal(features, torch.stack(own))
    return features


def context(backbone: Backbone, head: HeadConfig, module=None) -> HeadContext:
    return HeadContext(backbone.core, backbone.row_encoder(), head, module=module, matcher=TrigramMatcher())


def check_rows_match_processor(spec: ChatFamily) -> int:
    """Every head's prompt rows equal the processor's ids (and token types) one by one; with their
    training suffixes, all rows in one right-padded batch equal the processor's prefix + the answer ids.
    Returns the image tokens per row."""
    backbone = tiny(spec.source)
    processor, encoder = backbone.processor, backbone.row_encoder()
    rows, references = [], []
    for question, options, image in zip(QUESTIONS, OPTIONS, IMAGES):
        for strategy in (CondGenStrategy(), MultiClassStrategy(), SwagStrategy()):
            for row in strategy.prompt_rows(question, options):
                alone = encoder.encode([row], with_suffix=False)
                reference = reference_inputs(backbone, spec, image, row.prefix)
                assert alone.input_ids[0].tolist() == reference["input_ids"][0].tolist(), strategy.name
                if "token_type_ids" in reference:
                    assert alone.token_type_ids[0].tolist() == reference["token_type_ids"][0].tolist()
            for row in strategy.prompt_rows(question, options, answer_index=1):
                prefix = reference_inputs(backbone, spec, image, row.prefix)["input_ids"][0].tolist()
                suffix = [] if row.suffix is None else answer_ids(processor, spec, row.suffix)
                rows.append(row)
                references.append((prefix, suffix))
    encoded = encoder.encode(rows)
    for i, (prefix, suffix) in enumerate(references):
        ids = encoded.input_ids[i][encoded.attention_mask[i].bool()].tolist()
        assert ids == prefix + suffix, f"row {i} differs from the processor's"
        assert int(encoded.prefix_lengths[i]) == len(prefix)
    for answer in ("red", "blue and green", "big red triangle"):
        assert encoder.suffix_ids(answer) == answer_ids(processor, spec, answer)
    # The model's own image token (Gemma 3's processor names <start_of_image> its image_token_id).
    counts = (encoded.input_ids == backbone.core.config.image_token_id).sum(dim=1)
    assert counts.eq(backbone.family.image_seq_length(processor)).all()
    return int(counts[0])


def check_cond_gen_matches_plain_forward(spec: ChatFamily, max_new_tokens: int = 4) -> float:
    """COND_GEN's cached option log-likelihoods (both examples in one call) against a plain forward of
    each (prompt, option) alone; its greedy ids against argmax decoding with plain forwards, and its
    text against the model's own ``generate``. Returns the max :func:`sum_error` of the log-likelihoods."""
    backbone = tiny(spec.source)
    model, tokenizer = backbone.core, backbone.processor.tokenizer
    head = HeadConfig("cond_gen", cond_gen_scoring="loglik_sum", max_new_tokens=max_new_tokens)
    ctx, strategy, features = context(backbone, head), CondGenStrategy(), features_of(backbone)
    eos_id = tokenizer.convert_tokens_to_ids(spec.end)
    assert ctx.encoder.eos_id == eos_id
    out = strategy.scores(ctx, list(QUESTIONS), list(OPTIONS), features)
    rows = [strategy.prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    _, _, generated = answer_scores(ctx, ctx.encoder.encode(rows, with_suffix=False), features, OPTIONS)
    worst = 0.0
    for b, (row, options, image) in enumerate(zip(rows, OPTIONS, IMAGES)):
        inputs = reference_inputs(backbone, spec, image, row.prefix)
        for k, option in enumerate(options):
            reference = plain_answer_loglik(model, inputs, answer_ids(backbone.processor, spec, option))
            worst = max(worst, sum_error(out.cond_gen[b].loglik_sum[k], reference))
        assert generated[b] == plain_greedy(model, inputs, eos_id, max_new_tokens)
        with torch.no_grad():
            own = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id
            )
        text = tokenizer.decode(own[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert out.cond_gen[b].generated_text == text
    return worst


def trained_head(strategy, backbone: Backbone, head: HeadConfig):
    module = strategy.build_head(head, backbone.hidden_size)
    randomize(module, 0)
    return module.eval()


@torch.no_grad()
def check_pooling_under_padding(spec: ChatFamily, pooling: str) -> float:
    """MULTI_CLASS on a right-padded batch of two prompts of different lengths: every real position's
    hidden state (what the poolings read; the last one for last-token pooling) and the scores equal
    each prompt's plain forward alone. Returns the max |diff|."""
    backbone = tiny(spec.source)
    head = HeadConfig("multi_class", pooling=pooling, num_options=len(OPTIONS[0]))
    strategy = MultiClassStrategy()
    module = trained_head(strategy, backbone, head)
    features = features_of(backbone)
    out = strategy.classifier_scores(
        context(backbone, head, module), list(QUESTIONS), list(OPTIONS), features
    )
    lengths = out.rows.attention_mask.sum(dim=1)
    assert lengths[0] != lengths[1], "the two rows should need padding"
    hidden = backbone.family.language_forward(backbone.core, out.rows, features).last_hidden_state
    worst = 0.0
    for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, IMAGES)):
        inputs = reference_inputs(backbone, spec, image, strategy.prompt_rows(question, options)[0].prefix)
        alone = plain_states(backbone.core, inputs)
        assert alone.shape[0] == lengths[b]
        worst = max(worst, float((hidden[b, : lengths[b]] - alone).abs().max()))
        scores, _ = module(alone[None], torch.ones(1, len(alone), dtype=torch.bool), len(options))
        worst = max(worst, float((out.scores[b] - scores[0]).abs().max()))
    return worst


@torch.no_grad()
def check_swag_rows_match_single_passes(spec: ChatFamily, pooling: str) -> float:
    """SWAG's rows of both examples (one per option, in one forward, image features repeated rather
    than recomputed) against each row's plain forward alone. Returns the max |diff|."""
    backbone = tiny(spec.source)
    head = HeadConfig("swag", pooling=pooling)
    strategy = SwagStrategy()
    module = trained_head(strategy, backbone, head)
    ctx = context(backbone, head, module)
    out = strategy.classifier_scores(ctx, list(QUESTIONS), list(OPTIONS), features_of(backbone))
    worst = 0.0
    for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, IMAGES)):
        for k, row in enumerate(strategy.prompt_rows(question, options)):
            alone = plain_states(backbone.core, reference_inputs(backbone, spec, image, row.prefix))
            logit, _ = module.row_scores(alone[None], torch.ones(1, len(alone), dtype=torch.bool))
            worst = max(worst, abs(float(out.scores[b, k]) - float(logit[0])))
    return worst
