"""Sharing ratios and absolute times at the REAL PaliGemma 2 3B-224 shapes (random weights).

    python -m benchmarks.real_shapes                  # fp32 CPU, ~13 GB RAM, 10-20 min on 2 cores
    python -m benchmarks.real_shapes --quick          # the same structure scaled down, seconds (CI)
    python -m benchmarks.real_shapes --device cuda    # bf16 on a GPU (SDPA vision tower); never required

The config is built in-process with the published sizes (transformers' PaliGemma 2 conversion script
and the paligemma2-3b-pt-224 config): Gemma 2 2B decoder (hidden 2304, 26 layers, 8 heads, 4 KV heads,
head_dim 256, MLP 9216, vocabulary 257 216, sliding window 4096, query_pre_attn_scalar 256, attention /
final logit soft-capping 50 / 30) and SigLIP So400m/14 at 224 px (hidden 1152, 27 layers, 16 heads, MLP
4304, 256 image tokens, projection to 2304). About 3.0 B parameters; weights are random (initialisation
is skipped with ``no_init_weights`` and replaced by a fast normal fill), so only times are meaningful,
and the option scores serve to check that optimised and naive paths agree. The tokenizer is a small
byte-level BPE (the embedding keeps the real 257 216 rows), so prompts are somewhat longer in tokens
than with the real SentencePiece vocabulary; the prefix length is recorded.

Phases (each records the load average; memory is freed between them):
1. vision tower alone (median of 3);
2. COND_GEN, 5 options: naive = for every option the vision tower + one full teacher-forced pass,
   vs optimised = vision once + one cached prefix pass + all options in one pass (one untimed
   optimised warm-up, then optimised / naive / optimised); components timed inside the same calls give the prefix-sharing
   ratio of the language model alone and the share of the vision tower;
3. COND_GEN, 4 options, optimised (target: under 25 s on the 2-core CPU);
4. SWAG, 4 options on shared features: one forward of 4 rows vs 4 forwards of 1 row;
5. prefill tokens/s (prefix tokens / prefix pass seconds);
6. (CPU) dynamic int8 quantisation (the package's ``Int8Linear``, per-channel weights) of every nn.Linear
   of the language model incl. the LM head: time to quantise, fp32 vs int8 time of the optimised 5-option
   scoring interleaved on 3 questions, and agreement of the option scores and choices with fp32.
Targets (full mode, CPU): COND_GEN naive/optimised > 3x end to end and for the LM alone (the design
predicts about K = 5x); 4-option likelihood < 25 s. The vision share and SWAG batching are reported
without a 3x target: at these sizes the LM dominates and batching rows adds no FLOP savings on CPU.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import Targets, add_common_args, finish, free_memory, load_average, setup, stats, table
from benchmarks.models import make_items
from benchmarks.naive import full_pass_option_loglik, max_abs_diff, shared_prefix_loglik
from vqa_demo.config import HeadConfig
from vqa_demo.model.backbone import preprocess_images
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.families.paligemma.tiny import paligemma_processor
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import build_head, strategy_for

# PaliGemma 2 3B-224: Gemma 2 2B + SigLIP So400m/14 at 224 px.
REAL_TEXT = dict(
    hidden_size=2304, num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
    intermediate_size=9216, vocab_size=257216, sliding_window=4096, query_pre_attn_scalar=256,
    attn_logit_softcapping=50.0, final_logit_softcapping=30.0, hidden_activation="gelu_pytorch_tanh",
    max_position_embeddings=8192,
)  # fmt: skip
REAL_VISION = dict(
    hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
    image_size=224, patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
)  # fmt: skip
# Same structure, scaled down (GQA 2:1, soft-capping, sliding window, 16 image tokens).
QUICK_TEXT = dict(REAL_TEXT, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, intermediate_size=128, vocab_size=None, query_pre_attn_scalar=16)  # fmt: skip
QUICK_VISION = dict(REAL_VISION, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=56)  # fmt: skip

NUM_OPTIONS = 5
COND_GEN_TARGET_RATIO = 3.0
COND_GEN_4_OPTIONS_TARGET_S = 25.0


def build_processor(quick: bool, vision: dict):
    if quick:
        from vqa_demo.model.tokenizer import tiny_tokenizer

        tokenizer = tiny_tokenizer()
    else:
        from training.pretrain_data import synthetic_texts
        from vqa_demo.model.tokenizer import train_byte_level_tokenizer

        tokenizer = train_byte_level_tokenizer(synthetic_texts(300, seed=0), vocab_size=4096)
    return paligemma_processor(tokenizer, vision["image_size"], vision["patch_size"])


def build_config(processor, text: dict, vision: dict):
    from transformers import Gemma2Config, PaliGemmaConfig, SiglipVisionConfig

    tokenizer = processor.tokenizer
    text = dict(text)
    text["vocab_size"] = text["vocab_size"] or -(-len(tokenizer) // 64) * 64
    assert text["vocab_size"] >= len(tokenizer)
    text_config = Gemma2Config(
        **text,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision_config = SiglipVisionConfig(**vision, projection_dim=text["hidden_size"], vision_use_head=False)
    config = PaliGemmaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_id=processor.image_token_id,
        projection_dim=text["hidden_size"],
    )
    config.text_config.model_type = "gemma2"
    return config


@torch.no_grad()
def random_fill(model: nn.Module, seed: int, std: float = 0.02) -> None:
    """Random weights without transformers' (slow, 3 B-parameter) initialisation.

    Matrices and embeddings ~ N(0, std); biases 0; LayerNorm scale 1; Gemma's RMSNorm weight 0 (it
    scales by 1 + weight). Every parameter is written, so nothing is left uninitialised.
    """
    torch.manual_seed(seed)
    written = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in written:
                continue
            written.add(id(param))
            if isinstance(module, nn.LayerNorm) and name == "weight":
                param.fill_(1.0)
            elif param.ndim >= 2:
                param.normal_(0.0, std)
            else:
                param.zero_()
    assert len(written) == len({id(p) for p in model.parameters()})


def build_model(config, device: torch.device, dtype: torch.dtype, seed: int):
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights():
            model = PaliGemmaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.tie_weights()
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    random_fill(model, seed)
    return model.eval()


class Phases:
    """Times the phases and records the load average at the end of each."""

    def __init__(self):
        self.log: dict[str, dict[str, Any]] = {}

    def done(self, name: str, start: float, **extra) -> None:
        self.log[name] = {"seconds": time.perf_counter() - start, "load_average": load_average(), **extra}
        print(
            f"[{name}] {self.log[name]['seconds']:.1f} s, load {self.log[name]['load_average']}", flush=True
        )
        free_memory()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def now(device) -> float:
    sync(device)
    return time.perf_counter()


def sandwich(optimised, naive, rounds: int) -> tuple[list, list]:
    """Run optimised, then (naive, optimised) ``rounds`` times; returns both result lists."""
    opt, nai = [optimised()], []
    for _ in range(rounds):
        nai.append(naive())
        opt.append(optimised())
    return opt, nai


class Scorer:
    """COND_GEN and SWAG scoring on one model, timed by component."""

    def __init__(self, core, processor, device):
        self.core, self.device = core, device
        self.encoder = RowEncoder(
            processor.tokenizer, processor.image_token_id, int(processor.image_seq_length)
        )
        self.processor = processor

    def pixels(self, image):
        return preprocess_images(self.processor, [image]).to(self.device, self.core.dtype)

    def vision(self, pixels) -> tuple[float, torch.Tensor]:
        start = now(self.device)
        features = image_features(self.core, pixels)
        return now(self.device) - start, features

    def cond_gen_shared(self, item, pixels, options) -> dict:
        vision_s, features = self.vision(pixels)
        total, mean, parts = shared_prefix_loglik(self.core, self.encoder, item.question, options, features)
        parts.update(vision_s=vision_s, total_s=vision_s + parts["prefix_s"] + parts["options_s"])
        return {"sum": total, "mean": mean, **parts}

    def cond_gen_naive(self, item, pixels, options) -> dict:
        vision_s = lm_s = 0.0
        sums, means = [], []
        for k in range(len(options)):
            seconds, features = self.vision(pixels)
            vision_s += seconds
            start = now(self.device)
            s, m = full_pass_option_loglik(
                self.core, self.encoder, item.question, options, k, features=features
            )
            lm_s += now(self.device) - start
            sums.append(s)
            means.append(m)
        return {"sum": np.array(sums), "mean": np.array(means), "vision_s": vision_s, "lm_s": lm_s,
                "total_s": vision_s + lm_s}  # fmt: skip

    def swag(self, head, item, features, options, batched: bool) -> dict:
        cfg = HeadConfig(head="swag", pooling="last_token")
        ctx, strategy = HeadContext(self.core, self.encoder, cfg, module=head), strategy_for(cfg)
        start = now(self.device)
        with torch.no_grad():
            if batched:
                scores = strategy.classifier_scores(ctx, [item.question], [options], features).scores[0]
            else:
                scores = torch.stack([
                    strategy.classifier_scores(ctx, [item.question], [[o]], features).scores[0, 0]
                    for o in options
                ])  # fmt: skip
        return {"scores": scores.float().cpu().numpy(), "total_s": now(self.device) - start}


def int8_swap(core) -> tuple[dict[str, nn.Module], dict[str, nn.Module], float]:
    """The package's int8 copies (:class:`~vqa_demo.model.precision.Int8Linear`) of every nn.Linear of
    the language model (and the LM head).

    Returns ``(fp32 modules, int8 modules, seconds to quantise)`` keyed by module path; the model keeps
    its fp32 modules until :func:`use_modules` swaps them.
    """
    from vqa_demo.model.precision import Int8Linear

    targets = {
        f"model.language_model.{name}": module
        for name, module in core.model.language_model.named_modules()
        if isinstance(module, nn.Linear)
    }
    targets["lm_head"] = core.lm_head
    start = time.perf_counter()
    quantized = {name: Int8Linear.from_linear(module) for name, module in targets.items()}
    return targets, quantized, time.perf_counter() - start


def use_modules(core, modules: dict[str, nn.Module]) -> None:
    for name, module in modules.items():
        core.set_submodule(name, module)


def main(args: argparse.Namespace) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    device = torch.device(args.device)
    machine = setup(args, args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    text, vision = (QUICK_TEXT, QUICK_VISION) if args.quick else (REAL_TEXT, REAL_VISION)
    rounds = args.rounds or (3 if args.quick else 1)
    tolerance = 1e-4 if args.quick and dtype == torch.float32 else 2e-3 if dtype == torch.float32 else 0.1
    phases = Phases()
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "dtype": str(dtype),
    }

    start = time.perf_counter()
    processor = build_processor(args.quick, vision)
    config = build_config(processor, text, vision)
    items = make_items(3, vision["image_size"], args.seed, NUM_OPTIONS)
    core = build_model(config, device, dtype, args.seed)
    params = {
        "total": sum(p.numel() for p in core.parameters()),
        "vision_tower": sum(p.numel() for p in core.model.vision_tower.parameters()),
        "language_model": sum(p.numel() for p in core.model.language_model.parameters()),
    }
    result["model"] = {
        "text_config": {k: getattr(config.text_config, k) for k in REAL_TEXT},
        "vision_config": {k: getattr(config.vision_config, k) for k in REAL_VISION},
        "image_tokens": int(processor.image_seq_length),
        "parameters": params,
        "attn_implementation": {
            "vision": core.model.vision_tower.config._attn_implementation,
            "text": core.model.language_model.config._attn_implementation,
        },
    }
    phases.done("build", start, parameters=params["total"])
    scorer = Scorer(core, processor, device)
    item = items[0]
    pixels = scorer.pixels(item.image)

    # 1. vision tower
    start = time.perf_counter()
    scorer.vision(pixels)  # warm-up
    vision_samples = [scorer.vision(pixels)[0] for _ in range(3)]
    phases.done("vision", start, **stats(vision_samples))

    # 2. COND_GEN, 5 options: naive vs optimised
    start = time.perf_counter()
    options = item.options[:NUM_OPTIONS]
    # Untimed: the first language-model passes pay for first-touch allocations (KV cache, activations).
    warm = scorer.cond_gen_shared(item, pixels, options)
    opt, nai = sandwich(
        lambda: scorer.cond_gen_shared(item, pixels, options),
        lambda: scorer.cond_gen_naive(item, pixels, options),
        rounds,
    )
    diff = max(
        max(max_abs_diff(n["sum"], o["sum"]), max_abs_diff(n["mean"], o["mean"])) for n in nai for o in opt
    )
    assert diff <= tolerance, f"COND_GEN naive and shared-prefix scores differ by {diff:.2e} (> {tolerance})"
    median = lambda runs, key: float(np.median([r[key] for r in runs]))  # noqa: E731
    naive_total, opt_total = median(nai, "total_s"), median(opt, "total_s")
    naive_lm = median(nai, "lm_s")
    opt_lm = float(np.median([r["prefix_s"] + r["options_s"] for r in opt]))
    vision_once = median(opt, "vision_s")
    cond_gen = {
        "options": len(options),
        "prefix_tokens": opt[0]["prefix_tokens"],
        "naive_s": naive_total,
        "naive_vision_s": median(nai, "vision_s"),
        "naive_lm_s": naive_lm,
        "optimised_s": opt_total,
        "optimised_vision_s": vision_once,
        "optimised_prefix_s": median(opt, "prefix_s"),
        "optimised_options_s": median(opt, "options_s"),
        "ratio_end_to_end": naive_total / opt_total,
        "ratio_lm_prefix_sharing": naive_lm / opt_lm,
        "ratio_vision_once_alone": naive_total / (naive_lm + vision_once),
        "vision_share_of_naive": median(nai, "vision_s") / naive_total,
        "max_abs_diff": diff,
        "naive_runs": [r["total_s"] for r in nai],
        "optimised_runs": [r["total_s"] for r in opt],
    }
    cond_gen["warmup_s"] = warm["total_s"]
    result["cond_gen_5_options"] = cond_gen
    phases.done("cond_gen_5_options", start)

    # 3. COND_GEN, 4 options, optimised
    start = time.perf_counter()
    runs4 = [scorer.cond_gen_shared(item, pixels, item.options[:4]) for _ in range(2)]
    result["cond_gen_4_options"] = {
        "optimised_s": median(runs4, "total_s"),
        "runs": [r["total_s"] for r in runs4],
        "prefix_tokens": runs4[0]["prefix_tokens"],
    }
    phases.done("cond_gen_4_options", start)

    # 4. SWAG, 4 options on shared features
    start = time.perf_counter()
    _, features = scorer.vision(pixels)
    torch.manual_seed(args.seed)
    head = build_head(HeadConfig(head="swag", pooling="last_token"), config.text_config.hidden_size)
    head = head.to(device, dtype).eval()
    swag_opts = item.options[:4]
    b, s = sandwich(
        lambda: scorer.swag(head, item, features, swag_opts, batched=True),
        lambda: scorer.swag(head, item, features, swag_opts, batched=False),
        rounds,
    )
    swag_diff = max(max_abs_diff(x["scores"], y["scores"]) for x in b for y in s)
    assert swag_diff <= tolerance * 10, f"SWAG batched and sequential scores differ by {swag_diff:.2e}"
    batched_s, sequential_s = median(b, "total_s"), median(s, "total_s")
    result["swag_4_options"] = {
        "sequential_s": sequential_s,
        "batched_s": batched_s,
        "ratio": sequential_s / batched_s,
        "vision_per_option_estimate_s": sequential_s + 4 * float(np.median(vision_samples)),
        "max_abs_diff": swag_diff,
    }
    features = head = None  # free before the next phase
    phases.done("swag_4_options", start)

    # 5. prefill throughput, from the optimised runs' prefix pass
    prefill = {
        "prefix_tokens": cond_gen["prefix_tokens"],
        "tokens_per_s_lm": cond_gen["prefix_tokens"] / cond_gen["optimised_prefix_s"],
        "tokens_per_s_with_vision": cond_gen["prefix_tokens"]
        / (cond_gen["optimised_prefix_s"] + cond_gen["optimised_vision_s"]),
        "reference": "gemma.cpp: 3B-224 prefill 32-147 tokens/s on 4-8-core CPUs",
    }
    result["prefill"] = prefill

    # 6. dynamic int8 (CPU only)
    if device.type == "cpu" and not args.skip_int8:
        start = time.perf_counter()
        fp32_modules, int8_modules, quantize_s = int8_swap(core)
        per_item = []
        for index, question in enumerate(items):
            q_pixels = scorer.pixels(question.image)
            q_options = question.options[:NUM_OPTIONS]
            order = ("fp32", "int8") if index % 2 == 0 else ("int8", "fp32")
            runs = {}
            for kind in order:
                use_modules(core, fp32_modules if kind == "fp32" else int8_modules)
                runs[kind] = scorer.cond_gen_shared(question, q_pixels, q_options)
            use_modules(core, fp32_modules)
            per_item.append(
                {
                    "fp32_s": runs["fp32"]["total_s"],
                    "int8_s": runs["int8"]["total_s"],
                    "fp32_lm_s": runs["fp32"]["prefix_s"] + runs["fp32"]["options_s"],
                    "int8_lm_s": runs["int8"]["prefix_s"] + runs["int8"]["options_s"],
                    "max_abs_diff_mean": max_abs_diff(runs["fp32"]["mean"], runs["int8"]["mean"]),
                    "max_abs_diff_sum": max_abs_diff(runs["fp32"]["sum"], runs["int8"]["sum"]),
                    "fp32_choice": int(np.argmax(runs["fp32"]["mean"])),
                    "int8_choice": int(np.argmax(runs["int8"]["mean"])),
                    "score_correlation": float(np.corrcoef(runs["fp32"]["mean"], runs["int8"]["mean"])[0, 1]),
                }
            )
        fp32_s = float(np.median([r["fp32_s"] for r in per_item]))
        int8_s = float(np.median([r["int8_s"] for r in per_item]))
        result["int8_dynamic"] = {
            "quantize_s": quantize_s,
            "quantized_linears": len(int8_modules),
            "fp32_s": fp32_s,
            "int8_s": int8_s,
            "ratio": fp32_s / int8_s,
            "ratio_lm": float(np.median([r["fp32_lm_s"] / r["int8_lm_s"] for r in per_item])),
            "choices_agree": sum(r["fp32_choice"] == r["int8_choice"] for r in per_item),
            "questions": len(per_item),
            "max_abs_diff_mean": max(r["max_abs_diff_mean"] for r in per_item),
            "per_question": per_item,
        }
        del int8_modules
        phases.done("int8_dynamic", start)

    result["phases"] = phases.log
    core = scorer = None
    free_memory()

    targets = Targets(enforce=not args.quick)
    targets.check(
        "COND_GEN 5 options naive/optimised (end to end)",
        cond_gen["ratio_end_to_end"],
        ">",
        COND_GEN_TARGET_RATIO,
        "x",
    )
    targets.check("COND_GEN 5 options naive/optimised (LM prefix sharing)", cond_gen["ratio_lm_prefix_sharing"], ">", COND_GEN_TARGET_RATIO, "x")  # fmt: skip
    if device.type == "cpu":
        targets.check(
            "COND_GEN 4-option likelihood", result["cond_gen_4_options"]["optimised_s"], "<", COND_GEN_4_OPTIONS_TARGET_S, " s"
        )  # fmt: skip
    print_tables(result, machine)
    return finish("real_shapes", result, targets, args)


def print_tables(result: dict, machine: dict) -> None:
    cg, swag, pre = result["cond_gen_5_options"], result["swag_4_options"], result["prefill"]
    params = result["model"]["parameters"]["total"]
    print(
        f"\nPaliGemma 2 3B-224 shapes ({params / 1e9:.2f} B params, {result['dtype']}, {machine['device']}), "
        f"{cg['prefix_tokens']} prefix tokens; load average at start {machine['load_average_start']}"
    )
    rows = [
        ["COND_GEN 5 options, end to end", cg["naive_s"], cg["optimised_s"], cg["ratio_end_to_end"]],
        ["  language model only (prefix sharing)", cg["naive_lm_s"], cg["optimised_prefix_s"] + cg["optimised_options_s"], cg["ratio_lm_prefix_sharing"]],
        ["  vision once (naive LM kept)", cg["naive_s"], cg["naive_lm_s"] + cg["optimised_vision_s"], cg["ratio_vision_once_alone"]],
        ["SWAG 4 options, batched rows", swag["sequential_s"], swag["batched_s"], swag["ratio"]],
    ]  # fmt: skip
    if "int8_dynamic" in result:
        q = result["int8_dynamic"]
        rows.append(["int8 dynamic vs fp32 (COND_GEN 5 opt.)", q["fp32_s"], q["int8_s"], q["ratio"]])
    print(table(["comparison", "naive / fp32 s", "optimised s", "ratio"], rows))
    print(
        f"COND_GEN 4 options optimised: {result['cond_gen_4_options']['optimised_s']:.2f} s; vision tower "
        f"{result['phases']['vision']['median']:.2f} s; prefill {pre['tokens_per_s_lm']:.1f} tokens/s "
        f"(LM), {pre['tokens_per_s_with_vision']:.1f} tokens/s with the vision tower"
    )
    if "int8_dynamic" in result:
        q = result["int8_dynamic"]
        print(
            f"int8: quantised {q['quantized_linears']} linears in {q['quantize_s']:.1f} s; choices agree "
            f"{q['choices_agree']}/{q['questions']}; max |loglik_mean diff| {q['max_abs_diff_mean']:.3g}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser, "real_shapes")
    parser.add_argument("--device", default="cpu", help="cpu (fp32) or cuda (bf16)")
    parser.add_argument(
        "--rounds", type=int, default=0, help="naive runs sandwiched by optimised (default 1, quick 3)"
    )
    parser.add_argument("--skip-int8", action="store_true", help="skip the dynamic int8 phase")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
