"""Training-step throughput (LoRA, frozen base) and achieved FLOP/s vs this machine's fp32 matmul peak.

    python -m benchmarks.training_throughput                     # default model (assets/base, else stand-in)
    python -m benchmarks.training_throughput --variant swag --pooling attentive
    python -m benchmarks.training_throughput --quick             # tiny in-process model (CI)

A step is what ``training/train.py`` does per batch: the loss of one variant on cached image features
(the frozen tower runs once per image per run, not per step; ``--with-vision`` puts it in the step),
backward into the LoRA matrices and the head, AdamW. The peak is a 2048x2048 fp32 matmul loop timed
in the same process before and after the training steps (their mean is the reference).

FLOPs per step are *measured* with ``torch.utils.flop_counter.FlopCounterMode`` over one forward +
backward (matmuls, attention, convolutions; elementwise ops are not counted). For comparison the
analytic estimate for LoRA with a frozen base is also reported::

    forward   2 * N * T          N = frozen linear parameters of the language model (+ LoRA, tiny),
    backward  2 * N * T          T = tokens in the step (rows x sequence length)
    total    ~4 * N * T          + for COND_GEN 4 * V * D * R * (L - 1): the teacher-forced loss projects
                                 every position of the R rows of length L onto the V-word vocabulary

The backward pass through a frozen weight only computes the input gradient (one matmul, 2NT), not the
weight gradient, so the full-fine-tuning rule 6NT overstates LoRA training by about 1.5x;
activation checkpointing would add another forward (6NT). Attention's T^2 terms are not in 4NT but
are in the measured count.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Targets, add_common_args, finish, setup, stats, table
from benchmarks.models import build_backbone, make_items
from vqa_demo.config import HEAD_NAMES, BackboneConfig, HeadConfig, LoraSettings
from vqa_demo.loading import DEFAULT_BASE
from vqa_demo.model.backbone import add_lora, load_backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.forward import image_features
from vqa_demo.model.head_strategy import HeadContext
from vqa_demo.model.strategies import STRATEGIES, build_head, strategy_for, variant_loss


def matmul_peak(n: int = 2048, iterations: int = 10) -> dict[str, float]:
    """fp32 GFLOP/s of an ``n x n`` matmul loop (median and best of ``iterations``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        a @ b
        samples.append(time.perf_counter() - start)
    flops = 2 * n**3
    return {
        "n": n,
        "gflops_median": flops / stats(samples)["median"] / 1e9,
        "gflops_best": flops / min(samples) / 1e9,
    }


def choose_backbone(args: argparse.Namespace):
    if args.quick:
        return build_backbone("tiny", args.seed), "stand-in: tiny (quick)"
    if (Path(args.base) / "config.json").is_file():
        return load_backbone(BackboneConfig(source=str(args.base), device="cpu")), f"assets: {args.base}"
    print(f"no base model at {args.base}: using the in-process default-size stand-in")
    return build_backbone("default", args.seed), "stand-in: default size (random weights)"


def main(args: argparse.Namespace) -> int:
    machine = setup(args)
    backbone, description = choose_backbone(args)
    head_cfg = HeadConfig(head=args.variant, pooling=args.pooling, num_options=4)
    add_lora(backbone, LoraSettings(r=args.lora_r, alpha=2 * args.lora_r, dropout=0.05), adapter_name="bench")
    head = build_head(head_cfg, backbone.hidden_size)
    core = backbone.core
    encoder = RowEncoder(backbone.tokenizer, backbone.processor.image_token_id, backbone.image_seq_length)
    batch = args.batch_size or (4 if args.quick else 16)
    steps = args.steps or (3 if args.quick else 10)
    items = make_items(batch, 224, args.seed)
    questions = [i.question for i in items]
    options = [list(i.options) for i in items]
    answers = [i.answer for i in items]
    pixels = backbone.pixel_values([i.image for i in items])
    cached = image_features(core, pixels)

    trainable = [p for p in backbone.model.parameters() if p.requires_grad]
    if head is not None:
        trainable += list(head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    backbone.model.train()
    if head is not None:
        head.train()

    def forward_backward():
        features = image_features(core, pixels) if args.with_vision else cached
        ctx = HeadContext(core, encoder, head_cfg, module=head)
        loss = variant_loss(ctx, questions, options, answers, features)
        loss.backward()
        return loss

    def step():
        forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        forward_backward()
    optimizer.zero_grad(set_to_none=True)
    measured_flops = counter.get_total_flops()

    peak_n = 512 if args.quick else 2048  # the 2048 loop alone would take longer than a quick run
    peak_before = matmul_peak(peak_n)
    for _ in range(2):
        step()
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    peak_after = matmul_peak(peak_n)

    # Tokens and the analytic 4NT estimate.
    strategy = strategy_for(head_cfg)
    rows_per_example = len(options[0]) if strategy.rows_per_option else 1
    prompt_rows = [
        row
        for q, o, a in zip(questions, options, answers)
        for row in strategy.prompt_rows(q, o, answer_index=a)
    ]
    encoded = encoder.encode(prompt_rows, with_suffix=strategy.token_level_loss)
    tokens = int(encoded.input_ids.numel())
    frozen_linear = sum(
        m.weight.numel()
        for name, m in core.model.language_model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in name
    )
    analytic = 4 * frozen_linear * tokens
    if strategy.token_level_loss:
        # cond_gen_loss projects every position but the last onto the vocabulary (forward + input grad).
        rows, length = encoded.input_ids.shape
        analytic += 4 * core.lm_head.weight.numel() * rows * (length - 1)
    step_s = stats(samples)["median"]
    peak = (peak_before["gflops_median"] + peak_after["gflops_median"]) / 2
    achieved = measured_flops / step_s / 1e9
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "model": {
            "description": description,
            "parameters": sum(p.numel() for p in core.parameters()),
            "trainable_parameters": sum(p.numel() for p in trainable),
            "frozen_lm_linear_parameters": frozen_linear,
            "image_tokens": backbone.image_seq_length,
        },
        "variant": head_cfg.variant,
        "batch_size": batch,
        "rows_per_step": batch * rows_per_example,
        "tokens_per_step": tokens,
        "with_vision": args.with_vision,
        "step_s": stats(samples),
        "samples_per_s": batch / step_s,
        "flops_per_step_measured": measured_flops,
        "flops_per_step_analytic_4NT": analytic,
        "achieved_gflops": achieved,
        "peak_gflops": peak,
        "peak_before": peak_before,
        "peak_after": peak_after,
        "fraction_of_peak": achieved / peak,
        "step_samples": samples,
    }
    print(
        f"\nmodel: {description}; {head_cfg.variant}, batch {batch}; load average {machine['load_average_start']}"
    )
    print(
        table(
            ["quantity", "value"],
            [
                ["step time (median) s", step_s],
                ["samples/s", batch / step_s],
                ["tokens/step", tokens],
                ["GFLOP/step measured (FlopCounterMode)", measured_flops / 1e9],
                ["GFLOP/step analytic 4NT", analytic / 1e9],
                ["achieved GFLOP/s", achieved],
                [f"fp32 {peak_n}^2 matmul peak GFLOP/s (before / after)", f"{peak_before['gflops_median']:.1f} / {peak_after['gflops_median']:.1f}"],
                ["fraction of peak", achieved / peak],
            ],
        )
    )  # fmt: skip
    return finish("training_throughput", result, Targets(enforce=False), args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser, "training_throughput")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="base model directory")
    parser.add_argument("--variant", default="cond_gen", choices=list(HEAD_NAMES))
    parser.add_argument("--pooling", default=None, help="last_token or attentive (multi_class, swag)")
    parser.add_argument("--batch-size", type=int, default=0, help="examples per step (default 16, quick 4)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default 10, quick 3)")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--with-vision", action="store_true", help="run the frozen tower inside every step")
    args = parser.parse_args(argv)
    if args.pooling is None and STRATEGIES[args.variant].has_module:
        args.pooling = "last_token"
    return args


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
