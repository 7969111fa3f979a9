"""Stage-1 pretraining of the small offline default base: a PaliGemma 2-architecture model from scratch.

Trains a byte-level tokenizer (synthetic data strings + standard-library English, see
:mod:`training.pretrain_data`), builds a small PaliGemma 2 model (SigLIP tower, projector, Gemma 2
decoder) and trains everything, unfrozen, on the synthetic generator's captions and open questions
(``caption en`` / ``answer en {question}`` -> text) with PaliGemma's prefix-LM loss on the suffix.
AdamW, linear warm-up then cosine decay, fp32, seeded. The result is written as float16 safetensors
(every file below 10 MB) with its processor, loadable by ``load_backbone(BackboneConfig(source=out))``.

Writes into ``--out``: the model and processor files, ``pretrain_log.jsonl`` (one JSON line per log
interval and evaluation), ``pretrain_summary.json`` (settings, sizes, timings, final metrics) and
``heldout_generations.jsonl`` (prefix, target and greedy output of every held-out item).

Example (the offline default; about 30 minutes on 2 CPU cores)::

    python -m training.pretrain --out assets/base --steps 2400 --batch-size 16 --image-size 96 --seed 0

Smoke run (a tiny model on one repeated batch, seconds)::

    python -m training.pretrain --out /tmp/base-smoke --smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PaliGemmaForConditionalGeneration

from training.pretrain_data import BatchMaker, batches, build_tokenizer, prefetch
from training.pretrain_eval import generation_exact_match, heldout_items, zero_shot_mc_accuracy
from vqa_demo.config import TINY_SIZE, ModelSize
from vqa_demo.data.jsonl import append_jsonl, write_jsonl
from vqa_demo.model.encoding import EncodedRows
from vqa_demo.model.families.paligemma.tiny import paligemma2_config, paligemma_processor

MAX_FILE_BYTES = 10 * 1000 * 1000


@dataclass
class PretrainConfig:
    """Everything one pretraining run depends on; saved in ``pretrain_summary.json``."""

    out: Path
    steps: int = 2400
    batch_size: int = 16
    image_size: int = 96
    patch_size: int = 8
    render_size: int = 0  # side the synthetic images are drawn at (0: image_size); the processor resizes
    vocab_size: int = 2048  # before the processor adds its 1152 <loc>/<seg> tokens
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine decays to this fraction of the peak
    warmup_steps: int = 100
    init_std: float = 0.0  # LM, embedding and projector init; 0: 1/sqrt(hidden_size)
    weight_decay: float = 0.05
    max_grad_norm: float = 1.0
    seed: int = 0
    pool_size: int = 0  # 0: fresh items every step; N: shuffled passes over N fixed items
    question_keep: float = 1.0  # share of open questions kept (captions are always kept)
    lettered_share: float = 0.0  # share of questions asked as lettered MC, answered with the letter
    log_every: int = 25
    eval_every: int = 0  # 0: evaluate only at the end
    eval_items: int = 250  # held-out generation items (questions and captions)
    eval_mc_items: int = 250  # held-out zero-shot MC items
    max_new_tokens: int = 64  # greedy decoding budget (captions run to ~45 tokens)
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    tokenizer_scenes: int = 3000
    english_chars: int = 1_000_000
    size: ModelSize = field(default_factory=ModelSize)
    smoke: bool = False

    @property
    def render_px(self) -> int:
        return self.render_size or self.image_size

    def shrink_for_smoke(self) -> PretrainConfig:
        """A tiny model on one repeated batch: finishes in seconds and its loss must fall."""
        return dataclasses.replace(
            self,
            steps=min(self.steps, 30),
            batch_size=4,
            image_size=32,
            patch_size=8,
            render_size=64,  # the pie chart renderer needs at least ~56 px
            vocab_size=400,
            learning_rate=3e-3,
            warmup_steps=3,
            pool_size=4,
            log_every=5,
            eval_every=0,
            eval_items=10,
            eval_mc_items=10,
            max_new_tokens=8,
            threads=1,  # a tiny model gains nothing from more threads, and they contend on a busy CPU
            tokenizer_scenes=100,
            english_chars=20_000,
            size=TINY_SIZE,
        )


def build_model(config: PretrainConfig, processor) -> PaliGemmaForConditionalGeneration:
    """A randomly initialised PaliGemma 2 model sized by ``config.size`` (seeded by ``config.seed``)."""
    model_config = paligemma2_config(
        processor,
        image_size=config.image_size,
        patch_size=config.patch_size,
        **dataclasses.asdict(config.size),
    )
    # Gemma's 0.02 suits widths in the thousands. At width 256 it leaves token embeddings (x sqrt(d))
    # and projected image features at ~0.3 RMS while Gemma 2's post-norms make every sublayer output
    # RMS 1: the residual stream forgets which token it holds and training idles in a long "blind" phase.
    model_config.text_config.initializer_range = config.init_std or config.size.hidden_size**-0.5
    torch.manual_seed(config.seed)
    return PaliGemmaForConditionalGeneration(model_config)


def suffix_loss(model: PaliGemmaForConditionalGeneration, pixel_values: torch.Tensor, rows: EncodedRows):
    """Mean next-token loss over the suffix tokens, through the model's own forward with ``labels``.

    Logits are kept only from the shortest prefix on (``logits_to_keep``), labels sliced to match:
    the image tokens never need vocabulary logits, which saves most of the LM head's cost.
    """
    start = int(rows.prefix_lengths.min()) - 1
    keep = torch.arange(start, rows.input_ids.shape[1])
    out = model(
        pixel_values=pixel_values,
        input_ids=rows.input_ids,
        attention_mask=rows.attention_mask,
        token_type_ids=rows.token_type_ids,
        labels=rows.labels[:, start:],
        logits_to_keep=keep,
    )
    return out.loss


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms, biases or position tables' 1-D params)."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-8)


def save_base(model: PaliGemmaForConditionalGeneration, processor, out: Path) -> list[Path]:
    """Write float16 safetensors (sharded below 10 MB per file) and the processor; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("model*.safetensors*"):
        stale.unlink()
    half = PaliGemmaForConditionalGeneration(model.config)
    half.load_state_dict(model.state_dict())
    half.to(torch.float16).save_pretrained(out, safe_serialization=True, max_shard_size="9MB")
    processor.save_pretrained(out)
    files = sorted(p for p in out.iterdir() if p.is_file())
    too_big = [
        f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in files if p.stat().st_size >= MAX_FILE_BYTES
    ]
    if too_big:
        raise RuntimeError(f"files at or above 10 MB in {out}: {', '.join(too_big)}; use a smaller model")
    return files


class JsonlLog:
    """Appends one JSON object per line (the file is started afresh for each run)."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("")

    def write(self, record: dict) -> None:
        append_jsonl(self.path, record)


def evaluate(model, maker: BatchMaker, config: PretrainConfig, final: bool) -> tuple[dict, list[dict]]:
    """Held-out generation exact match and zero-shot MC accuracy (also on 224 px renders when final)."""
    items = heldout_items(config.eval_items, config.seed, config.render_px)
    generation, records = generation_exact_match(model, maker, items, max_new_tokens=config.max_new_tokens)
    metrics = {"exact_match": generation}
    metrics["zero_shot_mc"] = zero_shot_mc_accuracy(
        model, maker, config.eval_mc_items, config.seed, config.render_px
    )
    if final and config.render_px != 224:
        metrics["zero_shot_mc_render224"] = zero_shot_mc_accuracy(
            model, maker, config.eval_mc_items, config.seed, render_size=224
        )
    return metrics, records


def train(model, maker: BatchMaker, config: PretrainConfig, log: JsonlLog) -> list[float]:
    """The training loop; returns the loss of every step."""
    optimizer = make_optimizer(model, config)
    data = prefetch(
        batches(
            maker,
            config.batch_size,
            config.seed,
            config.render_px,
            config.pool_size,
            config.question_keep,
            config.lettered_share,
        )
    )
    losses: list[float] = []
    window_losses: list[float] = []
    window_start = time.perf_counter()
    model.train()
    progress = tqdm(range(config.steps), desc="pretrain", unit="step", mininterval=2.0)
    for step in progress:
        lr = config.learning_rate * lr_factor(step, config.warmup_steps, config.steps, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixel_values, rows = next(data)
        loss = suffix_loss(model, pixel_values, rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        window_losses.append(losses[-1])
        progress.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}", refresh=False)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            elapsed = time.perf_counter() - window_start
            log.write(
                {
                    "step": done,
                    "loss": round(sum(window_losses) / len(window_losses), 4),
                    "lr": lr,
                    "samples_per_s": round(len(window_losses) * config.batch_size / elapsed, 2),
                }
            )
            window_losses, window_start = [], time.perf_counter()
        if config.eval_every and done % config.eval_every == 0 and done < config.steps:
            metrics, _ = evaluate(model, maker, config, final=False)
            log.write({"step": done, "eval": metrics})
            progress.write(f"step {done}: {json.dumps(metrics)}")
            window_start = time.perf_counter()
    data.close()
    return losses


def main(config: PretrainConfig) -> dict:
    """Run stage-1 pretraining into ``config.out``; returns the summary (also saved as JSON)."""
    if config.smoke:
        config = config.shrink_for_smoke()
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config)
    finally:
        torch.set_num_threads(threads_before)


def _run(config: PretrainConfig) -> dict:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(out / "pretrain_log.jsonl")
    started = time.perf_counter()

    tokenizer = build_tokenizer(config.vocab_size, config.seed, config.tokenizer_scenes, config.english_chars)
    processor = paligemma_processor(tokenizer, config.image_size, config.patch_size)
    maker = BatchMaker(processor)
    model = build_model(config, processor)
    num_params = sum(p.numel() for p in model.parameters())
    vision_params = sum(p.numel() for p in model.model.vision_tower.parameters())
    print(
        f"model: {num_params / 1e6:.2f} M parameters ({vision_params / 1e6:.2f} M vision), "
        f"{processor.image_seq_length} image tokens, vocabulary {model.config.text_config.vocab_size}"
    )

    train_started = time.perf_counter()
    losses = train(model, maker, config, log)
    train_seconds = time.perf_counter() - train_started

    model.eval()
    metrics, records = evaluate(model, maker, config, final=True)
    log.write({"step": config.steps, "final_eval": metrics})
    write_jsonl(out / "heldout_generations.jsonl", records)
    for record in records[:10]:
        print(f"{record['prefix']!r} -> target {record['target']!r}, generated {record['generated']!r}")
    print(f"held-out exact match: {json.dumps(metrics['exact_match'])}")
    print(f"zero-shot MC accuracy: {json.dumps(metrics['zero_shot_mc'])}")

    files = save_base(model, processor, out)
    summary = {
        "config": {**dataclasses.asdict(config), "out": str(config.out)},
        "num_parameters": num_params,
        "vision_parameters": vision_params,
        "image_seq_length": int(processor.image_seq_length),
        "vocab_size": int(model.config.text_config.vocab_size),
        "train_seconds": round(train_seconds, 1),
        "train_samples_per_s": round(config.steps * config.batch_size / train_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 1),
        "first_losses": losses[:5],
        "last_losses": losses[-5:],
        "metrics": metrics,
        "files": {p.name: p.stat().st_size for p in files},
    }
    (out / "pretrain_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"saved the base to {out} ({sum(summary['files'].values()) / 1e6:.1f} MB) in {summary['total_seconds']} s"
    )
    summary["losses"] = losses
    return summary


def parse_args(argv: list[str] | None = None) -> PretrainConfig:
    defaults = PretrainConfig(out=Path("assets/base"))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the base model and logs")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="items per step")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="model input side, px")
    parser.add_argument("--render-size", type=int, default=0, help="draw images at this side (0: image size)")
    parser.add_argument("--patch-size", type=int, default=defaults.patch_size, help="SigLIP patch side, px")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size, help="BPE vocabulary")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, help="linear warm-up")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW decay")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seeds data, init and tokenizer")
    parser.add_argument("--pool-size", type=int, default=0, help="0: fresh items; N: reuse N items")
    parser.add_argument(
        "--question-keep", type=float, default=defaults.question_keep, help="share of questions kept"
    )
    parser.add_argument(
        "--lettered-share",
        type=float,
        default=defaults.lettered_share,
        help="share of questions shown with lettered options and answered with the letter (MULTI_CLASS skill)",
    )
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps per log line")
    parser.add_argument("--eval-every", type=int, default=0, help="steps per held-out evaluation (0: end)")
    parser.add_argument("--eval-items", type=int, default=defaults.eval_items, help="held-out items")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    for name, value in dataclasses.asdict(defaults.size).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=value, help=f"model size: {name}")
    parser.add_argument(
        "--smoke",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="tiny model, few steps, one repeated batch",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be at least 1")
    if args.image_size % args.patch_size:
        parser.error(f"--image-size {args.image_size} must be a multiple of --patch-size {args.patch_size}")
    size = ModelSize(**{name: getattr(args, name) for name in dataclasses.asdict(defaults.size)})
    return PretrainConfig(
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        patch_size=args.patch_size,
        render_size=args.render_size,
        vocab_size=args.vocab_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        seed=args.seed,
        pool_size=args.pool_size,
        question_keep=args.question_keep,
        lettered_share=args.lettered_share,
        log_every=args.log_every,
        eval_every=args.eval_every,
        eval_items=args.eval_items,
        eval_mc_items=args.eval_items,
        threads=args.threads,
        size=size,
        smoke=args.smoke,
    )


if __name__ == "__main__":
    main(parse_args())
