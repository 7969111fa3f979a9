"""Fine-tune one MC-VQA variant (LoRA + head) on a PaliGemma base.

Examples::

    # the offline default base, SWAG with attentive pooling
    python -m training.train --variant swag --pooling attentive --data data/synth --base assets/base --out runs/swag-att
    # one minute on a CPU, tiny random model, synthetic data made on the fly
    python -m training.train --variant multi_class --pooling last_token --base tiny --out runs/smoke --smoke
    # real PaliGemma 2 on a GPU, 4-bit, several GPUs through accelerate
    accelerate launch -m training.train --variant cond_gen --data data/mcvqa --base google/paligemma2-3b-pt-448 \\
        --quantization 4bit --gradient-checkpointing --batch-size 4 --grad-accum 4 --out runs/pg2-cond-gen

``--data`` holds ``train/`` and ``validation/`` imagefolder splits. The run directory gets
``metrics.jsonl`` (loss every ``--log-every`` steps, validation accuracy every ``--eval-every``),
``best/`` (the variant checkpoint with the best validation accuracy), ``last/`` and ``state/`` (for
``--resume``). Validation goes through the same :class:`~vqa_demo.predictor.Predictor` as the app.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from training.resume import load_state, save_state
from vqa_demo.backbone import add_lora, load_backbone
from vqa_demo.checkpoints import save_variant
from vqa_demo.config import (
    BackboneConfig,
    HeadConfig,
    LoraSettings,
    PromptConfig,
    RunConfig,
    TrainSettings,
    default_prompt_style,
)
from vqa_demo.data import MCSplit, load_split
from vqa_demo.encoding import RowEncoder
from vqa_demo.evaluation import evaluate
from vqa_demo.forward import image_features
from vqa_demo.heads import build_head
from vqa_demo.matching import SentenceMatcher
from vqa_demo.predictor import Predictor, Variant
from vqa_demo.scoring import variant_loss


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TrainConfig:
    variant: str = "cond_gen"
    pooling: str | None = None
    data: str | None = None
    base: str = "assets/base"
    out: str = "runs/train"
    num_options: int = 4
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    head_lr: float | None = None
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    prompt_style: str | None = None  # None: the base's own (choose_from for mix checkpoints, else default)
    max_text_tokens: int = 192
    eval_every: int = 50
    log_every: int = 10
    eval_batch_size: int = 32
    max_train: int | None = None
    max_val: int | None = None
    seed: int = 0
    quantization: str | None = None
    gradient_checkpointing: bool = False
    train_vision: bool = False  # LoRA on the SigLIP tower + projector too (features no longer shared)
    cache_features: bool = True
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids oversubscription on a busy small CPU
    resume: bool = False
    smoke: bool = False
    stop_after_steps: int | None = None  # testing aid: exit early as if killed

    def run_config(self) -> RunConfig:
        return RunConfig(
            head=HeadConfig(head=self.variant, pooling=self.pooling, num_options=self.num_options),
            backbone=BackboneConfig(source=self.base, quantization=self.quantization),
            prompt=PromptConfig(
                style=self.prompt_style or default_prompt_style(self.base),
                max_text_tokens=self.max_text_tokens,
            ),
            lora=LoraSettings(
                r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout, vision=self.train_vision
            ),
            train=TrainSettings(
                learning_rate=self.lr,
                epochs=self.epochs,
                batch_size=self.batch_size,
                grad_accum=self.grad_accum,
                warmup_ratio=self.warmup_ratio,
                weight_decay=self.weight_decay,
                label_smoothing=self.label_smoothing,
                seed=self.seed,
                freeze_vision=not self.train_vision,
            ),
        )


def apply_smoke(cfg: TrainConfig) -> TrainConfig:
    """big_vision's "runlocal": tiny data and few steps, same code path."""
    cfg.max_train, cfg.max_val = min(cfg.max_train or 32, 32), min(cfg.max_val or 16, 16)
    cfg.max_steps = min(cfg.max_steps or 8, 8)
    cfg.batch_size, cfg.eval_every, cfg.log_every = min(cfg.batch_size, 4), 4, 2
    return cfg


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def smoke_data(out: Path, seed: int) -> Path:
    """Generate a small synthetic train/validation pair for --smoke runs without --data."""
    from training.synthetic import generate_split

    root = out / "smoke-data"
    generate_split(root / "train", 32, seed, "train", image_size=64)
    generate_split(root / "validation", 16, seed + 1, "validation", image_size=64)
    return root


class VariantModule(nn.Module):
    """LoRA-adapted PaliGemma + head as one module, so accelerate/DDP see every trainable parameter.

    ``forward(inputs, questions, options, answers) -> loss`` (scalar), where ``inputs`` are image
    features ``float[B,N,D]``, or pixels ``float[B,3,H,W]`` when the vision tower trains too.
    """

    def __init__(self, backbone, head: nn.Module | None, run_config: RunConfig, encoder: RowEncoder):
        super().__init__()
        self.model = backbone.model
        self.head = head
        self.backbone = backbone
        self.run_config = run_config
        self.encoder = encoder

    def forward(self, inputs, questions, options, answers, label_smoothing: float = 0.0):
        cfg = self.run_config
        features = image_features(self.backbone.core, inputs, grad=True) if cfg.lora.vision else inputs
        return variant_loss(
            self.backbone.core, self.head, cfg.head, self.encoder, questions, options, answers, features,
            cfg.prompt.style, label_smoothing,
        )  # fmt: skip


class FeatureCache:
    """Per-example model inputs of a split, computed once.

    With a frozen tower these are the image features ``float[N, D]`` (they never change, so the
    tower runs once per image for the whole run); with ``--train-vision`` they are the pixel values,
    and the tower runs inside the module's forward with gradients.
    """

    def __init__(
        self, backbone, split: MCSplit, enabled: bool, pixels_only: bool = False, batch_size: int = 32
    ):
        self.backbone, self.split, self.enabled, self.pixels_only = backbone, split, enabled, pixels_only
        self.store: dict[int, torch.Tensor] = {}
        self.batch_size = batch_size

    def get(self, indices: list[int]) -> torch.Tensor:
        """``float[B, N, D]`` features (or ``float[B, 3, H, W]`` pixels) for the examples at ``indices``."""
        missing = [i for i in indices if i not in self.store]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            images = [self.split[i].load_image() for i in chunk]
            pixels = self.backbone.processor.image_processor(images, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.backbone.device)
            values = pixels if self.pixels_only else image_features(self.backbone.core, pixels)
            for i, value in zip(chunk, values):
                self.store[i] = value
        out = torch.stack([self.store[i] for i in indices])
        if not self.enabled:
            self.store.clear()
        return out


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch; a pure function of (seed, epoch), so resume replays it."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def validate(backbone, head, run_config, adapter: str, split: MCSplit, matcher, batch_size: int) -> dict:
    """Validation accuracy through the shared predictor (no teacher forcing)."""
    name = run_config.variant
    predictor = Predictor(
        backbone, [Variant(name, run_config, head, adapter)], matcher=matcher, batch_size=batch_size
    )
    backbone.model.eval()
    if head is not None:
        head.eval()
    result = evaluate(predictor, split, [name], batch_size, progress=False)
    backbone.model.train()
    if head is not None:
        head.train()
    return result.metrics["variants"][name]["accuracy"]


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def main(cfg: TrainConfig) -> dict:
    """Train one variant; returns ``{"best_accuracy", "best_step", "steps", "seconds", "out"}``."""
    from accelerate import Accelerator

    if cfg.smoke:
        cfg = apply_smoke(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(cfg.data) if cfg.data else smoke_data(out, cfg.seed) if cfg.smoke else None
    if data is None:
        raise SystemExit("--data is required (a folder with train/ and validation/ splits), or use --smoke")
    train_split, val_split = load_split(data / "train"), load_split(data / "validation")
    if cfg.max_train:
        train_split.examples = train_split.examples[: cfg.max_train]
    if cfg.max_val:
        val_split.examples = val_split.examples[: cfg.max_val]

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    run_config = cfg.run_config()
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum)
    backbone = load_backbone(BackboneConfig(source=cfg.base, quantization=cfg.quantization))
    if cfg.quantization:
        from peft import prepare_model_for_kbit_training

        prepare_model_for_kbit_training(backbone.core, use_gradient_checkpointing=cfg.gradient_checkpointing)
    adapter = run_config.variant.replace("-", "_")
    add_lora(backbone, run_config.lora, adapter_name=adapter)
    if cfg.gradient_checkpointing:
        backbone.core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        backbone.core.enable_input_require_grads()
    head = build_head(run_config.head, backbone.hidden_size)
    encoder = RowEncoder(
        backbone.tokenizer, backbone.processor.image_token_id, backbone.image_seq_length,
        max_text_tokens=run_config.prompt.max_text_tokens,
    )  # fmt: skip
    module = VariantModule(backbone, head, run_config, encoder).to(backbone.device)

    head_lr = cfg.head_lr or cfg.lr
    lora_params = [p for p in backbone.model.parameters() if p.requires_grad]
    groups = [{"params": lora_params, "lr": cfg.lr}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "lr": head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_split) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, int(steps_per_epoch * cfg.epochs))
    warmup = max(1, int(total_steps * cfg.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, total_steps, warmup))
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)

    metrics_path = out / "metrics.jsonl"
    step, best = 0, {"accuracy": -1.0, "step": None}
    if cfg.resume and (out / "state").is_dir():
        step, best = load_state(out / "state", backbone, head, optimizer, scheduler, adapter)
        accelerator.print(f"resumed from step {step}")
    else:
        metrics_path.unlink(missing_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    matcher = SentenceMatcher()
    features = FeatureCache(backbone, train_split, cfg.cache_features, pixels_only=cfg.train_vision)
    micro = cfg.batch_size
    batches_per_epoch = math.ceil(len(train_split) / micro)
    start_time = time.perf_counter()
    losses: list[float] = []
    module.train()
    bar = tqdm(
        total=total_steps, initial=step, desc=run_config.variant, disable=not accelerator.is_main_process
    )
    micro_index = step * cfg.grad_accum
    while step < total_steps:
        epoch, position = divmod(micro_index, batches_per_epoch)
        order = epoch_order(len(train_split), cfg.seed, epoch)
        indices = order[position * micro : (position + 1) * micro]
        examples = [train_split[i] for i in indices]
        with accelerator.accumulate(module):
            loss = module(
                features.get(indices),
                [ex.question for ex in examples],
                [list(ex.options) for ex in examples],
                [ex.answer_index for ex in examples],
                cfg.label_smoothing,
            )
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the loss became {loss.item()} at step {step + 1} (epoch {epoch}); lower --lr "
                    f"(now {cfg.lr}) or add --label-smoothing, then restart or --resume from the last good state"
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        micro_index += 1
        losses.append(loss.item())
        if not accelerator.sync_gradients:
            continue
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-cfg.grad_accum * 5 :]):.3f}", best=f"{best['accuracy']:.3f}")
        record = None
        if step % cfg.log_every == 0 or step == total_steps:
            record = {
                "step": step,
                "epoch": round(micro_index / batches_per_epoch, 3),
                "loss": float(np.mean(losses)),
            }
            record["lr"] = scheduler.get_last_lr()[0]
            losses = []
        if step % cfg.eval_every == 0 or step == total_steps:
            accuracy = validate(backbone, head, run_config, adapter, val_split, matcher, cfg.eval_batch_size)
            record = record or {"step": step, "epoch": round(micro_index / batches_per_epoch, 3)}
            record.update(
                accuracy=accuracy["accuracy"], accuracy_low=accuracy["low"], accuracy_high=accuracy["high"]
            )
            if accuracy["accuracy"] > best["accuracy"]:
                best = {"accuracy": accuracy["accuracy"], "step": step}
                run_config.metrics = {
                    "val_accuracy": accuracy,
                    "step": step,
                    "split": str(data / "validation"),
                }
                save_variant(out / "best", run_config, backbone, head, adapter)
        if record is not None:
            record["seconds"] = round(time.perf_counter() - start_time, 2)
            append_jsonl(metrics_path, record)
        if step % cfg.eval_every == 0 or step == total_steps:
            save_state(out / "state", backbone, head, optimizer, scheduler, adapter, step, best)
        if cfg.stop_after_steps and step >= cfg.stop_after_steps and step < total_steps:
            bar.close()
            return {"stopped_at": step, "out": str(out)}
    bar.close()
    run_config.metrics = {"final_step": step, "best": best}
    save_variant(out / "last", run_config, backbone, head, adapter)
    seconds = time.perf_counter() - start_time
    accelerator.print(
        f"best validation accuracy {best['accuracy']:.4f} at step {best['step']}; {seconds:.0f} s"
    )
    return {
        "best_accuracy": best["accuracy"],
        "best_step": best["step"],
        "steps": step,
        "seconds": seconds,
        "out": str(out),
    }


def parse_args(argv=None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=value)
        else:
            kind = type(value) if value is not None else (float if name in {"head_lr"} else str)
            if name in {"max_steps", "max_train", "max_val", "stop_after_steps"}:
                kind = int
            parser.add_argument(flag, type=kind, default=value)
    args = parser.parse_args(argv)
    return TrainConfig(**vars(args))


if __name__ == "__main__":
    main(parse_args())
