"""Serving a PaliGemma 2 3B-224 base on a CPU: precision, threads, memory, bounded forwards, agreement.

    python -m benchmarks.serving --json benchmarks/results/serving.json   # 3B shapes, needs ~8 GB free
    python -m benchmarks.serving --quick                                  # scaled-down shapes (CI)
    python -m benchmarks.serving --agreement-only                         # step 3 alone, ~5 min

1. A random-weight base at the 3B-224 shapes is written once (bf16, as published; ``--base-dir``
   keeps it for later runs), then each precision is measured in its own process with the package's
   loader (:mod:`benchmarks.serving_model`): peak memory from start to the first answer, memory while
   running, 4-option COND_GEN (one variant) and all five variants answering one item, per thread count.
2. Bounded forwards: SWAG, batch 16 (64 rows) of about 256 prompt tokens (plus 256 image tokens) at
   the real widths (``--layers`` of the language model and vision tower, random weights), one forward
   against the micro-batches of :func:`~vqa_demo.model.forward.row_slices` (``TOKEN_BUDGET``,
   ``ACTIVATION_BYTES``, ``SCORE_BYTES``): time per run and the largest score difference; and the
   same on the shipped default (issue 26's case: its validation questions lengthened to about 256
   prompt tokens, plus 64 image tokens, 3 interleaved runs each way through the predictor, in a fresh
   process under glibc's default allocator and one holding freed memory).
3. Agreement on trained weights: the shipped default (``assets/``), ``--items`` validation items under
   fp32 and under each precision: accuracy, share of identical choices, largest score difference.

fp32 at the full 3B shapes is never loaded here (12.6 GB); its figures are in issue 26.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Targets, add_common_args, finish, free_memory, load_average, setup
from vqa_demo.runtime import DEFAULT_CHECKPOINTS

ROOT = Path(__file__).resolve().parent.parent
# Words that lengthen a prompt; each use repeats them until its tokenizer makes about 256 tokens.
FILLER = "the chart shows how many units were sold in each region over the last quarters "


def measure_precision(base: Path, precision: str, threads: list[int]) -> dict:
    """One precision in a fresh process (its own peak memory), through benchmarks.serving_model."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "benchmarks.serving_model", str(base), "--precision", precision]
        command += ["--threads", *map(str, threads), "--json", str(out)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


@contextlib.contextmanager
def forward_bounds(bounded: bool):
    """The package's micro-batch bounds as they are, or (``bounded=False``) all lifted: one forward."""
    from vqa_demo.model import forward

    names = ("TOKEN_BUDGET", "ACTIVATION_BYTES", "SCORE_BYTES")
    saved = {name: getattr(forward, name) for name in names}
    if not bounded:
        for name in names:
            setattr(forward, name, 10**15)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(forward, name, value)


def bounded_swag(quick: bool, layers: int, seed: int) -> dict:
    """SWAG batch 16 x 4 options of ~256-token prompts: one forward vs the CPU micro-batches."""
    from benchmarks.real_shapes import (
        QUICK_TEXT,
        QUICK_VISION,
        REAL_TEXT,
        REAL_VISION,
        build_config,
        build_model,
        build_processor,
    )
    from vqa_demo.config import HeadConfig
    from vqa_demo.model import forward
    from vqa_demo.model.encoding import RowEncoder
    from vqa_demo.model.head_strategy import HeadContext
    from vqa_demo.model.strategies import build_head, strategy_for

    text, vision = (QUICK_TEXT, QUICK_VISION) if quick else (REAL_TEXT, REAL_VISION)
    text = dict(text, num_hidden_layers=layers, vocab_size=None)
    vision = dict(vision, num_hidden_layers=layers)
    processor = build_processor(True, vision)
    core = build_model(build_config(processor, text, vision), torch.device("cpu"), torch.float32, seed)
    encoder = RowEncoder(
        processor.tokenizer, processor.image_token_id, int(processor.image_seq_length), max_text_tokens=512
    )
    cfg = HeadConfig(head="swag", pooling="last_token")
    head = build_head(cfg, text["hidden_size"]).eval()
    ctx, strategy = HeadContext(core, encoder, cfg, module=head), strategy_for(cfg)
    batch = 4 if quick else 16
    # About 256 prompt tokens before the hypothesis (issue 26's long-prompt case), plus 256 image tokens;
    # quick: twice that, so that its 16 short-width rows still take more than one micro-batch.
    words = FILLER * (8 if quick else 4)
    questions = [f"{words} question {i}?" for i in range(batch)]
    options = [[f"option {k} for {i}" for k in range(4)] for i in range(batch)]
    features = torch.randn(batch, int(processor.image_seq_length), text["hidden_size"]) * 0.02
    rows = [r for q, o in zip(questions, options) for r in strategy.prompt_rows(q, o)]
    tokens = encoder.encode(rows, with_suffix=False).input_ids.shape[1]  # the batch's padded length

    def run(bounded: bool) -> tuple[float, np.ndarray]:
        with forward_bounds(bounded), torch.no_grad():
            start = time.perf_counter()
            scores = strategy.classifier_scores(ctx, questions, options, features).scores
            return time.perf_counter() - start, scores.numpy()

    with torch.no_grad():  # untimed warm-up at the same widths, one row
        strategy.classifier_scores(ctx, questions[:1], [options[0][:1]], features[:1])
    timings = interleaved(run, 1 if not quick else 2)
    slices = forward.row_slices(batch * 4, tokens, **forward.cpu_bounds(core))
    return {"rows": batch * 4, "row_tokens": int(tokens), "layers": layers, **bounds_summary(slices, timings)}


def interleaved(run, rounds: int) -> dict[str, Any]:
    """``run(bounded)`` timed ``rounds`` times each way, the bounded run first in every round (the one
    forward then runs on the warmer allocator, if either gains); the last scores of each."""
    timings: dict[str, Any] = {"one_forward": [], "bounded": []}
    for _ in range(rounds):
        for name, bounded in (("bounded", True), ("one_forward", False)):
            seconds, scores = run(bounded)
            timings[name].append(seconds)
            timings[name + "_scores"] = scores
    return timings


def bounds_summary(slices: list[slice], timings: dict[str, Any]) -> dict[str, Any]:
    """Medians, speed-up and largest score difference of :func:`interleaved`'s timings."""
    from vqa_demo.model import forward

    one, bounded = float(np.median(timings["one_forward"])), float(np.median(timings["bounded"]))
    finite = np.isfinite(timings["one_forward_scores"])
    diff = np.abs(timings["one_forward_scores"] - timings["bounded_scores"])[finite]
    return {
        "token_budget": forward.TOKEN_BUDGET, "activation_bytes": forward.ACTIVATION_BYTES,
        "score_bytes": forward.SCORE_BYTES, "micro_batches": len(slices),
        "rows_per_micro_batch": slices[0].stop - slices[0].start,
        "one_forward_s": one, "bounded_s": bounded, "speedup": one / bounded,
        "one_forward_runs_s": timings["one_forward"], "bounded_runs_s": timings["bounded"],
        "max_abs_diff": float(diff.max()), "load_average": load_average(),
    }  # fmt: skip


def bounded_swag_default(checkpoints: Path, quick: bool) -> dict:
    """Issue 26's long-prompt case on the shipped default: SWAG, batch 16 (64 rows) of validation items
    whose questions are lengthened to about 256 prompt tokens, one forward vs the micro-batches, each
    way in two fresh processes: under glibc's default allocator and holding freed memory as serving
    does (:func:`~vqa_demo.runtime.hold_freed_memory`). ``speedup_vs_before`` is what the two give
    together: one forward under the default allocator (what a batch-16 evaluation ran before) against
    the micro-batches with freed memory held (what it runs now)."""
    arms = {}
    for mode in ("default_allocator", "held_memory"):
        code = (
            "import json, sys, torch; from pathlib import Path; from benchmarks.serving import swag_default_arms; "
            "torch.set_num_threads(int(sys.argv[3])); "
            "print(json.dumps(swag_default_arms(Path(sys.argv[1]), sys.argv[2] == 'quick', sys.argv[4] == 'held')))"
        )
        command = [sys.executable, "-c", code, str(checkpoints), "quick" if quick else "full"]
        command += [str(torch.get_num_threads()), "held" if mode == "held_memory" else "default"]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        run = subprocess.run(
            command, env=dict(os.environ, PYTHONPATH=path), cwd=ROOT, capture_output=True, text=True
        )
        if run.returncode:
            raise RuntimeError(f"the {mode} SWAG measurement failed:\n{run.stderr[-4000:]}")
        arms[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    before, now = arms["default_allocator"], arms["held_memory"]
    return {
        **{key: now[key] for key in ("rows", "row_tokens", "prompt_tokens", "heads", "micro_batches")},
        "one_forward_before_s": before["one_forward_s"], "bounded_held_s": now["bounded_s"],
        "speedup_vs_before": before["one_forward_s"] / now["bounded_s"],
        "max_abs_diff": max(before["max_abs_diff"], now["max_abs_diff"]),
        "threads": torch.get_num_threads(), **arms,
    }  # fmt: skip


def swag_default_arms(checkpoints: Path, quick: bool, held: bool) -> dict:
    """:func:`bounded_swag_default`'s measurement in this process (freed memory ``held`` or not): 3
    interleaved runs each way through the predictor, after one untimed bounded run."""
    from vqa_demo.data.splits import load_split
    from vqa_demo.loading import load_predictor
    from vqa_demo.model import forward
    from vqa_demo.runtime import hold_freed_memory

    held = held and hold_freed_memory()
    predictor = load_predictor(checkpoints / "swag-last_token")
    examples = load_split(checkpoints.parent / "validation").examples[: 4 if quick else 16]
    images = [e.load_image() for e in examples]
    words = FILLER * 11
    questions = [f"{words}{e.question}" for e in examples]
    options = [list(e.options) for e in examples]
    variant = predictor.variants["swag-last_token"]
    encoder = predictor.encoder_for(variant.config)
    encoder.max_text_tokens = 512  # room for the long prompts (the default trained at 192)
    # The batch's rows are padded to its longest: that length is what the micro-batches hold.
    rows = [r for q, o in zip(questions, options) for r in variant.strategy.prompt_rows(q, o)]
    tokens = encoder.encode(rows, with_suffix=False).input_ids.shape[1]

    def run(bounded: bool) -> tuple[float, np.ndarray]:
        with forward_bounds(bounded):
            start = time.perf_counter()
            answers = predictor.predict_batch(images, questions, options)
            seconds = time.perf_counter() - start
        return seconds, np.concatenate([a["swag-last_token"].option_scores for a in answers])

    run(True)  # untimed warm-up
    timings = interleaved(run, 3)
    text = predictor.backbone.core.config.get_text_config()
    slices = forward.row_slices(len(examples) * 4, tokens, **forward.cpu_bounds(predictor.backbone.core))
    return {
        "rows": sum(len(o) for o in options), "row_tokens": int(tokens),
        "prompt_tokens": int(tokens - encoder.image_seq_length), "heads": text.num_attention_heads,
        "held_freed_memory": held, **bounds_summary(slices, timings),
    }  # fmt: skip


def agreement(precisions: list[str], items: int, checkpoints: Path) -> dict:
    """The shipped default's first ``items`` validation items under fp32 and each precision."""
    from vqa_demo.data.splits import load_split
    from vqa_demo.loading import load_predictor

    split = load_split(checkpoints.parent / "validation")
    examples = split.examples[:items]
    images = [e.load_image() for e in examples]
    gold = np.array([e.answer_index for e in examples])
    runs: dict[str, Any] = {}
    for precision in [None, *precisions]:
        predictor = load_predictor(checkpoints, precision=precision)
        start = time.perf_counter()
        answers = predictor.predict_batch(
            images, [e.question for e in examples], [e.options for e in examples]
        )
        runs[precision or "fp32"] = (answers, time.perf_counter() - start, predictor.precision)
        predictor = None
        free_memory()
    reference, fp32_s, _ = runs["fp32"]
    names = list(reference[0])
    out: dict[str, Any] = {"items": len(examples), "fp32_s": fp32_s, "load_average": load_average()}
    for precision in precisions:
        answers, seconds, serving = runs[precision]
        per_variant = {}
        for name in names:
            a = np.array([r[name].choice for r in reference])
            b = np.array([r[name].choice for r in answers])
            diff = max(
                float(np.abs(x[name].option_scores - y[name].option_scores).max())
                for x, y in zip(reference, answers)
            )
            per_variant[name] = {"accuracy_fp32": float(np.mean(a == gold)), "accuracy": float(np.mean(b == gold)),
                                 "same_choice": float(np.mean(a == b)), "max_score_diff": diff}  # fmt: skip
        out[precision] = {
            "serving": serving, "seconds": seconds, "variants": per_variant,
            "accuracy_fp32": float(np.mean([v["accuracy_fp32"] for v in per_variant.values()])),
            "accuracy": float(np.mean([v["accuracy"] for v in per_variant.values()])),
            "same_choice": float(np.mean([v["same_choice"] for v in per_variant.values()])),
        }  # fmt: skip
    return out


def agreement_only(args: argparse.Namespace, machine: dict, precisions: list[str]) -> int:
    """Step 3 alone: the shipped default's agreement under each precision, printed and written."""
    result = {"mode": "agreement", "machine": machine}
    result["agreement"] = agreement(precisions, args.items or 300, args.checkpoints)
    default = result["agreement"][precisions[0]]
    result.update(
        precision=default["serving"]["label"],
        default_accuracy_fp32=default["accuracy_fp32"],
        default_accuracy_quantized=default["accuracy"],
        default_same_choice=default["same_choice"],
    )
    print_agreement(result["agreement"], precisions)
    targets = Targets(enforce=True)
    targets.check("identical choices on the default", result["default_same_choice"], ">", 0.97, "")
    accuracy_drop = default["accuracy_fp32"] - default["accuracy"]
    targets.check("accuracy lost on the default", accuracy_drop, "<", 0.01, "")
    return finish("serving", result, targets, args)


def main(args: argparse.Namespace) -> int:
    machine = setup(args)
    precisions = args.precisions or ["auto"]
    if args.agreement_only:
        return agreement_only(args, machine, precisions)
    threads = args.thread_counts or ([1] if args.quick else [1, 2])
    result: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine}
    scratch = tempfile.TemporaryDirectory()
    base = args.base_dir or Path(scratch.name) / "base"
    if not (base / "config.json").is_file():
        from benchmarks.serving_model import write_random_base

        start = time.perf_counter()
        write_random_base(base, args.quick, seed=args.seed)
        result["write_base_s"] = time.perf_counter() - start
    result["precisions"] = {p: measure_precision(base, p, threads) for p in precisions}
    scratch.cleanup()
    result["bounded_swag"] = bounded_swag(args.quick, args.layers, args.seed)
    result["bounded_swag_default"] = bounded_swag_default(args.checkpoints, args.quick)
    result["agreement"] = agreement(precisions, args.items or (8 if args.quick else 300), args.checkpoints)
    main_run, chosen = result["precisions"][precisions[0]], str(threads[-1])
    default = result["agreement"][precisions[0]]
    result.update(
        precision=main_run["serving"]["label"],
        threads=int(chosen),
        cond_gen_4_options_s=main_run["threads"][chosen]["cond_gen_4_options_s"],
        all_variants_s=main_run["threads"][chosen]["all_variants_s"],
        peak_rss_mb=main_run["peak_rss_first_answer_mb"],
        running_rss_mb=main_run["running_rss_mb"],
        default_accuracy_fp32=default["accuracy_fp32"],
        default_accuracy_quantized=default["accuracy"],
        default_same_choice=default["same_choice"],
    )
    print_summary(result)
    targets = Targets(enforce=not args.quick)
    targets.check("4-option COND_GEN (auto, 2 threads)", result["cond_gen_4_options_s"], "<", 5.0, " s")
    targets.check("all five variants (auto, 2 threads)", result["all_variants_s"], "<", 20.0, " s")
    targets.check("peak memory to the first answer", result["peak_rss_mb"] / 1024, "<", 14.0, " GB")
    targets.check("identical choices on the default", result["default_same_choice"], ">", 0.97, "")
    targets.check("SWAG bounded vs one forward, 3B widths", result["bounded_swag"]["speedup"], ">", 1.0, "x")
    swag_default = result["bounded_swag_default"]["speedup_vs_before"]
    targets.check("SWAG now vs one forward before, default at 256 tokens", swag_default, ">", 1.8, "x")
    return finish("serving", result, targets, args)


def print_summary(result: dict) -> None:
    for run in result["precisions"].values():
        for count, t in run["threads"].items():
            print(
                f"{run['serving']['label']:18s} {count} thread(s): COND_GEN 4 options {t['cond_gen_4_options_s']:.2f} s,"
                f" all variants {t['all_variants_s']:.2f} s, load {t['load_average']}"
            )
        print(
            f"{'':18s} load {run['load_s']:.1f} s, peak {run['peak_rss_first_answer_mb']:.0f} MiB to the first "
            f"answer, {run['running_rss_mb']:.0f} MiB running"
        )
    swag = result["bounded_swag"]
    print(
        f"SWAG, 3B widths, {swag['rows']} rows x {swag['row_tokens']} tokens: one forward "
        f"{swag['one_forward_s']:.2f} s, {swag['micro_batches']} micro-batches {swag['bounded_s']:.2f} s "
        f"({swag['speedup']:.2f}x, max |diff| {swag['max_abs_diff']:.1e})"
    )
    swag = result["bounded_swag_default"]
    for mode, arm in (("default allocator", swag["default_allocator"]), ("held memory", swag["held_memory"])):
        print(
            f"SWAG, shipped default, {swag['rows']} rows x {swag['row_tokens']} tokens, {mode}: one forward "
            f"{arm['one_forward_s']:.2f} s, {arm['micro_batches']} micro-batches {arm['bounded_s']:.2f} s "
            f"({arm['speedup']:.2f}x)"
        )
    print(
        f"SWAG, shipped default: one forward before {swag['one_forward_before_s']:.2f} s -> micro-batches, "
        f"memory held {swag['bounded_held_s']:.2f} s ({swag['speedup_vs_before']:.2f}x, "
        f"max |diff| {swag['max_abs_diff']:.1e})"
    )
    print_agreement(result["agreement"], list(result["precisions"]))


def print_agreement(agree: dict, precisions: list[str]) -> None:
    for precision in precisions:
        a = agree[precision]
        print(
            f"default, {agree['items']} items, {precision}: accuracy {a['accuracy']:.3f} vs fp32 "
            f"{a['accuracy_fp32']:.3f}, identical choices {a['same_choice']:.3f}"
        )
        for name, v in a["variants"].items():
            print(
                f"  {name:24s} accuracy {v['accuracy_fp32']:.3f} -> {v['accuracy']:.3f}, identical "
                f"{v['same_choice']:.3f}, max |score diff| {v['max_score_diff']:.3f}"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser, "serving")
    parser.add_argument("--json", dest="out", type=Path, default=argparse.SUPPRESS, help="the same as --out")
    parser.add_argument("--precisions", nargs="+", default=None, help="default: auto")
    parser.add_argument("--thread-counts", type=int, nargs="+", default=None, help="default: 1 2 (quick: 1)")
    parser.add_argument(
        "--base-dir", type=Path, default=None, help="random base to reuse (written if missing)"
    )
    parser.add_argument("--layers", type=int, default=2, help="layers of the bounded-forward model")
    parser.add_argument("--items", type=int, default=0, help="default items for agreement (300; quick 8)")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="the shipped default")
    parser.add_argument(
        "--agreement-only", action="store_true", help="only the shipped default under fp32 and each precision"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
