"""Pooling under padding, head shapes, and the prefix-LM attention pattern."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import color_image
from vqa_demo.model.backbone import build_tiny_backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.forward import image_features, prefix_forward
from vqa_demo.model.heads import AttentivePooling, LastTokenPooling, MultiClassHead, SwagHead, last_real_index
from vqa_demo.model.prompts import build_rows


def padded(hidden_rows, side):
    """Stack rows of different lengths with left or right padding (pads are random junk)."""
    length = max(h.shape[0] for h in hidden_rows)
    out = torch.randn(len(hidden_rows), length, hidden_rows[0].shape[1])
    mask = torch.zeros(len(hidden_rows), length, dtype=torch.bool)
    for i, h in enumerate(hidden_rows):
        sl = slice(0, len(h)) if side == "right" else slice(length - len(h), length)
        out[i, sl], mask[i, sl] = h, True
    return out, mask


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("pooling_cls", [LastTokenPooling, AttentivePooling])
def test_pooling_ignores_padding_on_either_side(side, pooling_cls):
    torch.manual_seed(0)
    pooling = pooling_cls(8)
    for p in pooling.parameters():
        torch.nn.init.normal_(p)
    rows = [torch.randn(n, 8) for n in (3, 7, 5)]
    batch, mask = padded(rows, side)
    pooled, weights = pooling(batch, mask)
    for i, row in enumerate(rows):
        single, _ = pooling(row[None], torch.ones(1, len(row), dtype=torch.bool))
        torch.testing.assert_close(pooled[i], single[0], atol=1e-5, rtol=0)
    if weights is not None:
        assert torch.all(weights[~mask] == 0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3))


def test_last_real_index_left_and_right():
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    assert last_real_index(mask).tolist() == [1, 3, 3]


def test_head_shapes_and_swag_reshape():
    hidden, mask = torch.randn(6, 5, 8), torch.ones(6, 5, dtype=torch.bool)
    mc = MultiClassHead(8, "attentive", num_options=3)
    scores, weights = mc(hidden[:2], mask[:2], 3)
    assert scores.shape == (2, 3) and weights.shape == (2, 5)
    with pytest.raises(ValueError, match="trained for 3 options"):
        mc(hidden[:2], mask[:2], 4)
    swag = SwagHead(8, "last_token")
    scores, weights = swag(hidden, mask, 3)
    assert scores.shape == (2, 3) and weights is None
    # Row b*K + k is option k of example b, as in BertForMultipleChoice.
    row_logits = swag.scorer(hidden[:, -1]).squeeze(-1)
    torch.testing.assert_close(scores[1, 2], row_logits[5])


def test_prefix_is_bidirectional_and_suffix_causal():
    backbone = build_tiny_backbone(seed=1)
    core = backbone.core
    encoder = RowEncoder(backbone.tokenizer, backbone.processor.image_token_id, backbone.image_seq_length)
    features = image_features(
        core,
        backbone.processor.image_processor([color_image((9, 99, 199))], return_tensors="pt")["pixel_values"],
    )

    def hidden_for(question, answer_index=0):
        rows = encoder.encode(build_rows("cond_gen", question, ["blue", "purple"], answer_index=answer_index))
        with torch.no_grad():
            return prefix_forward(core, rows, features).last_hidden_state[0], rows

    base, rows = hidden_for("Which colour is the big square")
    changed_late, _ = hidden_for("Which colour is the big circle")
    first_text = backbone.image_seq_length + 1  # the first question token, right after <bos>
    # A later prefix token changes an earlier prefix token's state: bidirectional prefix attention.
    assert not torch.allclose(base[first_text], changed_late[first_text], atol=1e-6)
    # The image tokens see the text too (image + prefix form one bidirectional block).
    assert not torch.allclose(base[0], changed_late[0], atol=1e-6)
    # A different suffix leaves every prefix state unchanged: the suffix is causal.
    changed_suffix, _ = hidden_for("Which colour is the big square", answer_index=1)
    prefix_len = int(rows.prefix_lengths[0])
    torch.testing.assert_close(base[:prefix_len], changed_suffix[:prefix_len], atol=1e-6, rtol=0)
