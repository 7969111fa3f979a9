"""The project's own paths run on a backbone family: the predictor's one vision pass, explanations,
LoRA targets, a saved base loading back, and ``training.compare --smoke`` followed by the evaluate CLI
and the app's predictor holder on its checkpoints.

The per-family tests (tests/test_family_*.py) and the parametrized ones (test_family_decoders.py,
test_family_compare.py) call these; the processor/plain-forward references are in tests/family_checks.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from operator import attrgetter
from pathlib import Path

import numpy as np
import torch

from tests.family_checks import IMAGES, OPTIONS, QUESTIONS, ChatFamily, tiny
from vqa_demo.config import VARIANTS, BackboneConfig, LoraSettings
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args
from vqa_demo.explain.attribution import attribute
from vqa_demo.model.backbone import Backbone, add_lora, build_tiny_backbone, load_backbone, save_backbone
from vqa_demo.model.cond_gen import CondGenStrategy
from vqa_demo.testing import random_variant_predictor
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.server_settings import AppConfig


def check_vision_runs_once_per_call(spec: ChatFamily) -> int:
    """One ``predict_batch`` of both images with all five variants (random LoRA adapters and heads)
    runs the vision tower exactly once, on both images; returns the images it saw."""
    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=spec.source))
    calls = []
    tower = attrgetter(spec.tower)(predictor.backbone.core)
    record = tower.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append(spec.tower_images(args, kwargs)), with_kwargs=True
    )
    try:
        results = predictor.predict_batch(list(IMAGES), list(QUESTIONS), list(OPTIONS))
    finally:
        record.remove()
    assert calls == [len(IMAGES)], calls
    for result in results:
        assert sorted(result) == sorted(VARIANTS)
        assert all(np.isfinite(p.option_scores).all() for p in result.values())
    return calls[0]


def swag_rows_vs_single_passes(predictor, variant: str, images, questions, options) -> float:
    """Max |diff| of each option's score in a batch of B examples x K rows and that (image, question,
    option) row scored alone through ``predictor`` (beside a filler option)."""
    both = predictor.predict_batch(images, questions, options, [variant])
    worst = 0.0
    for b in range(len(images)):
        for k, option in enumerate(options[b]):
            alone = predictor.predict_batch(
                images[b : b + 1], questions[b : b + 1], [[option, "x"]], [variant]
            )
            worst = max(worst, abs(both[b][variant].option_scores[k] - alone[0][variant].option_scores[0]))
    return worst


def lora_wrapped(backbone: Backbone, vision: bool) -> list[str]:
    """Names of the modules :func:`add_lora` wraps for ``language`` / ``all-linear`` (``vision``)."""
    add_lora(backbone, LoraSettings(r=2, alpha=4, dropout=0.0, vision=vision))
    return [name for name, module in backbone.model.named_modules() if hasattr(module, "lora_A")]


def peft_wrapped(backbone: Backbone, scope: str) -> list[str]:
    """Names of the modules peft itself wraps given the family's ``lora_targets(scope)``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=2, lora_alpha=4, **backbone.family.lora_targets(scope))
    model = get_peft_model(backbone.core, config)
    return [name for name, module in model.named_modules() if hasattr(module, "lora_A")]


def check_lora_targets(spec: ChatFamily, layers: int = 2) -> None:
    """``language``: the text decoder's 7 linears per layer only; ``all-linear``: also the vision tower
    and projector, never the LM head; peft given the family's targets wraps the same modules."""
    language = lora_wrapped(tiny(spec.source), vision=False)
    assert len(language) == 7 * layers and all(spec.language_layers in n for n in language)
    assert language == peft_wrapped(tiny(spec.source), "language")
    everything = lora_wrapped(tiny(spec.source), vision=True)
    assert set(language) < set(everything) and not any(n.endswith("lm_head") for n in everything)
    assert all(any(part in n for n in everything) for part in spec.vision_parts), spec.vision_parts
    assert everything == peft_wrapped(tiny(spec.source), "all-linear")
    check_all_linear_trains_the_tower(spec.source, spec.vision_parts[0])


def check_all_linear_trains_the_tower(source: str, tower: str = ".vision_tower.") -> None:
    """Through :func:`add_lora`: only LoRA weights train, and with ``all-linear`` (``vision=True``)
    the vision tower's LoRA weights (names containing ``tower``) train too; the base stays frozen."""
    for vision in (False, True):
        backbone = tiny(source)
        add_lora(backbone, LoraSettings(vision=vision))
        trained = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
        assert trained and all("lora_" in n for n in trained)
        assert any(tower in n for n in trained) == vision


def check_saved_base_loads_back(spec: ChatFamily, tmp_path) -> float:
    """A tiny base saved with ``save_backbone`` loads back through the family (chosen from the saved
    config's ``model_type``) and scores identically; returns the max |diff| of the prefix logits."""
    built = build_tiny_backbone(source=spec.source)
    loaded = load_backbone(BackboneConfig(source=str(save_backbone(built, tmp_path / "base"))))
    assert type(loaded.family) is type(built.family)
    outputs = []
    for backbone in (built, loaded):
        encoder, family = backbone.row_encoder(), backbone.family
        rows = encoder.encode([CondGenStrategy().prompt_rows(QUESTIONS[0], OPTIONS[0])[0]], with_suffix=False)
        with torch.no_grad():
            features = family.image_features(backbone.core, backbone.pixel_values(IMAGES[:1]))
            hidden = family.language_forward(backbone.core, rows, features).last_hidden_state
            outputs.append(family.lm_logits(backbone.core, hidden))
    return float((outputs[0] - outputs[1]).abs().max())


def check_attribution_scores_equal_predictions(spec: ChatFamily) -> float:
    """The attribution path (input embeddings + image features, :meth:`embeds_forward`) scores each
    example's choice as the predictor does: saliency for every variant, integrated gradients for
    COND_GEN (log-likelihood) and SWAG (logit). Returns the max |diff|."""
    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=spec.source))
    images, questions, options = list(IMAGES), list(QUESTIONS), [list(o) for o in OPTIONS]
    predictions = predictor.predict_batch(images, questions, options)
    runs = [(variant, {"method": "saliency"}) for variant in predictor.variants]
    runs += [(variant, {"n_steps": 2}) for variant in ("cond_gen", "swag-attentive")]  # integrated gradients
    worst = 0.0
    for variant, how in runs:
        for attribution, prediction in zip(
            attribute(predictor, images, questions, options, variant, **how), predictions
        ):
            chosen = prediction[variant]
            # Every head attributes the score that made its choice (COND_GEN: its decision rule's).
            scores = chosen.option_scores
            worst = max(worst, abs(attribution.score - float(scores[chosen.choice])))
    return worst


def check_explanations_find_the_image_and_the_answer(spec: ChatFamily) -> None:
    """Where a chat template puts the image tokens mid-row: the attention grid holds the weights of exactly
    those positions, and a COND_GEN attribution's answer tokens are the chosen option + the end token."""
    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=spec.source))
    n_image = predictor.backbone.image_seq_length
    image, question, options = IMAGES[:1], QUESTIONS[:1], OPTIONS[:1]
    (result,) = predictor.predict_batch(image, question, options, ["swag-attentive"])
    attention = result["swag-attentive"].attention
    assert attention.image_grid.size == n_image
    assert np.isclose(attention.image_mass + attention.token_weights.sum(), 1)
    assert not any("<image>" in t or "image_pad" in t or "image_soft" in t for t in attention.tokens)
    (attribution,) = attribute(
        predictor, image, question, options, "cond_gen", targets=[2], method="saliency"
    )
    answer = "".join(attribution.tokens[attribution.suffix_start :])
    assert attribution.suffix_start is not None and OPTIONS[0][2] in answer, answer


def run_compare_smoke(source: str, out: Path) -> dict:
    """``python -m training.compare --base <source> --smoke --out <out>`` as a user runs it (this
    checkout's code, one torch thread); returns its comparison.json."""
    command = [sys.executable, "-m", "training.compare", "--base", source, "--smoke", "--out", str(out)]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((Path(out) / "comparison.json").read_text())


def trained_variants(comparison: dict) -> list[str]:
    """The comparison's variants that were trained (have a checkpoint), not zero-training baselines."""
    return [name for name, entry in comparison["variants"].items() if entry["checkpoint"]]


def check_evaluate_cli_and_app_on_a_comparison(compare_out: Path, comparison: dict, tmp: Path) -> None:
    """The evaluate CLI on a ``training.compare`` run's checkpoints and smoke validation split gives the
    comparison's accuracies, and the app's holder loads the same checkpoints and answers with each."""
    names = trained_variants(comparison)
    checkpoints = [compare_out / comparison["variants"][name]["checkpoint"] for name in names]
    data = compare_out / "smoke-data" / "validation"
    args = ["--checkpoints", *map(str, checkpoints), "--data", str(data), "--out", str(tmp / "eval")]
    metrics = evaluate_main(evaluate_args(args))
    assert sorted(metrics["variants"]) == sorted(names)
    for name in names:
        assert metrics["variants"][name]["accuracy"] == comparison["variants"][name]["accuracy"], name
    holder = PredictorHolder.from_config(AppConfig(checkpoints=checkpoints))
    (answer,) = holder.get().predict_batch(IMAGES[:1], QUESTIONS[:1], OPTIONS[:1], holder.names)
    assert sorted(answer) == sorted(names)
    assert all(0 <= prediction.choice < len(OPTIONS[0]) for prediction in answer.values())
