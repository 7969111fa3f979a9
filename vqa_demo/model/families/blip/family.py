"""BLIP-VQA as a backbone family: ViT image encoder, BERT question encoder, BERT answer decoder.

Data flow of one call (B examples, R prompt rows, K options)::

    pixels float[B, 3, S, S] -> vision_model            -> image states  float[B, 1 + P, Dv]   once per image
    [CLS] prompt [SEP]  x image states -> text_encoder   -> question states float[R, T, D]    once per call
    [DEC] answer [SEP]  x question states -> text_decoder -> answer logits  (COND_GEN)
    question states -> pooling -> head                                       (MULTI_CLASS, SWAG)

COND_GEN is this family's own :class:`~vqa_demo.model.family.AnswerScorer`: an option's
log-likelihood is the answer decoder's, the same number as the model's own loss times the answer
length; generation is greedy from ``[DEC]`` to ``[SEP]`` (from the same question states as the
scores); training is the teacher-forced loss; an attribution explains the chosen option's
log-likelihood by the pixels and the question's token embeddings.

transformers 5.24 pitfall (pinned in tests/test_tiny_families.py): the decoder's cross-attention
drops ``encoder_attention_mask``, so it attends to a padded question's pad positions. The answer
decoder therefore runs once per group of equally long questions, on their states cut to that length:
each row is scored exactly as if its question had been encoded alone.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BlipForQuestionAnswering
from transformers.modeling_outputs import BaseModelOutput

from vqa_demo.model.answer_scorer import AnswerScorer, token_logprob_sum
from vqa_demo.model.bert_rows import BertRowEncoder, position_limit
from vqa_demo.model.encoding import EncodedRows
from vqa_demo.model.families.blip.tiny import tiny_blip
from vqa_demo.model.family import BackboneFamily, PatchGrid, check_scope
from vqa_demo.model.scoring import option_grid

# The question encoder's and answer decoder's attention and MLP linears (10 per layer).
LANGUAGE_LORA = (
    r".*text_(encoder|decoder\.bert)\.encoder\.layer\.\d+\."
    r"((attention|crossattention)\.(self\.(query|key|value)|output\.dense)|intermediate\.dense|output\.dense)"
)
# "all-linear" would also wrap the decoder's output layer (tied to the word embeddings) and its transform.
ALL_LINEAR_EXCLUDED = r".*text_decoder\.cls\..*"


def question_states(
    core: BlipForQuestionAnswering, rows: EncodedRows, features: torch.Tensor
) -> torch.Tensor:
    """The question encoder's ``last_hidden_state float[R, T, D]`` for rows ``[R, T]`` cross-attending
    to their image states ``float[R, 1 + P, Dv]`` (self-attention masks the question padding)."""
    return encode_question(core, features, rows.attention_mask, input_ids=rows.input_ids)


def encode_question(
    core: BlipForQuestionAnswering, features: torch.Tensor, attention_mask: torch.Tensor, **question
) -> torch.Tensor:
    """The question encoder's states ``float[R, T, D]`` from ``question`` (``input_ids long[R, T]`` or
    ``inputs_embeds float[R, T, D]``), cross-attending to every image state ``float[R, 1 + P, Dv]``."""
    image_mask = torch.ones(features.shape[:-1], dtype=torch.long, device=features.device)
    return core.text_encoder(
        **question,
        attention_mask=attention_mask,
        encoder_hidden_states=features,
        encoder_attention_mask=image_mask,
    ).last_hidden_state


def length_groups(lengths: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """``(length, indices long[n])`` for each distinct value of ``lengths long[R]``."""
    return [(int(n), (lengths == n).nonzero().squeeze(1)) for n in lengths.unique().tolist()]


def decoder_logits(
    core: BlipForQuestionAnswering, states: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Answer-decoder logits ``float[A, S, V]`` for answer rows ``ids long[A, S]`` (``mask``), each
    cross-attending to its own unpadded question states ``float[A, L, D]``."""
    question_mask = torch.ones(states.shape[:-1], dtype=torch.long, device=states.device)
    return core.text_decoder(
        input_ids=ids,
        attention_mask=mask,
        encoder_hidden_states=states,
        encoder_attention_mask=question_mask,
    ).logits.float()


def grouped_decoder_logits(
    core: BlipForQuestionAnswering,
    states: torch.Tensor,
    question_lengths: torch.Tensor,
    row_of: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Decoder logits of answer rows ``ids long[A, S]`` (answer ``a`` reads question ``row_of[a]``), one
    pass per question length: ``[(answer indices long[n], logits float[n, S, V])]``."""
    out = []
    for length, answers in length_groups(question_lengths[row_of]):
        own = states[row_of[answers], :length]
        out.append((answers, decoder_logits(core, own, ids[answers], mask[answers])))
    return out


def answer_loglik(
    core: BlipForQuestionAnswering,
    states: torch.Tensor,
    question_lengths: torch.Tensor,
    row_of: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Summed log-probabilities ``float[A]`` of answer rows ``ids long[A, S]`` (``[DEC] answer [SEP]``,
    ``mask``) after ``[DEC]``, answer ``a`` reading question ``row_of[a]``'s states ``float[R, T, D]``
    cut to its length. Differentiable (attributions), also run under ``no_grad`` (scoring)."""
    total = torch.zeros(ids.shape[0], device=states.device)
    for index, logits in grouped_decoder_logits(core, states, question_lengths, row_of, ids, mask):
        # Position j predicts token j + 1; [DEC] itself is given, not scored.
        scores = token_logprob_sum(logits[:, :-1], ids[index, 1:], mask[index, 1:])
        total = total.index_put((index,), scores)
    return total


def states_loglik(ctx, rows, states: torch.Tensor, options) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum float[B, K], mean float[B, K])`` answer log-likelihoods of ``options`` given the question
    states ``float[B, T, D]`` of ``rows`` (-inf on padded option slots)."""
    answers = [ctx.encoder.answer_ids(text)[0] for opts in options for text in opts]
    ids, mask = ctx.encoder.pad_suffixes(answers)
    ids, mask = ids.to(states.device), mask.to(states.device)
    row_of = torch.tensor([b for b, opts in enumerate(options) for _ in opts], device=states.device)
    total = answer_loglik(ctx.core, states, rows.attention_mask.sum(1), row_of, ids, mask)
    mean = total / (mask.sum(dim=1) - 1)
    return option_grid(total, options), option_grid(mean, options)


def states_generate(ctx, rows, states: torch.Tensor, max_new_tokens: int) -> list[list[int]]:
    """Greedy answer ids per row from the question states ``float[R, T, D]`` of ``rows``."""
    generated: list[list[int]] = [[] for _ in range(rows.input_ids.shape[0])]
    for length, members in length_groups(rows.attention_mask.sum(1)):
        answers = greedy_answers(ctx.core, states[members, :length], ctx.encoder, max_new_tokens)
        for member, answer in zip(members.tolist(), answers):
            generated[member] = answer
    return generated


class BlipAnswerScorer(AnswerScorer):
    """COND_GEN through BLIP's answer decoder (see the module docstring). One call encodes its
    questions once (:meth:`scores_and_answers`); scoring and generation then read those states."""

    suffix_in_row = False  # the answer decoder reads the answer as a row of its own

    def option_loglik(self, ctx, rows, features, options) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum float[B, K], mean float[B, K])`` of ``log p(option | image, prompt)`` over the answer
        tokens and ``[SEP]`` (``mean`` divides by their count); -inf on padded option slots."""
        with torch.no_grad():
            return states_loglik(ctx, rows, question_states(ctx.core, rows, features), options)

    def generate(self, ctx, rows, features, max_new_tokens: int) -> list[list[int]]:
        """Greedy answers from ``[DEC]`` until ``[SEP]`` (not included), at most ``max_new_tokens``."""
        with torch.no_grad():
            return states_generate(ctx, rows, question_states(ctx.core, rows, features), max_new_tokens)

    def scores_and_answers(self, ctx, rows, features, options, max_new_tokens: int):
        """Both of the above from one pass of the question encoder."""
        with torch.no_grad():
            states = question_states(ctx.core, rows, features)
            total, mean = states_loglik(ctx, rows, states, options)
            return total, mean, states_generate(ctx, rows, states, max_new_tokens)

    def target_score(self, ctx, states, attention_mask, labels) -> torch.Tensor:
        """The answers' summed log-likelihoods ``float[N]`` from question states ``float[N, T, D]``
        (``labels``: ``[DEC] answer [SEP]`` rows, -100 padded): the number :meth:`option_loglik` gives,
        with gradients to the states (hence to the pixels and the question's token embeddings)."""
        mask = (labels != -100).long()
        ids = labels.masked_fill(mask == 0, ctx.encoder.pad_id)
        row_of = torch.arange(ids.shape[0], device=ids.device)
        return answer_loglik(ctx.core, states, attention_mask.sum(1), row_of, ids, mask)

    def suffix_loss(self, ctx, rows, features, label_smoothing: float) -> tuple[torch.Tensor, int]:
        """Summed teacher-forced cross-entropy over the gold answers' tokens and ``[SEP]`` (``rows.labels``
        are the decoder rows ``[DEC] answer [SEP]``, -100 padded), and how many tokens that is."""
        states = question_states(ctx.core, rows, features)
        mask = (rows.labels != -100).long()
        ids = rows.labels.masked_fill(mask == 0, ctx.encoder.pad_id)
        row_of = torch.arange(ids.shape[0], device=ids.device)
        total = states.new_zeros(())
        for index, logits in grouped_decoder_logits(
            ctx.core, states, rows.attention_mask.sum(1), row_of, ids, mask
        ):
            scored = mask[index, 1:].bool()
            total = total + nn.functional.cross_entropy(
                logits[:, :-1][scored],
                ids[index, 1:][scored],
                label_smoothing=label_smoothing,
                reduction="sum",
            )
        return total, int(mask[:, 1:].sum())


def greedy_answers(
    core: BlipForQuestionAnswering, states: torch.Tensor, encoder: BertRowEncoder, max_new_tokens: int
) -> list[list[int]]:
    """Greedy decoding for questions of one length (``states float[n, L, D]``): new token ids per row."""
    count = states.shape[0]
    ids = torch.full((count, 1), encoder.decoder_start_id, dtype=torch.long, device=states.device)
    done = torch.zeros(count, dtype=torch.bool, device=states.device)
    # Answers are a few tokens long: re-reading them each step costs less than a cache's bookkeeping.
    for _ in range(min(max_new_tokens, encoder.max_suffix_tokens)):
        logits = decoder_logits(core, states, ids, torch.ones_like(ids))
        next_ids = logits[:, -1].argmax(dim=-1).masked_fill(done, encoder.pad_id)
        ids = torch.cat([ids, next_ids[:, None]], dim=1)
        done |= next_ids == encoder.eos_id
        if done.all():
            break
    answers = []
    for row in ids[:, 1:].tolist():
        answers.append(row[: row.index(encoder.eos_id)] if encoder.eos_id in row else row)
    return answers


class BlipFamily(BackboneFamily):
    """BLIP-VQA (``Salesforce/blip-vqa-base``): every head; COND_GEN through the answer decoder."""

    name = "blip"
    title = "BLIP-VQA"
    model_types = ("blip",)
    model_class = BlipForQuestionAnswering
    tiny_builder = staticmethod(tiny_blip)
    tiny_sources = ("tiny:blip",)
    answer_scorer = BlipAnswerScorer()
    vision_modules = ("vision_model",)  # kept out of 4/8-bit quantization
    pooled_states = (
        "The pooled states are BLIP's question encoder's: each question token reads the image through "
        "cross-attention"
    )

    def fit_processor(self, model, processor):
        """The processor with its tokenizer's ``model_max_length`` no longer than the text positions
        and its bos the decoder's start token (``[DEC]``, as the hub tokenizer has it)."""
        tokenizer, text_config = processor.tokenizer, model.config.text_config
        tokenizer.model_max_length = position_limit(tokenizer, text_config.max_position_embeddings)
        if tokenizer.bos_token_id != text_config.bos_token_id:
            tokenizer.bos_token = tokenizer.convert_ids_to_tokens(text_config.bos_token_id)
        return processor

    def row_encoder(self, processor, separator: str = "\n", max_text_tokens: int = 192) -> BertRowEncoder:
        tokenizer = processor.tokenizer
        return BertRowEncoder(
            tokenizer, tokenizer.model_max_length, separator, max_text_tokens, tokenizer.bos_token_id
        )

    def image_seq_length(self, processor) -> int:
        """0: the states the poolings read are the question's tokens only (no image positions)."""
        return 0

    def patch_grid(self, core, processor, pixel_values: torch.Tensor) -> PatchGrid:
        """The ViT's own patches (``image_size / patch_size`` a side at the processor's size): the
        question encoder reads them through cross-attention, one state per patch."""
        patch = int(core.config.vision_config.patch_size)
        height, width = pixel_values.shape[-2:]
        return PatchGrid(height // patch, width // patch, patch, patch)

    def image_features(self, core, pixel_values: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """The ViT's ``last_hidden_state float[B, 1 + P, Dv]`` (image ``[CLS]`` + patches)."""
        with torch.set_grad_enabled(grad):
            return core.vision_model(pixel_values=pixel_values.to(core.dtype)).last_hidden_state

    def language_forward(self, core, rows, features, use_cache=False, position_ids=None):
        """The question encoder's states ``last_hidden_state float[R, T, D]`` (no cache: not a decoder)."""
        return BaseModelOutput(last_hidden_state=question_states(core, rows, features))

    def embeds_forward(self, core, embeds, attention_mask, token_type_ids, features) -> torch.Tensor:
        """The question encoder's states ``float[R, T, D]`` from its input embeddings ``float[R, T, D]``."""
        return encode_question(core, features, attention_mask, inputs_embeds=embeds)

    def lm_logits(self, core, hidden: torch.Tensor) -> torch.Tensor:
        """Not BLIP's way: its answers are scored (and attributed) by :class:`BlipAnswerScorer` from the
        answer decoder, which reads the question states rather than continuing them."""
        raise ValueError(
            "BLIP has no language-model head over its question: its answer decoder scores answers"
        )

    def input_embeddings(self, core) -> nn.Module:
        return core.text_encoder.get_input_embeddings()

    def lora_targets(self, scope: str, names=()) -> dict:
        check_scope(scope)
        if scope == "language":
            return {"target_modules": LANGUAGE_LORA}
        return {"target_modules": "all-linear", "exclude_modules": ALL_LINEAR_EXCLUDED}

    def frozen_modules(self, core) -> list[nn.Module]:
        return [core.vision_model]

    def hidden_size(self, core) -> int:
        return int(core.config.text_config.hidden_size)


BLIP = BlipFamily()
