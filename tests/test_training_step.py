"""One LoRA step changes every trainable parameter (LoRA + head) and no frozen one."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import OPTIONS, QUESTIONS, color_image
from vqa_demo.config import VARIANTS
from vqa_demo.model.backbone import add_lora, build_tiny_backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import build_head, variant_loss
from vqa_demo.testing import tiny_run_config


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_step_changes_exactly_the_trainable_parameters(variant):
    backbone = build_tiny_backbone(seed=3)
    config = tiny_run_config(variant)
    torch.manual_seed(0)
    model = add_lora(backbone, config.lora)
    head = build_head(config.head, backbone.hidden_size)
    params = dict(model.named_parameters())
    if head is not None:
        params.update({f"head.{k}": v for k, v in head.named_parameters()})
    trainable = {k for k, v in params.items() if v.requires_grad}
    assert trainable, "nothing to train"
    assert all("lora_" in k or k.startswith("head.") for k in trainable)
    assert not any("vision_tower" in k or "multi_modal_projector" in k for k in trainable)
    before = {k: v.detach().clone() for k, v in params.items()}

    encoder = RowEncoder(backbone.tokenizer, backbone.processor.image_token_id, backbone.image_seq_length)
    images = [color_image((200, 10, 10)), color_image((10, 10, 200))]
    pixels = backbone.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    optimizer = torch.optim.AdamW([params[k] for k in sorted(trainable)], lr=1e-2)
    model.train()
    features = image_features(backbone.core, pixels)
    ctx = HeadContext(backbone.core, encoder, config.head, module=head)
    loss = variant_loss(ctx, QUESTIONS[:2], OPTIONS[:2], [0, 3], features)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()

    changed = {k for k, v in params.items() if not torch.equal(v.detach(), before[k])}
    assert changed == trainable, f"unchanged trainable: {sorted(trainable - changed)[:5]}"


def test_vision_lora_trains_the_tower_and_gets_its_own_features(images):
    from vqa_demo.predictor import Predictor, Variant
    from vqa_demo.testing import TrigramMatcher, make_tiny_predictor

    predictor = make_tiny_predictor(variants=("swag-attentive",))
    config = tiny_run_config("multi_class-attentive")
    config.lora.vision = True
    torch.manual_seed(7)
    add_lora(predictor.backbone, config.lora, adapter_name="vision_variant")
    names = [n for n, p in predictor.backbone.model.named_parameters() if "vision_variant" in n]
    assert any("vision_tower" in n for n in names) and any("multi_modal_projector" in n for n in names)
    head = build_head(config.head, predictor.backbone.hidden_size).eval()
    variants = [*predictor.variants.values(), Variant("vision-lora", config, head, "vision_variant")]
    both = Predictor(predictor.backbone, variants, matcher=TrigramMatcher())
    calls = []
    hook = predictor.backbone.core.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        together = both.predict(images[0], QUESTIONS[0], OPTIONS[0])
    finally:
        hook.remove()
    assert len(calls) == 2, "once shared, once for the vision-adapted variant"
    alone = predictor.predict(images[0], QUESTIONS[0], OPTIONS[0])
    # The vision-adapted variant running first or last must not change the shared features.
    assert (together["swag-attentive"].option_scores == alone["swag-attentive"].option_scores).all()
