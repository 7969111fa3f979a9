"""ViLT's own VQA answer classifier as a zero-training multiple-choice baseline.

ViLT-VQA classifies a question into its answer vocabulary (``config.label2id``: 3129 VQAv2 answers
on the hub). As an MC answerer it scores option ``k`` by the classifier's logit of that answer::

    [CLS] question [SEP] + image -> model.vilt -> pooler -> classifier -> logits float[B, V]
    score[b, k] = logits[b, label2id[option_k]]   (-inf when option_k is not an answer it knows)

The question is the plain question (what ViLT was fine-tuned on), and an option is looked up as it
is written, lowercased and trimmed (VQAv2 answers are lowercase). Options outside the vocabulary get
``-inf`` and are named in the prediction's note; when no option is known the scores are all ``-inf``
and the note says the choice means nothing. No training: the variant runs the base weights.
"""

from __future__ import annotations

import numpy as np
import torch

from vqa_demo.config import HeadConfig, RunConfig
from vqa_demo.model.head_strategy import HeadScores, HeadStrategy
from vqa_demo.model.prompts import PromptRow, cleaned
from vqa_demo.model.vilt import joint_forward
from vqa_demo.variant import Variant

BASELINE_NAME = "vilt-answer-classifier"


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

    name = "vilt_answer_classifier"

    def prompt_rows(self, question, options, style="default", answer_index=None) -> list[PromptRow]:
        question, _ = cleaned(question, options)
        return [PromptRow("", question, "")]

    def answer_logits(self, ctx, questions: list[str], features: torch.Tensor):
        """``(logits float[B, V], encoded rows)`` of the classifier for B plain questions."""
        rows = [self.prompt_rows(q, [])[0] for q in questions]
        encoded = ctx.encoder.encode(rows, with_suffix=False).to(features.device)
        pooled = joint_forward(ctx.core, encoded, features).pooler_output
        return ctx.core.classifier(pooled).float(), encoded

    def scores(self, ctx, questions, options, features) -> HeadScores:
        logits, encoded = self.answer_logits(ctx, questions, features)
        label2id = ctx.core.config.label2id
        scores = np.full((len(options), max(len(o) for o in options)), -np.inf, dtype=np.float32)
        notes = []
        for b, opts in enumerate(options):
            known = [answer_key(option) in label2id for option in opts]
            for k, option in enumerate(opts):
                if known[k]:
                    scores[b, k] = float(logits[b, label2id[answer_key(option)]])
            notes.append(vocabulary_note(opts, known))
        return HeadScores(scores, list(encoded.truncated), notes=notes)

    def loss_terms(self, ctx, questions, options, answers, features, label_smoothing=0.0):
        raise ValueError(
            "the ViLT answer-classifier baseline is not trained: train a multi_class or swag variant"
        )

    def target_score(self, ctx, hidden, attention_mask, labels, targets, num_options):
        # The score is a vocabulary logit picked by the option's text, which the attribution's row
        # tensors do not carry.
        raise ValueError(
            "attributions of the ViLT answer-classifier baseline are not available: "
            "explain a multi_class or swag variant"
        )


VILT_CLASSIFIER = ViltClassifierStrategy()


class BaselineVariant(Variant):
    """A variant whose strategy is fixed by the family rather than by its head config; no adapter,
    no head module: the base weights answer. Its config carries only the prompt settings."""

    fixed_strategy: HeadStrategy = VILT_CLASSIFIER

    @property
    def strategy(self) -> HeadStrategy:
        return self.fixed_strategy

    def incompatibility(self, num_options: int) -> str | None:
        return None


def baseline_variant(source: str) -> BaselineVariant:
    """The zero-training ViLT classifier variant for the base ``source``."""
    config = RunConfig(head=HeadConfig(num_options=None))
    config.backbone.source = source
    return BaselineVariant(BASELINE_NAME, config)
