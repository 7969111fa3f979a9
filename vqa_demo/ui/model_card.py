"""The model card at the top of the Ask tab: which model is loaded, what it learned from, how good each variant is.

Built from files only (the model is loaded lazily, on the first question): the base's ``config.json``,
``processor_config.json`` and safetensors header, the variants' ``run_config.json``, and the served
run's own evaluation (its ``comparison.json`` or evaluation ``metrics.json``, see
:func:`~vqa_demo.run_folders.served_run_folder`) for validation accuracy with its Wilson 95%
interval; never another run's. A run without an evaluation says so and names the command that makes one.
The synthetic-diagram description and the photo note are for the shipped default only (its base and
its checkpoints in this package's ``assets/``).

A variant is *chance-level* when an exact binomial test cannot tell its accuracy from chance
(1 / K) at the 5% level, i.e. when the exact (Clopper-Pearson) 95% interval includes chance. The
exact test is used because the card's Wilson interval is an approximation that, on the default,
just excludes chance for ``multi_class-attentive`` (90 of 300: Wilson low 0.2509, exact p = 0.053).
Such a variant is kept for comparison but not ticked or chosen by default, so a first answer shows
the heads that learned something.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vqa_demo.checkpoints import resolve_base
from vqa_demo.evaluation.chance import CHANCE_ALPHA, chance_p_value
from vqa_demo.run_folders import find_checkpoints
from vqa_demo.runtime import ASSETS_DIR
from vqa_demo.ui.holder import VariantInfo

# The offline default's base was pretrained from scratch by training/pretrain.py, which writes this file.
PRETRAIN_SUMMARY = "pretrain_summary.json"
SYNTHETIC_FAMILIES = ("bar charts", "pie charts", "clocks", "shapes", "tables")
DOMAIN_NOTE = (
    "This model only knows synthetic diagrams (bar charts, pie charts, clocks, shapes and small tables); "
    "real photographs are outside what it was trained on, so its answer here is a guess."
)
SWITCH_TO_PALIGEMMA = (
    "To serve PaliGemma 2 instead, set `VQA_CHECKPOINTS` to variant checkpoints trained with "
    "`training/` and `VQA_BASE` to the base they were trained on (e.g. `google/paligemma2-3b-pt-448`), "
    "as in the README's *Deploying as a Hugging Face Space*."
)


@dataclass(frozen=True)
class VariantStanding:
    """A variant's validation accuracy with its 95% interval, and chance for its K."""

    name: str
    accuracy: float
    low: float
    high: float
    n: int
    chance: float
    correct: int | None = None
    reading: str | None = None  # the comparison's position reading ("answers by position: ...")

    @property
    def p_value(self) -> float:
        """Exact two-sided binomial test of the accuracy against chance."""
        correct = self.correct if self.correct is not None else round(self.accuracy * self.n)
        return chance_p_value(int(correct), self.n, self.chance)

    @property
    def chance_level(self) -> bool:
        """True when the variant has not shown it is better (or worse) than chance: p >= 0.05."""
        return self.p_value >= CHANCE_ALPHA  # the rule of vqa_demo.evaluation.chance

    def interval(self) -> str:
        """``0.67 [0.62, 0.72]``: accuracy and its 95% interval."""
        return f"{self.accuracy:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass
class ModelCard:
    """What the Ask tab says about the loaded model; :func:`card_markdown` renders it."""

    base_name: str
    parameters: int | None
    image_size: int | None
    image_tokens: int | None
    trained_on: str
    offline_default: bool = False
    standings: dict[str, VariantStanding] = field(default_factory=dict)
    split_note: str = ""
    size_label: str | None = None  # "3B" for a hub base whose weights are not on disk
    no_evaluation: str = ""  # the command that evaluates the served run, when it has no evaluation
    precision: str | None = None  # the serving precision's sentence (vqa_demo.model.precision), if one is set

    def is_chance_level(self, name: str) -> bool:
        standing = self.standings.get(name)
        return bool(standing and standing.chance_level)


def safetensors_parameters(path: Path) -> int | None:
    """Number of parameters in a safetensors file, from its JSON header alone (no tensor is read)."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        total += count
    return total


def variant_standings(infos: Sequence[VariantInfo], comparison: Mapping | None) -> dict[str, VariantStanding]:
    """Each variant's accuracy: from ``comparison.json`` when it lists the variant, else its run config."""
    listed = (comparison or {}).get("variants", {})
    standings = {}
    for info in infos:
        accuracy = (listed.get(info.name) or {}).get("accuracy") or info.config.metrics.get("val_accuracy")
        if not accuracy or accuracy.get("accuracy") is None:
            continue
        k = info.config.head.num_options or (comparison or {}).get("setting", {}).get("num_options") or 4
        standings[info.name] = VariantStanding(
            info.name,
            float(accuracy["accuracy"]),
            float(accuracy["low"]),
            float(accuracy["high"]),
            int(accuracy.get("n", 0)),
            1.0 / int(k),
            accuracy.get("correct"),
            (listed.get(info.name) or {}).get("position_reading"),
        )
    return standings


def hub_size(name: str) -> tuple[str | None, int | None]:
    """``google/paligemma2-3b-pt-448`` -> (``3B``, 448) from the hub naming convention; (None, None) otherwise."""
    match = re.search(r"(\d+(?:\.\d+)?)b-(?:pt|mix|ft)-(\d{3})", name.lower())
    return (match.group(1).upper() + "B", int(match.group(2))) if match else (None, None)


def build_model_card(
    infos: Sequence[VariantInfo],
    comparison: Mapping | None,
    checkpoints: Sequence[Path] = (),
    base: str | None = None,
    precision: str | None = None,
    device: str = "auto",
) -> ModelCard:
    """The card for the configured base and variants (files only; nothing is loaded).

    ``comparison`` is the served run's own evaluation summary (comparison.json or metrics.json);
    ``precision`` and ``device`` as the app serves them (:mod:`vqa_demo.model.precision`).
    """
    directories = [d for root in checkpoints for d in _checkpoint_dirs(root)]
    shipped = bool(directories) and all(
        d.resolve().is_relative_to(ASSETS_DIR.resolve() / "checkpoints") for d in directories
    )
    source = resolve_base(base, directories[0]) if directories else (base or "")
    folder = Path(source) if source and Path(source).is_dir() else None
    card = ModelCard(base_name=source, parameters=None, image_size=None, image_tokens=None, trained_on="")
    if folder is not None:
        card.base_name = _display_path(folder)
        card.parameters = safetensors_parameters(folder / "model.safetensors")
        processor = _read(folder / "processor_config.json").get("image_processor", {})
        card.image_size = (processor.get("size") or {}).get("height")
        card.image_tokens = processor.get("image_seq_length")
        card.offline_default = shipped and (folder / PRETRAIN_SUMMARY).is_file()
    else:
        card.size_label, card.image_size = hub_size(source)
    if card.offline_default:
        card.trained_on = (
            "pretrained from scratch (`training/pretrain.py`), then fine-tuned, on offline synthetic "
            f"diagram questions only: {', '.join(SYNTHETIC_FAMILIES)}"
        )
    else:
        card.trained_on = trained_on(infos, comparison)
    card.standings = variant_standings(infos, comparison)
    if precision is not None:
        card.precision = precision_sentence(precision, device)
    n = (comparison or {}).get("n")
    card.split_note = f"validation split (n = {n})" if n else "validation split named in each run's config"
    if not card.standings and directories:
        card.no_evaluation = (
            f"python -m vqa_demo.evaluate --checkpoints {_run_root(directories)} --data <your data> "
            f"--out {_run_root(directories)}/evaluation"
        )
    return card


def trained_on(infos: Sequence[VariantInfo], comparison: Mapping | None) -> str:
    """What a user's run was fine-tuned and validated on, from its comparison and run configs."""
    data = ((comparison or {}).get("setting") or {}).get("data")
    splits = sorted({str(i.config.metrics.get("split", "")) for i in infos} - {""})
    text = "fine-tuned with `training/`" + (f" on `{data}`" if data else "")
    return text + (f"; validated on {', '.join(splits)}" if splits else "")


def _run_root(directories: Sequence[Path]) -> str:
    """The folder to name in the evaluate command: the variants' common run folder."""
    runs = {d.parent if d.name in ("best", "last") else d for d in directories}
    roots = {r.parent for r in runs} if len(runs) > 1 else runs
    return str(roots.pop()) if len(roots) == 1 else " ".join(str(d) for d in directories)


def _checkpoint_dirs(root: Path) -> list[Path]:
    try:
        return find_checkpoints(root)
    except (ValueError, OSError):
        return []


def _display_path(folder: Path) -> str:
    """``assets/base`` for the shipped base (a short, machine-independent name), else the path."""
    try:
        return str(folder.resolve().relative_to(ASSETS_DIR.parent))
    except ValueError:
        return str(folder)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def format_parameters(count: int | None) -> str:
    if not count:
        return "size unknown"
    if count >= 1e9:
        return f"{count / 1e9:.1f} B parameters"
    return f"{count / 1e6:.1f} M parameters"


def format_p(p_value: float) -> str:
    return f"{p_value:.3f}" if p_value >= 0.001 else "< 0.001"


def model_name(card: ModelCard) -> str:
    """The model as a person would name it: the offline default in words, a local folder by its name,
    a Hub id as it is (the card's body gives the full path)."""
    if card.offline_default:
        return "tiny PaliGemma 2 demo model (trained offline)"
    name = str(card.base_name)
    return Path(name).name if Path(name).exists() else name


def card_title(card: ModelCard) -> str:
    """One line for the card's collapsible header: what is loaded and what it is for."""
    size = format_parameters(card.parameters) if card.parameters else (card.size_label or "")
    parts = [f"Model: {model_name(card)}"] + [
        p for p in (size, card.image_size and f"{card.image_size} px") if p
    ]
    if card.offline_default:
        parts.append("knows synthetic diagrams only")
    return " · ".join(str(p) for p in parts) + " (about this model)"


def precision_sentence(precision: str, device: str) -> str:
    """What ``precision`` resolves to here, and where its measured effect is recorded."""
    from vqa_demo.model.precision import resolve_device, resolve_precision

    plan = resolve_precision(precision, resolve_device(device))
    kept = ""
    if plan.language == "int8":
        kept = (
            "; the MLP output projections, whose inputs carry outlier channels, and the LM head (where the "
            "model exposes one as its output embeddings) are computed in bf16"
            if plan.outliers == "bf16"
            else "; the MLP output projections, whose inputs carry outlier channels, keep int8 weights with "
            "fp32 activations, and the LM head stays fp32"
        )
    return (
        f"`{plan.label}` (requested `{precision}`: {plan.reason}){kept}; the variants' LoRA adapters stay "
        "unmerged in fp32 on the one shared base. The accuracies below were measured in fp32; the "
        "effect of this precision (accuracy, identical choices) is measured by `python -m benchmarks.serving` "
        "and listed in the README's *Performance*"
    )


def card_markdown(card: ModelCard) -> str:
    """The card as Markdown (the app shows it; the README's app section starts with the default's)."""
    if card.parameters:
        size = format_parameters(card.parameters)
    else:
        size = f"{card.size_label} parameters" if card.size_label else "size unknown"
    image = f"{card.image_size} px images" if card.image_size else "image size unknown"
    if card.image_tokens:
        image += f" ({card.image_tokens} image tokens)"
    blocks = [
        f"**Base:** `{card.base_name}` (PaliGemma 2 architecture), {size}, {image}.",
        f"**Trained on:** {card.trained_on}.",
    ]
    if card.offline_default:
        blocks.append(f"**Domain:** {DOMAIN_NOTE} {SWITCH_TO_PALIGEMMA}")
    if card.no_evaluation:
        blocks.append(
            "**Accuracy:** this run has no evaluation yet, so none is shown. Make one with "
            f"`{card.no_evaluation}` and restart the app."
        )
    if card.precision:
        blocks.append(f"**Serving precision:** {card.precision}.")
    if card.standings:
        rows = [
            "| variant | validation accuracy [95% CI] | chance | vs chance (exact p) |",
            "|---|---|---|---|",
        ]
        for name, s in card.standings.items():
            mark = " · **chance level**" if s.chance_level else ""
            if s.chance_level and s.reading:
                mark += f" ({s.reading})"
            rows.append(
                f"| `{name}` | {s.accuracy:.3f} [{s.low:.3f}, {s.high:.3f}]{mark} | {s.chance:.2f} | "
                f"{format_p(s.p_value)} |"
            )
        blocks.append("\n".join(rows))
        blocks.append(
            f"Accuracy on the {card.split_note}, with its Wilson 95% interval. A variant is at **chance "
            "level** when an exact binomial test cannot tell it from chance (p ≥ 0.05); such variants stay "
            "available for comparison but are not ticked or chosen by default."
        )
    return "\n\n".join(blocks)
