"""In-process tokenizers and chat templates for the tiny models of the other VLM families.

Each tokenizer is small and random-free (trained on the project's tiny corpus) but carries the special
tokens of its family's real checkpoint, so the family's own processor lays prompts out as on the hub:
byte-level BPE for the decoder families (Qwen2.5-VL, LLaVA-1.5, SmolVLM, Gemma 3) and an uncased
WordPiece with ``[CLS] ... [SEP]`` for the BERT-style ones (BLIP, ViLT). The chat templates are the
real checkpoints' templates (whitespace-compacted where Jinja's ``-`` trimming makes it irrelevant).
"""

from __future__ import annotations

import string
from collections import Counter

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from vqa_demo.model.tokenizer import TINY_CORPUS, byte_level_bpe

# Qwen/Qwen2.5-VL-3B-Instruct's template (its "add_vision_id" switch kept).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# llava-hf/llava-1.5-7b-hf's template: "USER: <image>\n<text> ASSISTANT:".
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# HuggingFaceTB/SmolVLM-Instruct's template: "<|im_start|>User:<image>text<end_of_utterance>\nAssistant:".
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# google/gemma-3-4b-it's template; it writes <bos> itself, so its text is tokenized without specials.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    '{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = "" -%}'
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}{%- endif -%}'
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    '{%- else -%}{{ raise_exception("Invalid content type") }}{%- endif -%}'
    "{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}"
)

SMOLVLM_GRID_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5))


def byte_level_tokenizer(
    special_tokens: tuple[str, ...], *, add_bos: bool = False, vocab_size: int = 420, **named_tokens
) -> PreTrainedTokenizerFast:
    """A byte-level BPE over the tiny corpus whose first ids are ``special_tokens`` (in order).

    ``named_tokens`` are the roles (``bos_token=..``, ``extra_special_tokens={..}``) as the
    family's hub tokenizer names them; every named token must be in ``special_tokens``.
    """
    core = byte_level_bpe(list(TINY_CORPUS) * 4, vocab_size, special_tokens)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **named_tokens)
    tokenizer.add_bos_token = add_bos
    return tokenizer


def wordpiece_vocab(specials: list[str], vocab_size: int) -> dict[str, int]:
    """A fixed WordPiece vocabulary: the specials, every ASCII letter, digit and punctuation mark and
    the corpus's other characters (alone and as ``##`` continuations, so no ASCII word is ``[UNK]``),
    then the corpus's words, most frequent first (ties by spelling), up to ``vocab_size`` tokens.

    Built by hand because ``WordPieceTrainer`` breaks ties differently on every run: two tiny models
    built in one process (a training run and the evaluation that reloads it) got different ids.
    """
    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in TINY_CORPUS for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation) | set("".join(words)))
    tokens = [*specials, *chars, *(f"##{c}" for c in chars)]
    for word, _ in sorted(words.items(), key=lambda item: (-item[1], item[0])):
        if len(tokens) >= vocab_size:
            break
        if word not in tokens:
            tokens.append(word)
    return {token: index for index, token in enumerate(tokens)}


def wordpiece_tokenizer(
    extra_special: tuple[str, ...] = (), vocab_size: int = 300
) -> PreTrainedTokenizerFast:
    """An uncased BERT-style WordPiece (``[PAD]`` = 0, ``[CLS] text [SEP]``), as BLIP and ViLT use;
    the same ids on every build (:func:`wordpiece_vocab`)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_special]
    core = Tokenizer(models.WordPiece(wordpiece_vocab(specials, vocab_size), unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    cls_id, sep_id = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="right",
    )


def qwen2_5_vl_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2's specials; no ``<bos>`` is added, ``<|endoftext|>`` pads, ``<|im_end|>`` ends a turn."""
    specials = (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|image_pad|>", "<|video_pad|>",
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def llava_tokenizer() -> PreTrainedTokenizerFast:
    """Llama-1/Vicuna's specials plus ``<image>``; ``<s>`` is added in front as the hub tokenizer does."""
    return byte_level_tokenizer(
        ("<unk>", "<s>", "</s>", "<pad>", "<image>"),
        add_bos=True,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def smolvlm_tokenizer() -> PreTrainedTokenizerFast:
    """SmolLM2's specials plus Idefics3's image tokens (row/column tags included); pads with ``<|im_end|>``."""
    specials = (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>",
        "<image>", "<global-img>", *SMOLVLM_GRID_TOKENS,
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"},
    )


def gemma3_tokenizer() -> PreTrainedTokenizerFast:
    """Gemma 3's specials; ``<bos>`` is added in front, an image is ``<start_of_image>`` in the text."""
    specials = (
        "<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
        "<end_of_image>", "<image_soft_token>",
    )  # fmt: skip
    return byte_level_tokenizer(
        specials,
        add_bos=True,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
