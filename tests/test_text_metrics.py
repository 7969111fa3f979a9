"""Text metrics for generated answers against values computed by hand."""

import numpy as np
import pytest

from vqa_demo.evaluation.text_metrics import (
    OPEN_ANSWER_METRICS,
    best_option_margin,
    exact_match,
    first_word_match,
    gold_cosine,
    no_match_rate,
    normalize_answer,
    normalize_vqa_answer,
    open_answer_metrics,
    rouge_l,
    text_metric_summary,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Red Circle.", "red circle"),
        ("  an   apple,  a pear!  ", "apple pear"),
        ("Theory of an ant", "theory of ant"),  # 'the' inside a word stays
        ("", ""),
        ("...", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_after_normalisation():
    assert exact_match("The red circle!", "red  circle") == 1.0
    assert exact_match("red circles", "red circle") == 0.0
    assert exact_match("", "the") == 1.0  # both normalise to ""


def test_first_word_match():
    # "Blue, I think" -> "blue i think"; "blue" -> first words equal
    assert first_word_match("Blue, I think", "blue") == 1.0
    assert first_word_match("the blue one", "Blue") == 1.0  # article dropped first
    assert first_word_match("green", "blue") == 0.0
    assert first_word_match("", "blue") == 0.0
    assert first_word_match("a", "") == 1.0


def test_token_f1_by_hand():
    # "the red circle" -> [red, circle]; "red square" -> [red, square]; overlap {red} = 1
    # precision 1/2, recall 1/2, F1 = 2 * 1/4 / 1 = 0.5
    assert token_f1("the red circle", "red square") == 0.5
    # repeated words count at most as often as in both: [red, red, red] vs [red, circle]
    # overlap min(3, 1) = 1; P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4
    assert token_f1("red red red", "red circle") == pytest.approx(0.4)
    assert token_f1("blue", "red") == 0.0


def test_token_f1_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a") == 1.0  # both empty after normalisation
    assert token_f1("", "red") == 0.0
    assert token_f1("red", "") == 0.0


def test_rouge_l_by_hand():
    # pred [a, red, circle, on, the, left] (6 tokens), gold [the, red, circle] (3 tokens)
    # LCS = "red circle" = 2; P = 2/6, R = 2/3; F = 2PR/(P+R) = 2 * (2/9) / 1 = 4/9
    assert rouge_l("a red circle on the left", "the red circle") == pytest.approx(4 / 9)
    # pred [blue, square, left, of, red, circle], gold [red, square, left, of, blue, circle]
    # LCS = "square left of circle" = 4; P = R = 4/6; F = 2/3
    assert rouge_l("blue square left of red circle", "red square left of blue circle") == pytest.approx(2 / 3)
    # rouge_score lowercases and splits on punctuation: identical words -> 1
    assert rouge_l("Red-circle!", "red circle") == pytest.approx(1.0)


def test_rouge_l_empty_answers():
    assert rouge_l("", "") == 1.0
    assert rouge_l("", "red") == 0.0
    assert rouge_l("red", "...") == 0.0


def test_text_metric_summary_means():
    # pair 1: exact 1, first word 1, F1 1, ROUGE-L 1
    # pair 2: "red square" vs "the red circle": exact 0, first word (red = red) 1,
    #         F1 0.5, ROUGE-L: [red, square] vs [the, red, circle], LCS 1, P 1/2, R 1/3, F = 0.4
    summary = text_metric_summary(["Red circle", "red square"], ["red circle", "the red circle"], [0.9, 0.5])
    assert summary["n"] == 2
    assert summary["exact_match"] == 0.5
    assert summary["first_word_match"] == 1.0
    assert summary["token_f1"] == pytest.approx(0.75)
    assert summary["rouge_l"] == pytest.approx(0.7)
    assert summary["cosine"] == pytest.approx(0.7)
    assert "cosine" not in text_metric_summary(["a"], ["a"])


def test_text_metric_summary_single_pair_and_errors():
    assert text_metric_summary(["blue"], ["red"])["token_f1"] == 0.0
    with pytest.raises(ValueError, match="empty"):
        text_metric_summary([], [])
    with pytest.raises(ValueError, match="pair up"):
        text_metric_summary(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="one value per generation"):
        text_metric_summary(["a"], ["a"], cosine=[0.1, 0.2])


def test_no_match_rate_by_hand():
    cosine = np.array(
        [
            [0.90, 0.20, 0.10],  # margin 0.70: clear match
            [0.52, 0.50, 0.10],  # margin 0.02 < 0.05: no clear match
            [0.30, 0.10, 0.00],  # margin 0.20: clear, but best only 0.30
            [0.40, 0.40, 0.40],  # margin 0: tie
        ]
    )
    assert best_option_margin(cosine) == pytest.approx([0.70, 0.02, 0.20, 0.0])
    # margins below 0.05: rows 1 and 3 -> 2/4
    assert no_match_rate(cosine) == 0.5
    # with a floor of 0.35 on the best cosine, row 2 is unmatched too -> 3/4
    assert no_match_rate(cosine, min_similarity=0.35) == 0.75
    # a larger threshold: margins below 0.25 are rows 1, 2, 3 -> 3/4
    assert no_match_rate(cosine, margin_threshold=0.25) == 0.75


def test_no_match_rate_single_row_and_errors():
    assert no_match_rate([[0.8, 0.1]]) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        no_match_rate(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="at least 2 options"):
        no_match_rate([[0.5]])


# ---------------------------------------------------------------- open answers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Two", "2"),
        ("two apples", "2 apples"),
        ("the cat", "cat"),
        ("A Cat!", "cat"),
        ("1,000", "1000"),
        ("2.5", "2.5"),  # the decimal point stays: "2.5" is not "25"
        ("3.", "3"),
        ("1/2", "1 2"),  # punctuation becomes a space: "1/2" is not "12"
        ("Forty", "40"),
        ("Ｒｅｄ", "red"),  # full-width letters fold (NFKC)
        ("red\u200b", "red"),  # zero-width space
        ("it’s", "it s"),  # Unicode punctuation too
        ("someone", "someone"),  # number words only as whole words
        ("", ""),
    ],
)
def test_normalize_vqa_answer(text, expected):
    assert normalize_vqa_answer(text) == expected


def test_vqa_normalisation_in_exact_match_and_f1():
    assert exact_match("Two", "2", normalize_vqa_answer) == 1.0
    assert exact_match("Two", "2") == 0.0  # the SQuAD default keeps words
    assert exact_match("the cat", "Cat.", normalize_vqa_answer) == 1.0
    # [2, cats] vs [2]: P 1/2, R 1, F1 2/3
    assert token_f1("two cats", "2", normalize_vqa_answer) == pytest.approx(2 / 3)


def test_open_answer_metrics_by_hand():
    generated = ["Two", "a red car", "blue"]
    golds = ["2", "red", "green"]
    result = open_answer_metrics(generated, golds, cosine=[0.9, 0.5, 0.1], n_resamples=500)
    assert result["n"] == 3
    # EM [1, 0, 0]; F1: [2, ] vs [2] = 1, [red, car] vs [red] = 2/3, 0; ROUGE-L the same LCS counts
    assert result["exact_match"]["mean"] == pytest.approx(1 / 3)
    assert result["token_f1"]["mean"] == pytest.approx(5 / 9)
    assert result["rouge_l"]["mean"] == pytest.approx(5 / 9)
    assert result["cosine"]["mean"] == pytest.approx(0.5)
    for name in OPEN_ANSWER_METRICS:
        interval = result[name]
        assert interval["n"] == 3 and interval["low"] <= interval["mean"] <= interval["high"]
    # resample means of EM [1, 0, 0] are 0, 1/3, 2/3, 1 with chances 8/27, 12/27, 6/27, 1/27: the 2.5%
    # quantile is 0, the 97.5% lies above 2/3 (only 96.3% of means are <= 2/3)
    assert result["exact_match"]["low"] == 0.0 and 2 / 3 < result["exact_match"]["high"] <= 1.0


def test_open_answer_metrics_interval_collapses_when_every_item_agrees():
    result = open_answer_metrics(["cat", "2"], ["Cat", "two"], cosine=[1.0, 1.0], n_resamples=50)
    for name in OPEN_ANSWER_METRICS:
        assert (result[name]["low"], result[name]["mean"], result[name]["high"]) == (1.0, 1.0, 1.0)


def test_open_answer_metrics_embeds_with_the_given_matcher():
    class FixedMatcher:
        vectors = {"cat": [1.0, 0.0], "dog": [0.6, 0.8], "kitten": [0.8, 0.6]}

        def embed(self, texts):
            return np.array([self.vectors[t] for t in texts])

    result = open_answer_metrics(["cat", "kitten"], ["cat", "dog"], matcher=FixedMatcher(), n_resamples=10)
    # cosines: cat.cat = 1, kitten.dog = 0.48 + 0.48 = 0.96
    assert result["cosine"]["mean"] == pytest.approx((1.0 + 0.96) / 2)


def test_gold_cosine_matches_sentence_transformers_own_similarity():
    from sentence_transformers import util

    from vqa_demo.model.matching import SentenceMatcher

    matcher = SentenceMatcher()
    generated, golds = ["a small red car", "two"], ["red car", "2"]
    ours = gold_cosine(generated, golds, matcher)
    model = matcher.model
    reference = [
        float(util.cos_sim(model.encode(g), model.encode(r))[0, 0]) for g, r in zip(generated, golds)
    ]
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_open_answer_metrics_refuses_unpaired_input():
    with pytest.raises(ValueError, match="pair up"):
        open_answer_metrics(["a"], ["a", "b"], cosine=[1.0])
    with pytest.raises(ValueError, match="one value per generation"):
        open_answer_metrics(["a"], ["a"], cosine=[1.0, 0.5])
    with pytest.raises(ValueError, match="empty"):
        open_answer_metrics([], [], cosine=[])


def cond_gen_record(gold, generated, cosine, metadata):
    return {
        "gold": gold,
        "options": ["2", "3", "4"],
        "metadata": metadata,
        "variants": {
            "cond_gen": {
                "choice": gold,
                "confidence": 0.5,
                "probabilities": [0.5, 0.25, 0.25],
                "truncated": False,
                "generated_text": generated,
                "cosine": cosine,
                "loglik_mean": [0.0, 0.0, 0.0],
                "loglik_sum": [0.0, 0.0, 0.0],
            }
        },
    }


def test_evaluation_reports_open_answer_metrics_only_for_converted_splits():
    from vqa_demo.evaluation.runner import variant_metrics
    from vqa_demo.model.head_traits import HeadTraits

    cond_gen = HeadTraits(generates_text=True)
    converted = [
        cond_gen_record(0, "Two", [0.9, 0.1, 0.2], {"answer_type": "number"}),
        cond_gen_record(2, "five", [0.1, 0.2, 0.3], {"answer_type": "number"}),
    ]
    metrics = variant_metrics(converted, "cond_gen", cond_gen)["open_answer_metrics"]
    assert metrics["exact_match"]["mean"] == 0.5  # "Two" = gold "2"; "five" != gold "4"
    assert metrics["cosine"]["mean"] == pytest.approx((0.9 + 0.3) / 2)  # each record's cosine at its gold
    plain = [cond_gen_record(0, "Two", [0.9, 0.1, 0.2], {"family": "clock"})]
    assert "open_answer_metrics" not in variant_metrics(plain, "cond_gen", cond_gen)
