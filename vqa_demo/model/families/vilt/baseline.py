"""ViLT's own VQA answer classifier as a zero-training multiple-choice baseline.

ViLT-VQA classifies a question into its answer vocabulary (``config.label2id``: 3129 VQAv2 answers
on the hub). As an MC answerer it scores option ``k`` by the classifier's logit of that answer::

    [CLS] question [SEP] + image -> model.vilt -> pooler -> classifier -> logits float[B, V]
    score[b, k] = logits[b, label2id[option_k]]   (-inf when option_k is not an answer it knows)

The question is the plain question (what ViLT was fine-tuned on), and an option is looked up as it
is written, lowercased and trimmed (VQAv2 answers are lowercase). Options outside the vocabulary get
``-inf`` and are named in the prediction's note; when no option is known the scores are all ``-inf``
and the note says the choice means nothing. No training: the variant runs the base weights.

The strategy is registered like every head (:data:`~vqa_demo.model.strategies.STRATEGIES`), runs on
ViLT only (:attr:`~ViltClassifierStrategy.only_family`), and is refused for training at config
validation (:meth:`~vqa_demo.config.HeadConfig.check_trainable`). Its :meth:`loss_terms` is still the
real thing: the K-way cross-entropy of the options' classifier logits.
"""

from __future__ import annotations

import numpy as np
import torch

from vqa_demo.config import BASELINE_HEADS
from vqa_demo.model.families.vilt.family import joint_forward
from vqa_demo.model.head_strategy import HeadScores, HeadStrategy
from vqa_demo.model.prompts import PromptRow, cleaned


def answer_key(option: str) -> str:
    """How an option is looked up in ViLT's answer vocabulary."""
    return option.strip().lower()


def vocabulary_note(options: list[str], known: list[bool]) -> str | None:
    """The plain statement of which options ViLT's classifier cannot score (None when it knows all)."""
    unknown = [f"{option!r}" for option, ok in zip(options, known) if not ok]
    if not unknown:
        return None
    if len(unknown) == len(options):
        return "no option is in ViLT's answer vocabulary: every score is -inf and the choice means nothing"
    return f"not in ViLT's answer vocabulary (scored -inf): {', '.join(unknown)}"


class ViltClassifierStrategy(HeadStrategy):
    """Scores options with ViLT's own answer classifier (any number of options, nothing to train)."""

    # Its HEAD_TRAITS entry has only_family "vilt": ViLT's answer classifier (``core.classifier``, ``label2id``).
    name = BASELINE_HEADS[0]

    def prompt_rows(self, question, options, style="default", answer_index=None) -> list[PromptRow]:
        question, _ = cleaned(question, options)
        return [PromptRow("", question, "")]

    def answer_logits(self, ctx, questions: list[str], features: torch.Tensor):
        """``(logits float[B, V], encoded rows)`` of the classifier for B plain questions."""
        rows = [self.prompt_rows(q, [])[0] for q in questions]
        encoded = ctx.encoder.encode(rows, with_suffix=False).to(features.device)
        pooled = joint_forward(ctx.core, encoded, features).pooler_output
        return ctx.core.classifier(pooled).float(), encoded

    def option_logits(self, ctx, questions, options, features) -> tuple[torch.Tensor, list[bool], list]:
        """``(scores float[B, K], truncated, known)``: each option's classifier logit, -inf where the
        option is not an answer ViLT knows or the slot is padding; ``known[b][k]`` says which are."""
        logits, encoded = self.answer_logits(ctx, questions, features)
        label2id = ctx.core.config.label2id
        width = max(len(o) for o in options)
        scores = torch.full((len(options), width), -torch.inf, device=logits.device)
        known = [[answer_key(option) in label2id for option in opts] for opts in options]
        for b, opts in enumerate(options):
            for k, option in enumerate(opts):
                if known[b][k]:
                    scores[b, k] = logits[b, label2id[answer_key(option)]]
        return scores, list(encoded.truncated), known

    def scores(self, ctx, questions, options, features) -> HeadScores:
        with torch.no_grad():
            scores, truncated, known = self.option_logits(ctx, questions, options, features)
        notes = [vocabulary_note(opts, ok) for opts, ok in zip(options, known)]
        return HeadScores(scores.cpu().numpy().astype(np.float32), truncated, notes=notes)

    def loss_terms(self, ctx, questions, options, answers, features, label_smoothing=0.0):
        """The summed K-way cross-entropy of the options' classifier logits and B (what training would
        minimise; :meth:`~vqa_demo.config.HeadConfig.check_trainable` refuses to train it). A gold
        option outside the vocabulary gives an infinite loss."""
        scores, _, _ = self.option_logits(ctx, questions, options, features)
        gold = torch.tensor(answers, device=scores.device)
        loss = torch.nn.functional.cross_entropy(
            scores, gold, label_smoothing=label_smoothing, reduction="sum"
        )
        return loss, len(answers)

    def target_score(self, ctx, hidden, attention_mask, labels, targets, num_options):
        # The score is a vocabulary logit picked by the option's text, which the attribution's row
        # tensors do not carry.
        raise ValueError(
            "attributions of the ViLT answer-classifier baseline are not available: "
            "explain a multi_class or swag variant"
        )
