"""Checks of a chat-templated decoder family against its own processor and its own plain forward.

Each function takes a ``--base tiny:<family>`` name and returns the measured max |difference| (or
asserts exactness); tests/test_family_<name>.py call them. The references never use the project's
encoder or cache: ids come from ``processor.apply_chat_template(tokenize=True)`` with the image, logits
and hidden states from the model's own forward on those ids and ``pixel_values`` (no cache).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqa_demo.config import VARIANTS
from vqa_demo.evaluation.cli import main as evaluate_main
from vqa_demo.evaluation.cli import parse_args as evaluate_args
from vqa_demo.model.backbone import Backbone, build_tiny_backbone
from vqa_demo.model.cond_gen import greedy_generate, option_loglik, run_prefix
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import STRATEGIES, build_head
from vqa_demo.testing import randomize, tiny_run_config
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.server_settings import AppConfig

TOLERANCE = 1e-5
# Two examples whose prompts differ in length (left/right padding matters) and options of 1-3 tokens.
QUESTIONS = ["What colour is the big square?", "Which shape?"]
OPTIONS = [["red", "light blue", "green", "a yellow one"], ["circle", "square", "big red triangle", "no"]]


def images() -> list[Image.Image]:
    return [Image.new("RGB", (24, 20), (200, 30, 30)), Image.new("RGB", (18, 26), (20, 40, 220))]


def tiny(source: str) -> Backbone:
    return build_tiny_backbone(seed=3, source=source)


def processor_inputs(backbone: Backbone, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
    """The family processor's own inputs for one image + prompt text through its chat template."""
    content = [{"type": "image", "image": image}, {"type": "text", "text": text}]
    messages = [{"role": "user", "content": content}]
    return dict(
        backbone.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
    )


def answer_ids(backbone: Backbone, answer: str) -> list[int]:
    """The answer as the assistant turn continues after the generation prompt, then its end token."""
    family, tokenizer = backbone.family, backbone.tokenizer
    ids = tokenizer(family.answer_lead + answer, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.convert_tokens_to_ids(family.end_token)]


def plain_logits(backbone: Backbone, inputs: dict, extra_ids: list[int]) -> torch.Tensor:
    """``float[T, V]``: the model's own forward (no cache) on the processor's row + ``extra_ids``."""
    ids = torch.cat([inputs["input_ids"], torch.tensor([extra_ids], dtype=torch.long)], dim=1)
    kwargs = {"pixel_values": inputs["pixel_values"]}
    if "token_type_ids" in inputs:
        kwargs["token_type_ids"] = torch.nn.functional.pad(inputs["token_type_ids"], (0, len(extra_ids)))
    with torch.no_grad():
        return backbone.core(input_ids=ids, **kwargs).logits[0].float()


def plain_hidden(backbone: Backbone, inputs: dict) -> torch.Tensor:
    """``float[1, T, D]``: the model's own final-norm hidden states of one row alone."""
    kwargs = {k: v for k, v in inputs.items() if k != "attention_mask"}
    with torch.no_grad():
        return backbone.core.model(**kwargs).last_hidden_state


def check_encoder_matches_processor(source: str) -> None:
    """Every head's prompt rows encode to the processor's ids (and token types) exactly."""
    backbone = tiny(source)
    encoder = backbone.row_encoder()
    for name, strategy in STRATEGIES.items():
        for question, options, image in zip(QUESTIONS, OPTIONS, images()):
            for row in strategy.prompt_rows(question, options):
                encoded = encoder.encode([row], with_suffix=False)
                reference = processor_inputs(backbone, image, row.prefix)
                assert encoded.input_ids[0].tolist() == reference["input_ids"][0].tolist(), name
                if "token_type_ids" in reference:
                    assert encoded.token_type_ids[0].tolist() == reference["token_type_ids"][0].tolist()
    for answer in ("red", "light blue", "a yellow one"):
        assert encoder.suffix_ids(answer) == answer_ids(backbone, answer)


def check_cond_gen_against_plain_forward(source: str, max_new_tokens: int = 4) -> float:
    """Option log-likelihoods from the shared-prefix cache == the plain forward's, per row; greedy
    generation through the cache == argmax decoding with plain forwards. Returns the max |diff|."""
    backbone = tiny(source)
    core, encoder, strategy = backbone.core, backbone.row_encoder(), STRATEGIES["cond_gen"]
    rows = [strategy.prompt_rows(q, o)[0] for q, o in zip(QUESTIONS, OPTIONS)]
    features = image_features(core, backbone.pixel_values(images()))
    state = run_prefix(core, encoder.encode(rows, with_suffix=False), features)
    total, _ = option_loglik(core, encoder, state, OPTIONS)
    generated = greedy_generate(core, state, encoder.eos_id, max_new_tokens)
    worst = 0.0
    for b, (row, image) in enumerate(zip(rows, images())):
        inputs = processor_inputs(backbone, image, row.prefix)
        prompt_length = inputs["input_ids"].shape[1]
        for k, option in enumerate(OPTIONS[b]):
            ids = answer_ids(backbone, option)
            logits = plain_logits(backbone, inputs, ids)[prompt_length - 1 : -1]
            reference = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None]).sum()
            worst = max(worst, abs(float(total[b, k]) - float(reference)))
        assert generated[b] == plain_greedy(backbone, inputs, encoder.eos_id, max_new_tokens)
    return worst


def plain_greedy(backbone: Backbone, inputs: dict, eos_id: int, max_new_tokens: int) -> list[int]:
    """Greedy decoding by repeated full forwards (no cache), stopping at ``eos_id``."""
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        next_id = int(plain_logits(backbone, inputs, tokens)[-1].argmax())
        if next_id == eos_id:
            break
        tokens.append(next_id)
    return tokens


def head_context(backbone: Backbone, variant: str, seed: int = 0) -> HeadContext:
    config = tiny_run_config(variant)
    head = build_head(config.head, backbone.hidden_size)
    randomize(head, seed)
    return HeadContext(backbone.core, backbone.row_encoder(), config.head, module=head.eval())


def check_multi_class_pooling_under_padding(source: str, variant: str) -> float:
    """MULTI_CLASS scores of a padded batch == the head on each row's own plain forward (all of its
    positions real). Returns the max |diff|."""
    backbone = tiny(source)
    ctx, strategy = head_context(backbone, variant), STRATEGIES["multi_class"]
    features = image_features(backbone.core, backbone.pixel_values(images()))
    with torch.no_grad():
        batched = strategy.classifier_scores(ctx, QUESTIONS, OPTIONS, features).scores
        worst = 0.0
        for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, images())):
            inputs = processor_inputs(backbone, image, strategy.prompt_rows(question, options)[0].prefix)
            hidden = plain_hidden(backbone, inputs)
            alone, _ = ctx.module(hidden, inputs["attention_mask"].bool(), len(options))
            worst = max(worst, float((batched[b] - alone[0].float()).abs().max()))
    return worst


def check_swag_rows_against_single_passes(source: str, variant: str) -> float:
    """SWAG's batched option rows (features repeated, not recomputed) == each row's own plain forward."""
    backbone = tiny(source)
    ctx, strategy = head_context(backbone, variant), STRATEGIES["swag"]
    features = image_features(backbone.core, backbone.pixel_values(images()))
    with torch.no_grad():
        batched = strategy.classifier_scores(ctx, QUESTIONS, OPTIONS, features).scores
        worst = 0.0
        for b, (question, options, image) in enumerate(zip(QUESTIONS, OPTIONS, images())):
            for k, row in enumerate(strategy.prompt_rows(question, options)):
                inputs = processor_inputs(backbone, image, row.prefix)
                hidden = plain_hidden(backbone, inputs)
                logits, _ = ctx.module.row_scores(hidden, inputs["attention_mask"].bool())
                worst = max(worst, abs(float(batched[b, k]) - float(logits[0])))
    return worst


def vision_calls_of_one_predict(predictor, tower: torch.nn.Module) -> list[int]:
    """Images per call of ``tower`` while ``predictor`` answers 2 examples with every variant."""
    calls: list[int] = []

    def count(module, args, kwargs, output):
        pixels = args[0] if args else kwargs["pixel_values"]
        calls.append(pixels.shape[0])

    handle = tower.register_forward_hook(count, with_kwargs=True)
    try:
        predictor.predict_batch(images(), QUESTIONS, OPTIONS, list(predictor.variants))
    finally:
        handle.remove()
    return calls


def run_compare_smoke(source: str, out: Path) -> dict:
    """``python -m training.compare --base <source> --smoke --out <out>``; returns comparison.json."""
    command = [sys.executable, "-m", "training.compare", "--base", source, "--smoke", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads((out / "comparison.json").read_text())


def checkpoints_of(compare_out: Path) -> list[Path]:
    return [compare_out / name / "best" for name in VARIANTS]


def run_evaluate_cli(compare_out: Path, out: Path) -> dict:
    """``python -m vqa_demo.evaluate`` on the comparison's checkpoints and smoke validation split."""
    checkpoints = [str(p) for p in checkpoints_of(compare_out)]
    data = compare_out / "smoke-data" / "validation"
    args = ["--checkpoints", *checkpoints, "--data", str(data), "--out", str(out)]
    return evaluate_main(evaluate_args(args))


def app_holder_answers(compare_out: Path) -> dict:
    """The app's predictor holder loads the comparison's checkpoints and answers one example."""
    holder = PredictorHolder.from_config(AppConfig(checkpoints=checkpoints_of(compare_out)))
    predictor = holder.get()
    (answer,) = predictor.predict_batch(images()[:1], QUESTIONS[:1], OPTIONS[:1], holder.names)
    return answer


def lora_module_names(source: str, scope: str) -> list[str]:
    """Names of the modules peft wraps with LoRA for ``scope`` on the tiny model of ``source``."""
    from peft import LoraConfig, get_peft_model

    backbone = tiny(source)
    config = LoraConfig(r=2, lora_alpha=4, **backbone.family.lora_targets(scope))
    model = get_peft_model(backbone.core, config)
    return [name for name, module in model.named_modules() if hasattr(module, "lora_A")]


def check_lora_targets(source: str, layers: int = 2) -> None:
    """``language``: the text decoder's 7 linears per layer only; ``all-linear``: also the vision tower
    and projector, never the LM head."""
    language = lora_module_names(source, "language")
    assert len(language) == 7 * layers and all(".language_model.layers." in n for n in language)
    everything = lora_module_names(source, "all-linear")
    assert set(language) < set(everything) and not any(n.endswith("lm_head") for n in everything)
    assert any(".vision_tower." in n for n in everything)


def check_all_linear_trains_the_tower(source: str) -> None:
    """Through :func:`add_lora`: only LoRA weights train, and with ``all-linear`` (``vision=True``)
    the vision tower's LoRA weights train too (the base weights stay frozen)."""
    from vqa_demo.config import LoraSettings
    from vqa_demo.model.backbone import add_lora

    for vision in (False, True):
        backbone = tiny(source)
        add_lora(backbone, LoraSettings(vision=vision))
        trained = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
        assert trained and all("lora_" in n for n in trained)
        assert any(".vision_tower." in n for n in trained) == vision


def attribution_score_gap(source: str) -> float:
    """Max |attributed score at the input - the predicted score| over every variant and example: the
    attributions' forward (input embeddings + features) is the family's, like the predictor's."""
    from vqa_demo.explain.attribution import attribute
    from vqa_demo.testing import random_variant_predictor

    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=source))
    predictions = predictor.predict_batch(images(), QUESTIONS, OPTIONS, list(predictor.variants))
    worst = 0.0
    for variant in predictor.variants:
        maps = attribute(predictor, images(), QUESTIONS, OPTIONS, variant, method="saliency")
        for attribution, prediction in zip(maps, (p[variant] for p in predictions)):
            details, choice = prediction.cond_gen, prediction.choice
            expected = details.loglik_sum[choice] if details else prediction.option_scores[choice]
            worst = max(worst, abs(attribution.score - float(expected)))
    return worst


def check_explanations_find_the_image_and_the_answer(source: str) -> None:
    """Where a chat template puts the image tokens mid-row: the attention grid holds the weights of exactly
    those positions, and a COND_GEN attribution's answer tokens are the chosen option + the end token."""
    from vqa_demo.explain.attribution import attribute
    from vqa_demo.testing import random_variant_predictor

    predictor = random_variant_predictor(build_tiny_backbone(seed=1, source=source))
    n_image = predictor.backbone.image_seq_length
    (result,) = predictor.predict_batch(images()[:1], QUESTIONS[:1], OPTIONS[:1], ["swag-attentive"])
    attention = result["swag-attentive"].attention
    assert attention.image_grid.size == n_image and np.isclose(
        attention.image_mass + attention.token_weights.sum(), 1
    )
    assert not any("<image>" in t or "image_pad" in t or "image_soft" in t for t in attention.tokens)
    (attribution,) = attribute(
        predictor, images()[:1], QUESTIONS[:1], OPTIONS[:1], "cond_gen", targets=[2], method="saliency"
    )
    answer = "".join(attribution.tokens[attribution.suffix_start :])
    assert attribution.suffix_start is not None and OPTIONS[0][2] in answer, answer


def check_evaluate_cli_and_app_on_a_comparison(compare_out: Path, comparison: dict, tmp: Path) -> None:
    """The evaluate CLI on a ``training.compare`` run's checkpoints gives the comparison's accuracies, and the
    app's holder loads the same checkpoints and answers with every variant."""
    metrics = run_evaluate_cli(compare_out, tmp / "eval")
    for name, entry in comparison["variants"].items():
        assert metrics["variants"][name]["accuracy"] == entry["accuracy"], name
    answer = app_holder_answers(compare_out)
    assert sorted(answer) == sorted(VARIANTS)
    assert all(0 <= prediction.choice < len(OPTIONS[0]) for prediction in answer.values())
