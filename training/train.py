"""Fine-tune one MC-VQA variant (LoRA + head) on a PaliGemma base.

Examples::

    # the offline default base, SWAG with attentive pooling
    python -m training.train --variant swag --pooling attentive --data data/synth --base assets/base --out runs/swag-att
    # one minute on a CPU, tiny random model, synthetic data made on the fly
    python -m training.train --variant multi_class --pooling last_token --base tiny --out runs/smoke --smoke
    # real PaliGemma 2 on 4 GPUs through accelerate, 4-bit: global batch 4 x 4 x 2 = 32
    accelerate launch --num_processes 4 -m training.train --variant cond_gen --data data/mcvqa \\
        --base google/paligemma2-3b-pt-448 --quantization 4bit --gradient-checkpointing \\
        --batch-size 4 --grad-accum 2 --report-to tensorboard --out runs/pg2-cond-gen

``--data`` holds ``train`` and ``validation`` splits: an imagefolder, a ``datasets`` ``save_to_disk`` folder,
parquet/JSONL files or a hub dataset id, in this project's columns or a known schema (A-OKVQA, ScienceQA,
AI2D, MMBench; ``--columns`` maps others): see :mod:`vqa_demo.data.sources`. ``best/`` is chosen on a
*selection split* (:mod:`training.selection`): ``--selection-split DIR``, or by default a seeded
slice of ``--selection-size`` examples (at most a fifth) carved from train before training; the
validation split is never used to choose, so its accuracy (``training.compare``) is held out. The run
directory gets ``metrics.jsonl`` (loss every ``--log-every`` steps, selection accuracy every
``--eval-every``), ``selection.json`` (which questions the selection split holds), ``best/`` (the
checkpoint with the best selection accuracy) with its per-example selection predictions in
``best_selection/``, ``last/`` and ``state/`` (for ``--resume``). Evaluation goes through the same
:class:`~vqa_demo.predictor.Predictor` as the app.

Several processes (``accelerate launch --num_processes N``): ``--batch-size`` is per process, and one
optimizer step sees the global batch ``batch_size x N x grad_accum``. Each epoch is shuffled once with
the seed, whatever N is; process ``r`` takes rows ``[r*b, (r+1)*b)`` of each global micro-batch of
``b*N`` rows (a short last one leaves later processes fewer rows or none). The loss of an optimizer
step is the sum of its terms (gold answer tokens for cond_gen, examples for the classifier heads)
over all its micro-batches and processes, divided by their global count, counted before the backward
(:func:`training.steps.plan_step`): N processes with batch ``b`` and accumulation ``a`` train
like one process with batch ``N*b*a``. Only the main process writes files; validation splits its
batches over the processes and gathers them.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from training.distributed import RunWriter
from training.resume import load_state, save_state, seconds_spent, trim_metrics
from training.selection import SELECTION_SIZE, selection_for
from training.steps import FeatureCache, VariantModule, plan_step, train_micro_batch
from vqa_demo.checkpoints import adapter_name, save_variant
from vqa_demo.cli_errors import CliParser, HelpFormatter, UsageError, require_cuda_for, run_cli
from vqa_demo.config import (
    COND_GEN_SCORINGS,
    HEAD_NAMES,
    POOLING_NAMES,
    PROMPT_STYLES,
    QUANTIZATIONS,
    BackboneConfig,
    HeadConfig,
    LoraSettings,
    PromptConfig,
    RunConfig,
    TrainSettings,
    default_prompt_style,
)
from vqa_demo.data.rows import DataError
from vqa_demo.data.sources import load_data_split
from vqa_demo.data.splits import MCSplit
from vqa_demo.evaluation.runner import EvaluationResult, evaluate, write_evaluation
from vqa_demo.evaluation.sharding import Shard
from vqa_demo.model.backbone import add_lora, load_backbone
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.model.family import LORA_SCOPES
from vqa_demo.model.heads import trainable_parameters
from vqa_demo.model.matching import SentenceMatcher
from vqa_demo.model.strategies import build_head, strategy_for, training_cuts
from vqa_demo.predictor import Predictor, Variant
from vqa_demo.settings import add_arguments, setting

REPORT_TO = ("none", "tensorboard", "wandb")


# The defaults a run config shares with a training run come from RunConfig's parts, so a flag's
# default and the run_config.json it is saved into cannot disagree.
_RUN_DEFAULTS = RunConfig()


@dataclass
class TrainConfig:
    """The training CLI's flat flags, one :func:`~vqa_demo.settings.setting` each: the run config's fields
    (defaults read from :class:`RunConfig`) plus what only a training run needs (data, output, schedule,
    logging, testing aids). ``--help`` is generated from these declarations."""

    variant: str = setting(_RUN_DEFAULTS.head.head, "answer head", choices=HEAD_NAMES)
    pooling: str | None = setting(
        _RUN_DEFAULTS.head.pooling,
        "pooling for multi_class and swag",
        choices=POOLING_NAMES,
        unset="none (cond_gen has none)",
    )
    data: str | None = setting(
        None,
        "train + validation data: an imagefolder, a datasets save_to_disk folder, parquet/JSONL files or a "
        "hub dataset id (see vqa_demo.data.sources)",
        unset="synthetic data made on the fly with --smoke",
    )
    columns: str | None = setting(
        None,
        "column roles for an unrecognised schema: question=...,options=...(a|b|c: one column per "
        "option),answer=...[,image=...,hint=...,id=...]",
        unset="recognised from the columns",
    )
    base: str = setting(
        _RUN_DEFAULTS.backbone.source,
        "base model: a local folder, a hub id, a preset name, or tiny / tiny:<family>",
    )
    out: str = setting("runs/train", "run folder")
    num_options: int = setting(_RUN_DEFAULTS.head.num_options, "options per question (K)")
    epochs: float = setting(_RUN_DEFAULTS.train.epochs, "passes over the training split")
    max_steps: int | None = setting(None, "optimizer steps", unset="from --epochs")
    batch_size: int = setting(_RUN_DEFAULTS.train.batch_size, "examples per micro-batch")
    grad_accum: int = setting(_RUN_DEFAULTS.train.grad_accum, "micro-batches per optimizer step")
    lr: float = setting(_RUN_DEFAULTS.train.learning_rate, "peak learning rate (cosine schedule)")
    head_lr: float | None = setting(None, "learning rate of the answer head", unset="--lr")
    warmup_ratio: float = setting(_RUN_DEFAULTS.train.warmup_ratio, "share of the steps spent warming up")
    weight_decay: float = setting(_RUN_DEFAULTS.train.weight_decay, "AdamW weight decay")
    label_smoothing: float = setting(_RUN_DEFAULTS.train.label_smoothing, "label smoothing of the loss")
    lora_r: int = setting(_RUN_DEFAULTS.lora.r, "LoRA rank")
    lora_alpha: int = setting(_RUN_DEFAULTS.lora.alpha, "LoRA alpha")
    lora_dropout: float = setting(_RUN_DEFAULTS.lora.dropout, "LoRA dropout")
    # None: training.compare then picks the rule with the best selection-split accuracy
    cond_gen_scoring: str | None = setting(
        None,
        "COND_GEN's decision rule",
        choices=COND_GEN_SCORINGS,
        unset=f"{_RUN_DEFAULTS.head.cond_gen_scoring}; training.compare picks the best on the selection split",
    )
    prompt_style: str | None = setting(
        None, "prompt layout", choices=PROMPT_STYLES, unset="the base's own (choose_from for mix checkpoints)"
    )
    prompt_separator: str = setting(
        _RUN_DEFAULTS.prompt.separator,
        "between prefix and answer; saved in run_config.json, used by prediction",
    )
    max_text_tokens: int = setting(
        _RUN_DEFAULTS.prompt.max_text_tokens, "text tokens per row after the image"
    )
    eval_every: int = setting(50, "steps between validations")
    log_every: int = setting(10, "steps between log lines")
    eval_batch_size: int = setting(32, "examples per validation forward")
    max_train: int | None = setting(None, "use at most this many training examples", unset="all")
    max_val: int | None = setting(None, "use at most this many validation examples", unset="all")
    selection_split: str | None = setting(
        None, "the split best/ is chosen on", unset="carved from train (--selection-size)"
    )
    selection_size: int = setting(SELECTION_SIZE, "examples carved from train when no --selection-split")
    seed: int = setting(_RUN_DEFAULTS.train.seed, "random seed")
    quantization: str | None = setting(
        _RUN_DEFAULTS.backbone.quantization,
        "load the base in 4 or 8 bit (CUDA + bitsandbytes only)",
        choices=tuple(q for q in QUANTIZATIONS if q),
        unset="none",
    )
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass (less memory)")
    # image features are then no longer shared between variants
    train_vision: bool = setting(_RUN_DEFAULTS.lora.vision, "LoRA on the SigLIP tower and projector too")
    cache_features: bool = setting(True, "compute each image's features once (frozen vision tower)")
    threads: int = setting(
        0, "torch CPU threads (0: torch's default; 1 avoids oversubscription on a busy CPU)"
    )
    resume: bool = setting(False, "continue from the run folder's last state")
    smoke: bool = setting(False, "tiny data and a few steps (with no --data: synthetic data made on the fly)")
    report_to: str = setting("none", "experiment tracker (accelerate's)", choices=REPORT_TO)
    log_examples: bool = setting(False, "debug: examples.jsonl lists the example ids each process trained on")
    stop_after_steps: int | None = setting(None, "testing aid: stop early as if killed", unset="never")

    def run_config(self) -> RunConfig:
        head = HeadConfig(
            head=self.variant,
            pooling=self.pooling,
            num_options=self.num_options,
            cond_gen_scoring=self.cond_gen_scoring or _RUN_DEFAULTS.head.cond_gen_scoring,
        )
        head.check_trainable()
        return RunConfig(
            head=head,
            backbone=BackboneConfig(source=self.base, quantization=self.quantization),
            prompt=PromptConfig(
                style=self.prompt_style or default_prompt_style(self.base),
                separator=self.prompt_separator,
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


def report_cut_examples(run_config: RunConfig, encoder: RowEncoder, split: MCSplit) -> list[int]:
    """Warn, naming the count and the first images, when training rows would lose text to a token budget."""
    examples = list(split)
    cut = training_cuts(
        run_config.head,
        encoder,
        [ex.question for ex in examples],
        [list(ex.options) for ex in examples],
        [ex.answer_index for ex in examples],
        run_config.prompt.style,
    )
    if cut:
        names = ", ".join(examples[i].file_name or examples[i].id for i in cut[:5])
        warnings.warn(
            f"{len(cut)} of {len(examples)} training examples are cut to fit the token budgets ({names}"
            f"{', ...' if len(cut) > 5 else ''}) and train on shortened text: shorten their questions or "
            f"answers, or raise --max-text-tokens (now {run_config.prompt.max_text_tokens}) for prompts",
            stacklevel=2,
        )
    return cut


def smoke_data(out: Path, seed: int) -> Path:
    """Generate a small synthetic train/validation pair for --smoke runs without --data."""
    from training.synthetic import generate_split

    root = Path(out) / "smoke-data"
    generate_split(root / "train", 32, seed, "train", image_size=64)
    generate_split(root / "validation", 16, seed + 1, "validation", image_size=64)
    return root


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def validate(
    backbone, head, run_config, adapter: str, split: MCSplit, matcher, batch_size: int, shard: Shard
) -> EvaluationResult:
    """Validation through the shared predictor (no teacher forcing), split over the processes."""
    name = run_config.variant
    predictor = Predictor(
        backbone, [Variant(name, run_config, head, adapter)], matcher=matcher, batch_size=batch_size
    )
    backbone.model.eval()
    if head is not None:
        head.eval()
    result = evaluate(predictor, split, [name], batch_size, progress=False, shard=shard)
    backbone.model.train()
    if head is not None:
        head.train()
    return result


def load_data(cfg: TrainConfig, accelerator, out: Path) -> tuple[Path, MCSplit, MCSplit, dict]:
    """``(data dir, training examples, selection split, its description)``; smoke data is generated
    by the main process. The validation split is not loaded: a training run never looks at it."""
    if cfg.data:
        data = Path(cfg.data)
    elif cfg.smoke:
        if accelerator.is_main_process:
            smoke_data(out, cfg.seed)
        accelerator.wait_for_everyone()
        data = out / "smoke-data"
    else:
        raise SystemExit("--data is required (a folder with train/ and validation/ splits), or use --smoke")
    return (data, *training_splits(cfg, data))


def training_splits(cfg: TrainConfig, data: str | Path) -> tuple[MCSplit, MCSplit, dict]:
    """``(training examples, selection split, its description)`` of ``data`` under ``cfg``:
    ``--max-train`` first, then the selection split (:func:`training.selection.selection_for`),
    which ``--max-val`` caps like every split evaluated. The same for every variant of a comparison."""
    train_split = load_data_split(data, "train", columns=cfg.columns, single_split=False)
    unlabeled = sum(example.answer_index is None for example in train_split.examples)
    if unlabeled:
        raise DataError(
            f"--data {data}: {unlabeled} of {len(train_split)} training rows have no answer; training needs "
            "every row's gold option (an answer column, or map one with --columns answer=...)"
        )
    if cfg.max_train:
        train_split.examples = train_split.examples[: cfg.max_train]
    train_split, selection, description = selection_for(
        train_split, cfg.selection_split, cfg.selection_size, cfg.seed
    )
    if cfg.max_val and len(selection) > cfg.max_val:
        selection.examples = selection.examples[: cfg.max_val]
        description = {**description, "n": len(selection)}
        if "ids" in description:
            description["ids"] = [ex.id for ex in selection]
    return train_split, selection, description


def build_model(cfg: TrainConfig, run_config: RunConfig, device: torch.device):
    """``(backbone, head, module, adapter name)`` on this process's device."""
    backbone_cfg = BackboneConfig(source=cfg.base, quantization=cfg.quantization, device=str(device))
    backbone = load_backbone(backbone_cfg)
    refusal = backbone.family.refusal(strategy_for(run_config.head))
    if refusal:
        raise SystemExit(refusal)
    if cfg.quantization:
        from peft import prepare_model_for_kbit_training

        prepare_model_for_kbit_training(backbone.core, use_gradient_checkpointing=cfg.gradient_checkpointing)
    adapter = adapter_name(run_config.variant)
    add_lora(backbone, run_config.lora, adapter_name=adapter)
    if cfg.gradient_checkpointing:
        backbone.core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        backbone.core.enable_input_require_grads()
    head = build_head(run_config.head, backbone.hidden_size)
    encoder = backbone.row_encoder(run_config.prompt.separator, run_config.prompt.max_text_tokens)
    module = VariantModule(backbone, head, run_config, encoder).to(backbone.device)
    return backbone, head, module, adapter


def build_optimizer(cfg: TrainConfig, backbone, head, num_examples: int, num_processes: int):
    """``(optimizer, scheduler, total optimizer steps)``; steps count global batches."""
    lora_params = [p for p in backbone.model.parameters() if p.requires_grad]
    groups = [{"params": lora_params, "lr": cfg.lr}]
    if head is not None:
        groups.append({"params": trainable_parameters(head), "lr": cfg.head_lr or cfg.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(num_examples / (cfg.batch_size * num_processes * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, int(steps_per_epoch * cfg.epochs))
    warmup = max(1, int(total_steps * cfg.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, total_steps, warmup))
    return optimizer, scheduler, total_steps


@dataclass
class Run:
    """The pieces of one training run, as built by :func:`start_run` on every process."""

    cfg: TrainConfig
    accelerator: Any
    writer: RunWriter
    shard: Shard
    data: Path
    train_split: MCSplit
    selection_split: MCSplit
    selection: dict  # the selection split's description (training.selection.selection_for)
    run_config: RunConfig
    backbone: Any
    head: nn.Module | None
    module: nn.Module
    adapter: str
    optimizer: Any
    scheduler: Any
    total_steps: int

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    def restore(self) -> tuple[int, dict]:
        """``(step, best)``: from ``state/`` with ``--resume``, else a fresh start."""
        if self.cfg.resume and (self.out / "state").is_dir():
            step, best = load_state(
                self.out / "state", self.backbone, self.head, self.optimizer, self.scheduler, self.adapter
            )
            self.writer.save(trim_metrics, self.out / "metrics.jsonl", step)
            self.accelerator.print(f"resumed from step {step}")
            return step, best
        self.writer.fresh_start(asdict(self.cfg))
        return 0, {"accuracy": -1.0, "step": None}

    def validate(self, matcher, step: int, best: dict, record: dict) -> dict:
        """Evaluate on the selection split, add the accuracy to ``record``, save ``best/`` if it
        improved; returns the best."""
        result = validate(
            self.backbone, self.head, self.run_config, self.adapter, self.selection_split, matcher,
            self.cfg.eval_batch_size, self.shard,
        )  # fmt: skip
        accuracy = result.metrics["variants"][self.run_config.variant]["accuracy"]
        record.update(
            accuracy=accuracy["accuracy"], accuracy_low=accuracy["low"], accuracy_high=accuracy["high"]
        )
        if accuracy["accuracy"] <= best["accuracy"]:
            return best
        # Named selection_accuracy, not val_accuracy: the figure chose this checkpoint, so it is no
        # held-out estimate, and nothing reports it as one.
        self.run_config.metrics = {
            "selection_accuracy": accuracy,
            "step": step,
            "selection_split": {k: v for k, v in self.selection.items() if k != "ids"},
        }
        self.writer.save(save_best, self.out, self.run_config, self.backbone, self.head, self.adapter, result, self.selection_split)  # fmt: skip
        return {"accuracy": accuracy["accuracy"], "step": step}

    def save_state(self, step: int, best: dict) -> None:
        self.writer.save(
            save_state, self.out / "state", self.backbone, self.head, self.optimizer, self.scheduler,
            self.adapter, step, best,
        )  # fmt: skip


def start_run(cfg: TrainConfig) -> Run:
    """Accelerator, data, model and optimizer of a run, on this process's device."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    out = Path(cfg.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=None if cfg.report_to == "none" else cfg.report_to,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "trackers")),
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    data, train_split, selection_split, selection = load_data(cfg, accelerator, out)
    seed_everything(cfg.seed)
    run_config = cfg.run_config()
    backbone, head, module, adapter = build_model(cfg, run_config, accelerator.device)
    if accelerator.is_main_process:
        report_cut_examples(run_config, module.encoder, train_split)
    optimizer, scheduler, total_steps = build_optimizer(
        cfg, backbone, head, len(train_split), accelerator.num_processes
    )
    # The scheduler is stepped by hand once per optimizer step: accelerate's wrapper would step it once
    # per process, for data loaders that shrink with the process count (ours do not).
    module, optimizer = accelerator.prepare(module, optimizer)
    writer = RunWriter(accelerator, out, cfg.report_to, asdict(cfg))
    writer.save(write_selection, out / "selection.json", selection)
    return Run(
        cfg, accelerator, writer, Shard.from_accelerate(accelerator), data, train_split, selection_split,
        selection, run_config, backbone, head, module, adapter, optimizer, scheduler, total_steps,
    )  # fmt: skip


def module_of(run: Run) -> VariantModule:
    """The run's :class:`VariantModule` without accelerate's (DDP) wrapper."""
    return run.accelerator.unwrap_model(run.module)


def main(cfg: TrainConfig) -> dict:
    """Train one variant; returns ``{"best_accuracy", "best_step", "steps", "seconds", "out"}``."""
    if cfg.smoke:
        cfg = apply_smoke(cfg)
    run = start_run(cfg)
    accelerator, train_split, total_steps = run.accelerator, run.train_split, run.total_steps
    step, best = run.restore()
    matcher = SentenceMatcher()
    features = FeatureCache(run.backbone, train_split, cfg.cache_features, pixels_only=cfg.train_vision)
    batches_per_epoch = math.ceil(len(train_split) / (cfg.batch_size * accelerator.num_processes))
    # A resumed run's clock goes on from the seconds already logged (0 for a fresh run).
    start_time = time.perf_counter() - seconds_spent(run.out / "metrics.jsonl", step)
    losses: list[float] = []
    run.module.train()
    bar = tqdm(total=total_steps, initial=step, desc=run.run_config.variant, disable=not run.writer.is_main)
    micro_index = step * cfg.grad_accum
    while step < total_steps:
        if micro_index % cfg.grad_accum == 0:  # a new optimizer step: its global term count first
            plan, step_loss = plan_step(cfg, accelerator, module_of(run), train_split, micro_index), 0.0
        batch = plan.batches[micro_index % cfg.grad_accum]
        if cfg.log_examples:
            run.writer.log_examples(micro_index, batch, [train_split[i].id for i in batch.indices])
        step_loss += train_micro_batch(
            cfg, accelerator, run.module, run.optimizer, features, train_split, batch, step, plan.terms
        )
        micro_index += 1
        if not accelerator.sync_gradients:
            continue
        losses.append(step_loss / plan.terms)
        run.scheduler.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-5:]):.3f}", best=f"{best['accuracy']:.3f}")
        record = {"step": step, "epoch": round(micro_index / batches_per_epoch, 3)}
        if step % cfg.log_every == 0 or step == total_steps:
            record.update(loss=float(np.mean(losses)), lr=run.scheduler.get_last_lr()[0])
            losses = []
        evaluating = step % cfg.eval_every == 0 or step == total_steps
        if evaluating:
            best = run.validate(matcher, step, best, record)
        if len(record) > 2:
            record["seconds"] = round(time.perf_counter() - start_time, 2)
            run.writer.append(record)
        if evaluating:
            run.save_state(step, best)
        if cfg.stop_after_steps and step >= cfg.stop_after_steps and step < total_steps:
            bar.close()
            run.writer.finish()
            return {"stopped_at": step, "out": str(run.out)}
    bar.close()
    run.run_config.metrics = {"final_step": step, "best": best}
    run.writer.save(save_variant, run.out / "last", run.run_config, run.backbone, run.head, run.adapter)
    run.writer.finish()
    seconds = time.perf_counter() - start_time
    accelerator.print(
        f"best selection-split accuracy {best['accuracy']:.4f} at step {best['step']}; {seconds:.0f} s"
    )
    return {
        "best_accuracy": best["accuracy"],
        "best_step": best["step"],
        "steps": step,
        "seconds": seconds,
        "out": str(run.out),
    }


def save_best(out: Path, run_config, backbone, head, adapter: str, result: EvaluationResult, split) -> None:
    """``best/`` and the per-example selection-split predictions that made it best (``best_selection/``)."""
    save_variant(out / "best", run_config, backbone, head, adapter)
    write_evaluation(result, out / "best_selection", split)


def write_selection(path: Path, selection: dict) -> None:
    """``selection.json``: which questions the selection split holds (:func:`selection_for`)."""
    path.write_text(json.dumps(selection, indent=2))


def build_parser(
    description: str | None = __doc__, one_variant: bool = True, prog: str = "python -m training.train"
) -> CliParser:
    """The training flags (one per :class:`TrainConfig` field, plus ``--lora-targets``); without
    ``one_variant`` (training.compare) ``--variant`` and ``--pooling`` are hidden from ``--help``."""
    parser = CliParser(prog=prog, description=description, formatter_class=HelpFormatter)
    add_arguments(parser, TrainConfig, hidden=() if one_variant else ("variant", "pooling"))
    parser.add_argument(
        "--lora-targets",
        choices=LORA_SCOPES,
        default=None,
        help="language: the language model's linears; all-linear: also the vision tower and projector "
        "(same as --train-vision)",
    )
    return parser


def config_from_args(args: dict[str, Any]) -> TrainConfig:
    targets = args.pop("lora_targets")
    if targets is not None:
        args["train_vision"] = targets == "all-linear"
    return TrainConfig(**args)


def parse_args(argv=None) -> TrainConfig:
    return config_from_args(vars(build_parser().parse_args(argv)))


def check_config(cfg: TrainConfig) -> None:
    """Settings that cannot work, refused before anything loads (:class:`UsageError`, one sentence)."""
    require_cuda_for(cfg.quantization)
    try:
        cfg.run_config()
    except ValueError as error:
        raise UsageError(f"{error}; see --help for the choices") from None


def cli(argv=None) -> dict:
    """``python -m training.train``: parse, check, train; a user mistake exits 2 with one line."""
    cfg = parse_args(argv)
    run_cli(check_config, cfg)
    return run_cli(main, cfg, base=cfg.base)


if __name__ == "__main__":
    cli()
