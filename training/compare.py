"""Train the five variants under one setting, evaluate them together, write the comparison.

Examples::

    python -m training.compare --base assets/base --data data/synth --out runs/compare --epochs 3
    python -m training.compare --base tiny --out runs/compare-smoke --smoke

Output (``--out``)::

    <variant>/            one training run each (metrics.jsonl, selection.json, best/, last/, state/)
    evaluation/           metrics.json + predictions.jsonl of all best checkpoints (and zero_shot) on
                          the held-out validation split, through the shared predictor
                          (vqa_demo.evaluation.runner), with circular evaluation
    evaluation_selection/ the same on the selection split (what rules, temperatures and priors are
                          fitted on)
    validation/           the validation split's images + metadata.csv (the app's Errors tab), so the
                          folder serves as it is: python app.py --checkpoints <out>
    comparison.json       per variant: held-out accuracy with 95% CI, per-family accuracy, training
                          curve, training time, selection-split accuracy, calibration per probability
                          definition before/after temperature scaling, circular accuracy, a position
                          reading, the PriDe rule and (COND_GEN) the decision rules side by side; plus
                          the setting, ``split`` and ``selection_split``, the model (``backbone``), the
                          questions' fingerprint, head agreement and paired McNemar tests (the app's
                          Compare tab sets such files of runs on different backbones side by side)

Every ``best/`` is chosen on the selection split (:mod:`training.selection`), never on the held-out
split. ``zero_shot`` is the base with no adapter, scored by COND_GEN likelihood under the same prompt:
the baseline every trained variant is McNemar-tested against. COND_GEN's decision rule (and
zero-shot's) stays the one it trained with unless the selection split calls another more accurate
(exact McNemar, p < 0.05) or ``--cond-gen-scoring`` names one; the rule is written into the
checkpoint's run config, so the app decides the same way.

A variant the base's family cannot run (COND_GEN on ViLT) is listed under ``not_applicable`` with
the reason; a family's zero-training baselines (ViLT's own answer classifier) are evaluated with
the trained variants.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from transformers import AutoConfig

from training.train import (
    TrainConfig,
    apply_smoke,
    build_parser,
    check_config,
    config_from_args,
    smoke_data,
    training_splits,
)
from training.train import main as train_main
from vqa_demo.checkpoints import write_run_config
from vqa_demo.cli_errors import run_cli
from vqa_demo.config import VARIANTS, HeadConfig, resolve_backbone_source
from vqa_demo.data.jsonl import read_jsonl
from vqa_demo.data.sources import load_data_split
from vqa_demo.data.writers import write_split
from vqa_demo.evaluation.metric_registry import METRICS
from vqa_demo.evaluation.records import VariantEntry
from vqa_demo.evaluation.runner import (
    EvaluationResult,
    evaluate,
    head_strategies,
    summarize,
    write_evaluation,
)
from vqa_demo.evaluation.selection_report import ZERO_SHOT, ZERO_SHOT_TRAINING, chosen_rule, variant_report
from vqa_demo.evaluation.sharding import Shard
from vqa_demo.loading import load_predictor
from vqa_demo.model.families.registry import family_for, tiny_family
from vqa_demo.model.family import BackboneFamily
from vqa_demo.model.strategies import strategy_for
from vqa_demo.predictor import Predictor, Variant


def read_curve(path: Path) -> list[dict]:
    """Training curve records (step, loss, accuracy where evaluated) from a run's metrics.jsonl."""
    keep = ("step", "epoch", "loss", "accuracy", "accuracy_low", "accuracy_high", "seconds")
    records = read_jsonl(path) if path.is_file() else []
    return [{k: r[k] for k in keep if k in r} for r in records]


def base_family(source: str) -> BackboneFamily:
    """The family of ``--base`` from its config alone (no weights loaded)."""
    return tiny_family(source) or family_for(AutoConfig.from_pretrained(resolve_backbone_source(source)))


def applicable_variants(family: BackboneFamily, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """``(the variants the family runs, {variant: why not} for the others)``."""
    runnable, not_applicable = [], {}
    for name in names:
        head, pooling = VARIANTS[name]
        refusal = family.refusal(strategy_for(HeadConfig(head=head, pooling=pooling)))
        if refusal is None:
            runnable.append(name)
        else:
            not_applicable[name] = f"not applicable: {refusal}"
    return runnable, not_applicable


def zero_shot_variant(family: BackboneFamily, cfg: TrainConfig) -> tuple[Variant | None, str | None]:
    """``(zero_shot, None)``: the base with no adapter, scored by COND_GEN likelihood under ``cfg``'s
    prompt; ``(None, why not)`` on a family that writes no answers (ViLT)."""
    run_config = replace(cfg, variant="cond_gen", pooling=None).run_config()
    refusal = family.refusal(strategy_for(run_config.head))
    if refusal:
        return None, f"not applicable: {refusal}"
    return Variant(ZERO_SHOT, run_config), None


def choose_rules(predictor: Predictor, chosen: EvaluationResult, out: Path, fixed: str | None) -> list[str]:
    """Set each COND_GEN variant's decision rule: ``fixed`` (``--cond-gen-scoring``), else its trained
    rule unless the selection split calls another one better
    (:func:`~vqa_demo.evaluation.selection_report.chosen_rule`); a trained variant's
    ``best/run_config.json`` is rewritten to match. Returns the variants whose rule changed (their
    selection records were made with the old one)."""
    changed = []
    for name, metrics in chosen.metrics["variants"].items():
        if "scoring_accuracy" not in metrics:
            continue
        variant = predictor.variants[name]
        rule = fixed or chosen_rule(chosen.records, name, variant.config.head.cond_gen_scoring)
        if rule == variant.config.head.cond_gen_scoring:
            continue
        variant.config = replace(variant.config, head=replace(variant.config.head, cond_gen_scoring=rule))
        if (out / name / "best").is_dir():
            write_run_config(out / name / "best", variant.config)
        changed.append(name)
    return changed


def evaluate_selection(predictor, split, names, cfg: TrainConfig, out: Path, shard) -> EvaluationResult:
    """The selection split's evaluation (circular), after the decision rules are chosen on it: the
    variants whose rule changed are scored again, so every record is made with the rule in use."""
    batch = cfg.eval_batch_size
    chosen = evaluate(predictor, split, names, batch, circular=True, progress=False, shard=shard)
    changed = choose_rules(predictor, chosen, out, cfg.cond_gen_scoring)
    if changed:
        again = evaluate(predictor, split, changed, batch, circular=True, progress=False, shard=shard)
        for record, fresh in zip(chosen.records, again.records):
            record["variants"].update(fresh["variants"])
        heads = head_strategies(predictor, names)
        chosen.metrics.update(summarize(chosen.records, split.name, heads, circular=True))
    return chosen


def build_comparison(
    setting: dict,
    out: Path,
    metrics: dict,
    train_results: dict,
    baselines=(),
    not_applicable=None,
    selection: tuple[dict, list[dict], dict] | None = None,
    records: list[dict] | None = None,
    rules: dict[str, str] | None = None,
) -> dict:
    """The comparison of the trained variants and the zero-training ``baselines`` (variant names).

    ``selection``: ``(metrics, records, description)`` of the selection-split evaluation, with
    ``records`` (the held-out evaluation's) it adds each variant's
    :func:`~vqa_demo.evaluation.selection_report.variant_report`; ``rules``: COND_GEN rules in use."""
    variants = {}
    for name in [*train_results, *baselines]:
        result = train_results.get(name)
        m = metrics["variants"].get(name, {})
        entry = VariantEntry(
            metrics={k: m[k] for k, metric in METRICS.items() if metric.in_comparison and k in m},
            curve=read_curve(out / name / "metrics.jsonl"),
            best_step=result.get("best_step") if result else None,
            train_seconds=round(result.get("seconds", 0.0), 1) if result else 0.0,
            checkpoint=f"{name}/best" if result else None,
        )
        if result is None:
            entry.training = (
                ZERO_SHOT_TRAINING
                if name == ZERO_SHOT
                else "none: the base model's own answers (zero-training baseline)"
            )
        if selection is not None and records is not None:
            report = variant_report(name, selection[:2], (metrics, records), (rules or {}).get(name))
            entry = replace(entry, **report)
        variants[name] = entry.to_json()
    return {
        "setting": setting,
        "split": metrics["split"],
        "selection_split": selection[2] if selection is not None else None,
        "n": metrics["n"],
        "questions": metrics.get("questions"),
        "backbone": metrics.get("backbone"),
        "variants": variants,
        "not_applicable": not_applicable or {},
        "agreement": metrics.get("agreement"),
        "mcnemar": metrics.get("mcnemar"),
    }


def main(cfg: TrainConfig, variants: list[str] | None = None) -> dict:
    """Train each variant with ``cfg`` (its variant/pooling replaced), then evaluate all together.

    Under ``accelerate launch`` every step is shared out as in :mod:`training.train`; the main
    process writes.
    """
    out = Path(cfg.out)
    shard = Shard.from_environment()
    if cfg.smoke:
        cfg = apply_smoke(cfg)
        if not cfg.data:
            if shard.is_main:
                smoke_data(out, cfg.seed)
            shard.wait()
            cfg.data = str(out / "smoke-data")
    started = time.perf_counter()
    family = base_family(cfg.base)
    names, not_applicable = applicable_variants(family, variants or list(VARIANTS))
    train_results = {}
    for name in names:
        head, pooling = VARIANTS[name]
        run_cfg = replace(cfg, variant=head, pooling=pooling, out=str(out / name))
        train_results[name] = train_main(run_cfg)
    _, selection_split, selection = training_splits(cfg, cfg.data)
    val_split = load_data_split(cfg.data, "validation", columns=cfg.columns, single_split=False)
    if cfg.max_val:
        val_split.examples = val_split.examples[: cfg.max_val]
    device = str(shard.device) if shard.device is not None else "auto"
    predictor = load_predictor([out / name / "best" for name in train_results], base=cfg.base, device=device)
    baselines = [Variant(n, c) for n, c in family.baseline_configs(predictor.backbone.source).items()]
    zero_shot, refusal = zero_shot_variant(family, cfg)
    if zero_shot is not None:
        baselines.append(zero_shot)
    else:
        not_applicable[ZERO_SHOT] = refusal
    predictor.variants.update({baseline.name: baseline for baseline in baselines})
    names = [*train_results, *(baseline.name for baseline in baselines)]
    chosen = evaluate_selection(predictor, selection_split, names, cfg, out, shard)
    result = evaluate(
        predictor, val_split, names, cfg.eval_batch_size, circular=True, progress=False, shard=shard
    )
    if not shard.is_main:
        return {}
    write_evaluation(result, out / "evaluation", val_split)
    write_split(val_split, out / "validation")  # the images the app's Errors tab shows for this run
    write_evaluation(chosen, out / "evaluation_selection", selection_split)
    setting = {k: v for k, v in asdict(cfg).items() if k not in {"variant", "pooling", "out", "resume"}}
    setting["wall_seconds"] = round(time.perf_counter() - started, 1)
    rules = {
        n: v.config.head.cond_gen_scoring for n, v in predictor.variants.items() if v.strategy.generates_text
    }
    comparison = build_comparison(
        setting, out, result.metrics, train_results, [b.name for b in baselines], not_applicable,
        (chosen.metrics, chosen.records, {k: v for k, v in selection.items() if k != "ids"}),
        result.records, rules,
    )  # fmt: skip
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    for name, v in comparison["variants"].items():
        acc = v["accuracy"]
        print(
            f"{name:24s} {acc['accuracy']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}]  train {v['train_seconds']} s"
        )
    for name, reason in not_applicable.items():
        print(f"{name:24s} {reason}")
    return comparison


def parse_args(argv=None) -> tuple[TrainConfig, list[str] | None]:
    """``(the training settings every variant shares, --variants)``; compare's own ``--help``."""
    parser = build_parser(
        __doc__, one_variant=False, prog="python -m training.compare"
    )  # --variant/--pooling are set per variant
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        choices=list(VARIANTS),
        help="the variants to train (default: every one the base's family runs)",
    )
    args = vars(parser.parse_args(argv))
    variants = args.pop("variants")
    return config_from_args(args), variants


def cli(argv=None) -> dict:
    """``python -m training.compare``: a user mistake exits 2 with one line."""
    cfg, variants = parse_args(argv)
    run_cli(check_config, cfg)
    return run_cli(main, cfg, variants, base=cfg.base)


if __name__ == "__main__":
    cli()
