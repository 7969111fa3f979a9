"""Pooling weights split into image grid and text tokens wherever a family puts its image tokens."""

from __future__ import annotations

import numpy as np
import torch

from vqa_demo.prediction import attention_map

IMG, PAD = 99, 0


class Tokens:
    pad_token_id = PAD

    def decode(self, ids):
        return f"t{ids[0]}"


def weights(n: int) -> torch.Tensor:
    return torch.arange(1, n + 1, dtype=torch.float32) / 100


def test_image_tokens_first_as_paligemma():
    ids = torch.tensor([IMG] * 4 + [5, 6, PAD])
    out = attention_map(ids, weights(7), IMG, Tokens(), "prompt")
    np.testing.assert_allclose(out.image_grid, [[0.01, 0.02], [0.03, 0.04]])
    assert out.tokens == ["t5", "t6"] and np.allclose(out.token_weights, [0.05, 0.06])
    assert np.isclose(out.image_mass, 0.10)


def test_image_tokens_inside_a_chat_template():
    ids = torch.tensor([7, 8, IMG, IMG, IMG, IMG, 9, PAD])
    out = attention_map(ids, weights(8), IMG, Tokens(), "prompt")
    np.testing.assert_allclose(out.image_grid, [[0.03, 0.04], [0.05, 0.06]])
    assert out.tokens == ["t7", "t8", "t9"] and np.isclose(out.image_mass, 0.18)


def test_image_positions_after_the_text_as_vilt():
    ids = torch.tensor([7, 8, PAD])
    out = attention_map(ids, weights(3 + 5), None, Tokens(), "prompt")
    assert out.image_grid.shape == (5,)  # image [CLS] + 4 patches: no square grid
    assert out.tokens == ["t7", "t8"] and np.isclose(out.image_mass, 0.04 + 0.05 + 0.06 + 0.07 + 0.08)


def test_a_row_without_image_tokens_as_blip():
    ids = torch.tensor([7, 8, PAD])
    out = attention_map(ids, weights(3), None, Tokens(), "prompt")
    assert out.image_grid.size == 0 and out.image_mass == 0.0 and out.tokens == ["t7", "t8"]
