"""Cosine option matching with the real offline all-MiniLM-L6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from vqa_demo.matching import SentenceMatcher


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
