"""The tiny in-process models of the other VLM families against their own processors and plain forwards.

Per family: the processor lays an (image, prompt) row out with the family's number of image tokens;
image features computed once and fed back give the plain forward's logits; for the causal decoders a
left-padded batched prefix, its KV cache expanded with ``batch_select_indices`` and a continuation
give each row's plain full-forward log-probabilities; BLIP's answer log-likelihood matches its own
loss; ViLT's pooled ``[CLS]`` state drives its VQA classifier. The family lists come from the
registry (:data:`~vqa_demo.model.families.registry.FAMILIES`): a registered chat-templated decoder
gets every decoder check, every registered family the LoRA check; numbers pinned here for the known
families are extra checks, the family's own statement (its image tokens, its LoRA targets) the rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.family_checks import IMAGES, sum_error
from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.gemma3.tiny import tiny_gemma3
from vqa_demo.model.families.registry import FAMILIES, tiny_model
from vqa_demo.model.families.vilt.tiny import VILT_ANSWERS

TOL = 1e-5
# Every registered family prompted through a chat template (a causal decoder VLM).
DECODERS = tuple(name for name, family in FAMILIES.items() if isinstance(family, ChatDecoderFamily))
QUESTIONS = ("What colour is the circle?", "How many shapes are there? Answer with a number")
ANSWERS = (" red", " blue and green", " 3")
TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


@pytest.fixture(scope="module", params=DECODERS)
def decoder(request):
    model, processor = tiny_model(request.param)
    return request.param, model, processor


def chat_prompt(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode(name, processor, images, questions, padding_side="left"):
    """The family's processor on (image, question) rows, prompts through its chat template."""
    processor.tokenizer.padding_side = padding_side
    if not isinstance(FAMILIES[name], ChatDecoderFamily):
        return processor(images=list(images), text=list(questions), return_tensors="pt", padding=True)
    texts = [chat_prompt(processor, q) for q in questions]
    # Gemma 3's template writes <bos> itself; its tokenizer would add a second one.
    specials = name != "gemma3"
    return processor(
        images=[[i] for i in images],
        text=texts,
        return_tensors="pt",
        padding=True,
        add_special_tokens=specials,
    )


def image_token_id(model) -> int:
    return model.config.image_token_id


# ---------------------------------------------------------------- processor layout


EXPECTED_IMAGE_TOKENS = {
    # 32x32 -> 8x8 patches of 4 px -> 2x2 merge -> 16; 30x40 -> resized 24x32 (area <= 32*32) -> 12.
    "qwen2_5_vl": (16, 12),
    # CLIP's 16x16 crop, 4 px patches, CLS dropped ("default" strategy).
    "llava": (16, 16),
    # Longest edge to 32, 16 px tiles: 2x2 tiles + global view, 4 tokens each (pixel shuffle x2).
    "smolvlm": (20, 20),
    # Average-pooled to mm_tokens_per_image.
    "gemma3": (4, 4),
}


@pytest.mark.parametrize("name", DECODERS)
def test_processor_puts_the_family_number_of_image_tokens(name):
    model, processor = tiny_model(name)
    enc = encode(name, processor, IMAGES, QUESTIONS)
    counts = (enc["input_ids"] == image_token_id(model)).sum(dim=1).tolist()
    if name in EXPECTED_IMAGE_TOKENS:
        assert counts == list(EXPECTED_IMAGE_TOKENS[name])
    else:  # a family not pinned here: as many as the family says one image takes
        assert counts == [FAMILIES[name].image_seq_length(processor)] * len(IMAGES)
    # The chat-templated prompt is what the processor's own apply_chat_template tokenizes.
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": IMAGES[1]}, {"type": "text", "text": QUESTIONS[1]}],
        }
    ]
    own = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    row = enc["input_ids"][1][enc["attention_mask"][1].bool()].tolist()
    assert np.asarray(own["input_ids"]).reshape(-1).tolist() == row


def test_bert_style_families_encode_question_as_cls_text_sep():
    for name in ("blip", "vilt"):
        _, processor = tiny_model(name)
        enc = encode(name, processor, IMAGES[:1], QUESTIONS[:1])
        tokens = processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "colour" in tokens


def test_image_sequence_lengths_of_the_encoder_families():
    blip, processor = tiny_model("blip")
    enc = encode("blip", processor, IMAGES[:1], QUESTIONS[:1])
    with torch.no_grad():
        patches = blip.vision_model(pixel_values=enc["pixel_values"]).last_hidden_state
    assert patches.shape[1] == (16 // 4) ** 2 + 1  # patches + the image [CLS]
    vilt, processor = tiny_model("vilt")
    enc = encode("vilt", processor, IMAGES[1:], QUESTIONS[:1])
    height, width = enc["pixel_values"].shape[-2:]
    assert (height, width) == (32, 40)  # shortest edge 32, multiples of the 8 px patch
    with torch.no_grad():
        states = vilt.vilt(**enc).last_hidden_state
    assert states.shape[1] == enc["input_ids"].shape[1] + (height // 8) * (width // 8) + 1


# ---------------------------------------------------------------- image features once, fed back


def image_inputs(enc) -> dict:
    return {k: v for k, v in enc.items() if k not in TEXT_KEYS}


def image_features_once(model, enc) -> torch.Tensor:
    """The family's ``get_image_features`` on the processor's image tensors: ``float[N_img_tokens, D]``."""
    with torch.no_grad():
        pooled = model.get_image_features(**image_inputs(enc)).pooler_output
    pieces = pooled if isinstance(pooled, (list, tuple)) else [pooled]
    return torch.cat([p.reshape(-1, p.shape[-1]) for p in pieces])


def rope_positions(name, model, enc):
    """Position ids without relying on defaults: Qwen2.5-VL's 3-D ``long[3, B, T]``, else ``long[B, T]``."""
    mask = enc["attention_mask"]
    if name == "qwen2_5_vl":
        positions, _ = model.model.get_rope_index(
            enc["input_ids"],
            enc["mm_token_type_ids"],
            image_grid_thw=enc["image_grid_thw"],
            attention_mask=mask,
        )
        return positions
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def test_decoder_image_features_once_fed_back_give_plain_logits(decoder):
    name, model, processor = decoder
    enc = encode(name, processor, IMAGES, QUESTIONS)
    with torch.no_grad():
        plain = model(**enc).logits
        features = image_features_once(model, enc)
        assert features.shape[0] == (enc["input_ids"] == image_token_id(model)).sum()
        # (a) the family's own kwarg for precomputed encoder outputs.
        outputs = model.get_image_features(**image_inputs(enc))
        text_only = {k: v for k, v in enc.items() if k not in ("pixel_values", "pixel_attention_mask")}
        via_kwarg = model(**text_only, mm_encoder_outputs={"image": outputs}).logits
        # (b) features scattered into the token embeddings at the image positions.
        embeds = model.get_input_embeddings()(enc["input_ids"])
        embeds[enc["input_ids"] == image_token_id(model)] = features
        extra = {"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}
        via_embeds = model(
            inputs_embeds=embeds,
            attention_mask=enc["attention_mask"],
            position_ids=rope_positions(name, model, enc),
            **extra,
        ).logits
    valid = enc["attention_mask"].bool()
    assert (via_kwarg - plain)[valid].abs().max() < TOL
    assert (via_embeds - plain)[valid].abs().max() < TOL


# ---------------------------------------------------------------- shared prefix + KV cache


def suffix_batch(processor, answers):
    """Answers right-padded: ``(ids long[K, S], mask long[K, S])``, no special tokens."""
    rows = [processor.tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), processor.tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        ids[k, : len(row)], mask[k, : len(row)] = torch.tensor(row), 1
    return ids, mask


def continuation_positions(name, model, enc, suffix_len: int, rows):
    """Positions of the suffix tokens after each (left-padded) prefix row: ``long[(3,) N, S]``."""
    steps = torch.arange(suffix_len)
    if name == "qwen2_5_vl":
        prefix = rope_positions(name, model, enc)  # text after the image continues at max + 1
        start = prefix.amax(dim=(0, 2))[rows]
        return (start[:, None] + 1 + steps).unsqueeze(0).expand(3, -1, -1)
    return enc["attention_mask"].sum(dim=1)[rows][:, None] + steps


def cached_option_logprobs(name, model, enc, suffix_ids, suffix_mask):
    """One prefix pass for B rows, the cache expanded to B*K rows, one continuation: ``float[B, K, S]``.

    Entry ``[b, k, j]`` is log p(suffix token j of option k | prefix b, earlier suffix tokens).
    """
    batch, (num_options, width) = enc["input_ids"].shape[0], suffix_ids.shape
    with torch.no_grad():
        prefix = model(**enc, position_ids=rope_positions(name, model, enc), use_cache=True)
        cache = prefix.cache
        rows = torch.arange(batch).repeat_interleave(num_options)
        cache.batch_select_indices(rows)
        suffix = suffix_ids.repeat(batch, 1)
        mask = torch.cat([enc["attention_mask"][rows], suffix_mask.repeat(batch, 1)], dim=1)
        positions = continuation_positions(name, model, enc, width, rows)
        cont = model(input_ids=suffix, attention_mask=mask, position_ids=positions, cache=cache).logits
    logits = torch.cat([prefix.logits[rows, -1:], cont[:, :-1]], dim=1)
    logprobs = logits.log_softmax(-1).gather(-1, suffix[..., None]).squeeze(-1)
    return logprobs.view(batch, num_options, width), prefix


def alone_option_logprobs(model, enc, row: int, suffix_ids, suffix_mask):
    """Reference: a plain full forward of prefix ``row`` (unpadded) + each option alone: ``float[K, S]``."""
    valid = enc["attention_mask"][row].bool()
    prefix_ids = enc["input_ids"][row][valid]
    out = torch.zeros(suffix_ids.shape)
    for k in range(suffix_ids.shape[0]):
        answer = suffix_ids[k][suffix_mask[k].bool()]
        ids = torch.cat([prefix_ids, answer])[None]
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        for key in ("token_type_ids", "mm_token_type_ids"):  # answer tokens are text (type 0)
            if key in enc:
                inputs[key] = torch.cat([enc[key][row][valid], torch.zeros_like(answer)])[None]
        images = image_inputs(enc)
        if "image_grid_thw" in images:
            images["pixel_values"] = images["pixel_values"][enc["image_grid_thw"][:row].prod(-1).sum() :][
                : enc["image_grid_thw"][row].prod()
            ]
            images["image_grid_thw"] = images["image_grid_thw"][row : row + 1]
        else:
            images = {key: value[row : row + 1] for key, value in images.items()}
        with torch.no_grad():
            logits = model(**inputs, **images).logits[0]
        start = len(prefix_ids) - 1
        picked = logits[start : start + len(answer)].log_softmax(-1).gather(-1, answer[:, None]).squeeze(-1)
        out[k, : len(answer)] = picked
    return out


def test_decoder_cached_left_padded_prefix_matches_each_row_alone(decoder):
    name, model, processor = decoder
    enc = encode(name, processor, IMAGES, QUESTIONS, padding_side="left")
    assert (enc["attention_mask"][:, 0] == 0).any(), "the two prompts should differ in length"
    suffix_ids, suffix_mask = suffix_batch(processor, ANSWERS)
    cached, prefix = cached_option_logprobs(name, model, enc, suffix_ids, suffix_mask)
    for row in range(len(QUESTIONS)):
        alone = alone_option_logprobs(model, enc, row, suffix_ids, suffix_mask)
        assert (cached[row] - alone)[suffix_mask.bool()].abs().max() < TOL
    assert torch.isfinite(cached).all()


def test_gemma3_cache_with_a_sliding_window_shorter_than_the_prompt():
    model, processor = tiny_gemma3(sliding_window=8)
    enc = encode("gemma3", processor, IMAGES, QUESTIONS)
    assert enc["input_ids"].shape[1] > 4 * 8
    suffix_ids, suffix_mask = suffix_batch(processor, ANSWERS)
    cached, _ = cached_option_logprobs("gemma3", model, enc, suffix_ids, suffix_mask)
    for row in range(len(QUESTIONS)):
        alone = alone_option_logprobs(model, enc, row, suffix_ids, suffix_mask)
        assert (cached[row] - alone)[suffix_mask.bool()].abs().max() < TOL


# ---------------------------------------------------------------- BLIP and ViLT


def blip_answers(processor, answers):
    """Answer-decoder rows ``[DEC] answer [SEP]`` right-padded: ``(ids long[K, S], mask long[K, S])``."""
    enc = processor.tokenizer(list(answers), padding=True, return_tensors="pt")
    ids = enc["input_ids"].clone()
    ids[:, 0] = processor.tokenizer.bos_token_id  # the decoder starts from [DEC], not [CLS]
    return ids, enc["attention_mask"]


def blip_answer_loglik(model, enc, answer_ids, answer_mask) -> torch.Tensor:
    """Image and question encoded once per row, all K answers decoded together: ``float[B, K]``."""
    batch, num_options = enc["input_ids"].shape[0], answer_ids.shape[0]
    with torch.no_grad():
        image = model.vision_model(pixel_values=enc["pixel_values"]).last_hidden_state
        image_mask = torch.ones(image.shape[:-1], dtype=torch.long)
        question = model.text_encoder(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            encoder_hidden_states=image,
            encoder_attention_mask=image_mask,
        ).last_hidden_state
        rows = torch.arange(batch).repeat_interleave(num_options)
        logits = model.text_decoder(
            input_ids=answer_ids.repeat(batch, 1),
            attention_mask=answer_mask.repeat(batch, 1),
            encoder_hidden_states=question[rows],
            encoder_attention_mask=enc["attention_mask"][rows],
        ).logits
    targets = answer_ids.repeat(batch, 1)[:, 1:]
    picked = logits[:, :-1].log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    return (picked * answer_mask.repeat(batch, 1)[:, 1:]).sum(-1).view(batch, num_options)


def test_blip_answer_loglik_from_features_once_matches_its_loss():
    model, processor = tiny_model("blip")
    answer_ids, answer_mask = blip_answers(processor, [a.strip() for a in ANSWERS])
    for question in QUESTIONS:
        # One unpadded question per pass: see the padding test below.
        enc = encode("blip", processor, IMAGES[:1], [question])
        loglik = blip_answer_loglik(model, enc, answer_ids, answer_mask)[0]
        for k in range(len(ANSWERS)):
            labels = answer_ids[k][answer_mask[k].bool()][None]
            with torch.no_grad():
                loss = model(**enc, labels=labels).loss
            # The loss is the mean over the predicted tokens (all but [DEC]); label smoothing is 0 here.
            assert sum_error(loglik[k], -loss * (labels.shape[1] - 1)) < TOL


def test_blip_answer_decoder_attends_to_question_padding():
    """transformers 5.24's BLIP text cross-attention drops ``encoder_attention_mask``.

    So a question padded in a batch gets other answer scores than alone: encode questions unpadded
    (or group them by length). When this fails, the library masks the padding again.
    """
    model, processor = tiny_model("blip")
    answer_ids, answer_mask = blip_answers(processor, [a.strip() for a in ANSWERS])
    padded = encode("blip", processor, IMAGES[:1] * 2, QUESTIONS, padding_side="right")
    alone = encode("blip", processor, IMAGES[:1], QUESTIONS[:1])
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]
    batched = blip_answer_loglik(model, padded, answer_ids, answer_mask)[0]
    single = blip_answer_loglik(model, alone, answer_ids, answer_mask)[0]
    assert (batched - single).abs().max() > 1e-4


def test_vilt_pooled_cls_state_drives_its_vqa_classifier():
    model, processor = tiny_model("vilt")
    enc = encode("vilt", processor, IMAGES, QUESTIONS, padding_side="right")
    assert (enc["attention_mask"] == 0).any() and (enc["pixel_mask"] == 0).any()
    with torch.no_grad():
        states = model.vilt(**enc)
        pooled = model.vilt.pooler(states.last_hidden_state)  # reads position 0, the text [CLS]
        logits = model.classifier(pooled)
        plain = model(**enc).logits
    assert (states.pooler_output - pooled).abs().max() < TOL
    assert (logits - plain).abs().max() < TOL
    assert logits.shape == (2, len(VILT_ANSWERS)) and model.config.id2label[0] == VILT_ANSWERS[0]
    for row in range(2):
        alone = encode("vilt", processor, IMAGES[row : row + 1], QUESTIONS[row : row + 1])
        with torch.no_grad():
            assert (model(**alone).logits[0] - plain[row]).abs().max() < TOL


# ---------------------------------------------------------------- LoRA targets

# Linear layers per transformer block the language-only targets wrap (2 blocks per tiny model).
LANGUAGE_LINEARS = {**dict.fromkeys(DECODERS, 7 * 2), "blip": 10 * 2 * 2, "vilt": 6 * 2}


def lora_wrapped(model, targets: dict) -> list[str]:
    """Names of the modules peft wraps for the ``LoraConfig`` keyword arguments ``targets``."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, **targets))
    return [n.removesuffix(".lora_A") for n, _ in peft_model.named_modules() if n.endswith(".lora_A")]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_language_only_lora_targets_wrap_the_text_layers_only(name):
    model, _ = tiny_model(name)
    wrapped = lora_wrapped(model, FAMILIES[name].lora_targets("language"))
    assert wrapped and len(wrapped) == LANGUAGE_LINEARS.get(name, len(wrapped))
    vision = (
        "visual",
        "vision_tower",
        "vision_model",
        "projector",
        "connector",
        "lm_head",
        "cls.",
        "classifier",
    )
    assert not [n for n in wrapped if any(part in n for part in vision)]


@pytest.mark.parametrize("name", DECODERS)
def test_all_linear_lora_also_wraps_the_vision_tower_but_not_the_lm_head(name):
    model, _ = tiny_model(name)
    wrapped = lora_wrapped(model, FAMILIES[name].lora_targets("all-linear"))
    language = lora_wrapped(tiny_model(name)[0], FAMILIES[name].lora_targets("language"))
    assert len(wrapped) > len(language)
    assert any(part in n for n in wrapped for part in ("visual", "vision_tower", "vision_model"))
    assert not [n for n in wrapped if n.endswith("lm_head")]
