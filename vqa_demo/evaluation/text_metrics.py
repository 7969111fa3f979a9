"""Open-ended answer metrics for COND_GEN's generated text against the gold option text.

Conventions follow SQuAD and VQA evaluation: answers are compared after
:func:`normalize_answer`; scores are fractions in [0, 1], per pair and as means. These judge
the generation itself, before cosine matching maps it to an option.

For one-word open answers (:func:`open_answer_metrics`, and the distractor mining of
``training.mc_from_open``) :func:`normalize_vqa_answer` also folds number words into digits
("Two" = "2") and keeps decimal points, as VQA's answer normalisation does.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from vqa_demo.evaluation.metrics import bootstrap_ci

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d\d\d)")
# fmt: off
_NUMBER_NAMES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]
_TENS = ["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
# fmt: on
NUMBER_WORDS = {word: str(value) for value, word in enumerate(_NUMBER_NAMES)} | {
    word: str(10 * tens) for tens, word in enumerate(_TENS, 3)
}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles a/an/the, collapse spaces."""
    text = text.lower()
    # Punctuation goes before articles, as in the SQuAD script, so scores stay comparable.
    text = "".join(char for char in text if char not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def normalize_vqa_answer(text: str) -> str:
    """VQA-style normalisation of a short answer, used to compare and de-duplicate open answers.

    NFKC (full-width letters fold), lowercase, thousands commas dropped ("1,000" = "1000"), other
    punctuation turned into spaces except a decimal point between digits ("2.5" stays, "1/2" is
    "1 2", not "12"), articles a/an/the dropped, number words "zero" to "twenty" and the tens up to
    "ninety" replaced by digits, invisible format characters dropped, spaces collapsed.
    """
    text = _THOUSANDS_COMMA.sub("", unicodedata.normalize("NFKC", text).lower())
    kept = []
    for position, char in enumerate(text):
        decimal_point = char == "." and 0 < position < len(text) - 1 and text[position - 1].isdigit()
        if decimal_point and text[position + 1].isdigit():
            kept.append(char)
        elif char in _PUNCTUATION or unicodedata.category(char).startswith("P"):
            kept.append(" ")
        elif unicodedata.category(char) == "Cf":  # invisible format characters (zero-width space)
            continue
        else:
            kept.append(char)
    words = _ARTICLES.sub(" ", "".join(kept)).split()
    return " ".join(NUMBER_WORDS.get(word, word) for word in words)


Normalizer = Callable[[str], str]


def exact_match(pred: str, gold: str, normalize: Normalizer = normalize_answer) -> float:
    """1.0 if the normalised answers are identical, else 0.0."""
    return float(normalize(pred) == normalize(gold))


def first_word_match(pred: str, gold: str) -> float:
    """1.0 if the first normalised words agree (for one-word answers), else 0.0.

    Two answers that normalise to nothing match; one empty answer does not.
    """
    pred_words = normalize_answer(pred).split()
    gold_words = normalize_answer(gold).split()
    if not pred_words or not gold_words:
        return float(pred_words == gold_words)
    return float(pred_words[0] == gold_words[0])


def token_f1(pred: str, gold: str, normalize: Normalizer = normalize_answer) -> float:
    """SQuAD token F1 on normalised words, counting repeated words at most as often as both have them.

    Both empty gives 1.0, one empty gives 0.0.
    """
    pred_tokens = normalize(pred).split()
    gold_tokens = normalize(gold).split()
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


OPEN_ANSWER_METRICS = ("exact_match", "token_f1", "rouge_l", "cosine")


def open_answer_metrics(
    generated: Sequence[str],
    golds: Sequence[str],
    cosine: Sequence[float] | None = None,
    matcher: Any = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Exact match, token F1, ROUGE-L and embedding cosine of generations against open answers.

    Exact match and token F1 compare :func:`normalize_vqa_answer` forms ("Two" = "2"), ROUGE-L is
    :func:`rouge_l` on those forms; cosine is between the raw texts' sentence embeddings.

    Args:
        generated: N generated answers.
        golds: N gold open answers.
        cosine: optional ``float[N]`` precomputed cosine of each generation with its gold (the
            evaluation records hold it); otherwise ``matcher`` (a
            :class:`~vqa_demo.model.matching.SentenceMatcher`, default all-MiniLM-L6-v2) embeds both.
        n_resamples, seed: of the percentile bootstrap (:func:`vqa_demo.evaluation.metrics.bootstrap_ci`).

    Returns:
        ``{"n": N, name: {"mean", "low", "high", "n"}}`` for each name in
        :data:`OPEN_ANSWER_METRICS`, each with its 95% bootstrap interval; fractions in [0, 1]
        (cosine in [-1, 1]).
    """
    if len(generated) != len(golds):
        raise ValueError(f"generated and golds must pair up, got {len(generated)} and {len(golds)}")
    if not generated:
        raise ValueError("generated is empty: pass at least one generation")
    if cosine is None:
        cosine = gold_cosine(generated, golds, matcher)
    if len(cosine) != len(generated):
        raise ValueError(f"cosine must have one value per generation, got {len(cosine)} for {len(generated)}")
    normal_generated = [normalize_vqa_answer(text) for text in generated]
    normal_golds = [normalize_vqa_answer(text) for text in golds]
    per_item = {
        "exact_match": [exact_match(p, g, normalize_vqa_answer) for p, g in zip(generated, golds)],
        "token_f1": [token_f1(p, g, normalize_vqa_answer) for p, g in zip(generated, golds)],
        "rouge_l": [rouge_l(p, g) for p, g in zip(normal_generated, normal_golds)],
        "cosine": [float(c) for c in cosine],
    }
    summary: dict[str, Any] = {"n": len(generated)}
    for name in OPEN_ANSWER_METRICS:
        summary[name] = bootstrap_ci(per_item[name], n_resamples=n_resamples, seed=seed)
    return summary


def gold_cosine(generated: Sequence[str], golds: Sequence[str], matcher: Any = None) -> np.ndarray:
    """``float[N]`` cosine between each generation's and its gold's sentence embedding."""
    if matcher is None:
        from vqa_demo.model.matching import SentenceMatcher

        matcher = SentenceMatcher()
    vectors = matcher.embed(list(generated) + list(golds))
    return np.sum(vectors[: len(generated)] * vectors[len(generated) :], axis=1)
