"""Open-ended answer metrics for COND_GEN's generated text against the gold option text.

Conventions follow SQuAD and VQA evaluation: answers are compared after
:func:`normalize_answer`; scores are fractions in [0, 1], per pair and as means. These judge
the generation itself, before cosine matching maps it to an option.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles a/an/the, collapse spaces."""
    text = text.lower()
    # Punctuation goes before articles, as in the SQuAD script, so scores stay comparable.
    text = "".join(char for char in text if char not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(pred: str, gold: str) -> float:
    """1.0 if the normalised answers are identical, else 0.0."""
    return float(normalize_answer(pred) == normalize_answer(gold))


def first_word_match(pred: str, gold: str) -> float:
    """1.0 if the first normalised words agree (for one-word answers), else 0.0.

    Two answers that normalise to nothing match; one empty answer does not.
    """
    pred_words = normalize_answer(pred).split()
    gold_words = normalize_answer(gold).split()
    if not pred_words or not gold_words:
        return float(pred_words == gold_words)
    return float(pred_words[0] == gold_words[0])


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 on normalised words, counting repeated words at most as often as both have them.

    Both empty gives 1.0, one empty gives 0.0.
    """
    pred_tokens = normalize_answer(pred).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> tuple[Any, Any]:
    """The ROUGE-L scorer and its tokenizer, built once on first use."""
    from rouge_score import rouge_scorer, tokenizers

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer), tokenizer


def rouge_l(pred: str, gold: str) -> float:
    """ROUGE-L F-measure from the ``rouge_score`` package (longest common subsequence of words).

    ``rouge_score`` lowercases and keeps only letters and digits; no stemming. Both answers
    without any word give 1.0 (``rouge_score`` alone would say 0.0), matching :func:`token_f1`.
    """
    scorer, tokenizer = _rouge()
    if not tokenizer.tokenize(pred) and not tokenizer.tokenize(gold):
        return 1.0
    return float(scorer.score(gold, pred)["rougeL"].fmeasure)


def text_metric_summary(
    preds: Sequence[str], golds: Sequence[str], cosine: Sequence[float] | None = None
) -> dict[str, float | int]:
    """Mean of each text metric over paired generations and gold option texts.

    Args:
        preds: N generated answers.
        golds: N gold option texts.
        cosine: optional ``float[N]`` embedding cosine between each generation and its gold.

    Returns:
        ``{"n", "exact_match", "first_word_match", "token_f1", "rouge_l"}`` and ``"cosine"``
        when given; each a mean in [0, 1] (cosine in [-1, 1]).
    """
    if len(preds) != len(golds):
        raise ValueError(f"preds and golds must pair up, got {len(preds)} and {len(golds)}")
    if not preds:
        raise ValueError("preds is empty: pass at least one generation")
    summary: dict[str, float | int] = {"n": len(preds)}
    for name, metric in (
        ("exact_match", exact_match),
        ("first_word_match", first_word_match),
        ("token_f1", token_f1),
        ("rouge_l", rouge_l),
    ):
        summary[name] = float(np.mean([metric(pred, gold) for pred, gold in zip(preds, golds)]))
    if cosine is not None:
        if len(cosine) != len(preds):
            raise ValueError(f"cosine must have one value per generation, got {len(cosine)} for {len(preds)}")
        summary["cosine"] = float(np.mean(cosine))
    return summary


def best_option_margin(cosine_scores: Any) -> np.ndarray:
    """Best minus second-best option similarity for each generation.

    Args:
        cosine_scores: ``float[N, K]`` cosine between each generation and each option, K >= 2.

    Returns:
        ``float[N]`` margins, >= 0; 0 when the two closest options tie.
    """
    scores = np.asarray(cosine_scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0:
        raise ValueError(f"cosine_scores must be a non-empty float[N, K], got shape {scores.shape}")
    if scores.shape[1] < 2:
        raise ValueError(f"a margin needs at least 2 options, got K={scores.shape[1]}")
    top_two = np.sort(scores, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def no_match_rate(
    cosine_scores: Any, margin_threshold: float = 0.05, min_similarity: float | None = None
) -> float:
    """Fraction of generations that match no option clearly.

    Cosine matching always returns some option; this measures how often that choice is close
    to a coin toss. A generation counts as unmatched when its best cosine exceeds the second
    best by less than ``margin_threshold`` (strictly), or, if ``min_similarity`` is given,
    when its best cosine is below ``min_similarity`` (it resembles none of the options).

    Args:
        cosine_scores: ``float[N, K]`` cosine between each generation and each option.
        margin_threshold: cosine units.
        min_similarity: optional floor on the best cosine, in cosine units.

    Returns:
        Fraction in [0, 1].
    """
    margins = best_option_margin(cosine_scores)
    unmatched = margins < margin_threshold
    if min_similarity is not None:
        unmatched |= np.asarray(cosine_scores, dtype=np.float64).max(axis=1) < min_similarity
    return float(unmatched.mean())
