"""Cosine option matching with the real offline all-MiniLM-L6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from vqa_demo.model.matching import SentenceMatcher


@pytest.fixture(scope="module")
def matcher():
    return SentenceMatcher()


def test_nearest_option_wins_and_padding_is_minus_inf(matcher):
    scores = matcher.cosine_scores(
        ["a red circle", "ten past three"],
        [["blue square", "red circle", "green star"], ["3:10", "ten past three"]],
    )
    assert scores.shape == (2, 3)
    assert int(np.argmax(scores[0])) == 1 and int(np.argmax(scores[1, :2])) == 1
    assert scores[1, 2] == -np.inf
    assert np.all(scores[np.isfinite(scores)] <= 1.0 + 1e-5)


def test_embeddings_are_unit_norm(matcher):
    vectors = matcher.embed(["hello", "שלום 👋"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_each_text_is_embedded_once_and_cached(matcher):
    fresh = SentenceMatcher(cache_size=3)
    fresh._model = matcher.model  # share the loaded sentence model
    seen: list[list[str]] = []
    encode = fresh._model.encode

    class Spy:
        def encode(self, texts, **kwargs):
            seen.append(list(texts))
            return encode(texts, **kwargs)

    fresh._model = Spy()
    first = fresh.embed(["red", "blue", "red"])
    second = fresh.embed(["blue", "green"])
    assert seen == [["red", "blue"], ["green"]]
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(first[1], second[0], atol=1e-6)
    np.testing.assert_allclose(
        second, matcher.model.encode(["blue", "green"], normalize_embeddings=True), atol=1e-5
    )
    fresh.embed(["yellow"])  # cache_size 3: "red", used least recently, goes
    fresh.embed(["red", "yellow"])
    assert seen[-1] == ["red"]
    fresh.clear_cache()
    fresh.embed(["green"])
    assert seen[-1] == ["green"]
