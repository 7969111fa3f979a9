"""Saved evaluations of runs, read back so runs on different backbones can be compared side by side.

A *run* is a folder holding one evaluation of several variants:

    training.compare --out DIR     comparison.json + evaluation/predictions.jsonl (the app's assets too)
    vqa_demo.evaluate --out DIR    metrics.json + predictions.jsonl

(a ``comparison.json`` or ``metrics.json`` path names its folder). Nothing is loaded but these files,
so runs on any backbone can sit side by side while one base model, or none, is in memory. Accuracies
come from the summary file; the per-example answers in ``predictions.jsonl``, when present, give
paired McNemar tests between runs on the questions both answered (the ``questions`` fingerprint of
:func:`vqa_demo.evaluation.records.questions_fingerprint` tells at once whether two runs answered exactly
the same ones). Every file is read through :mod:`vqa_demo.evaluation.record_files`, and nothing here
imports torch: an older file that names only its ``--base`` has its model worked out by the family
registry, imported then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from vqa_demo.config import family_preset_for, in_variant_order, preset_for
from vqa_demo.evaluation.metrics import mcnemar_exact
from vqa_demo.evaluation.record_files import MAX_SUMMARY_BYTES, read_json_object, read_predictions
from vqa_demo.evaluation.records import (
    RecordError,
    RunContractError,
    VariantEntry,
    check_summary,
    example_key,
    questions_fingerprint,
)

# evaluation/: a training.train run folder evaluated with `vqa_demo.evaluate --out <run>/evaluation`.
# Its best_selection/ is not read: that split chose best/, so its figures are not held out.
SUMMARY_FILES = ("comparison.json", "metrics.json", "evaluation/metrics.json")
PREDICTION_FILES = ("evaluation/predictions.jsonl", "predictions.jsonl")
MAX_PREDICTION_BYTES = 512 * 1024 * 1024
UNKNOWN_MODEL = "unknown backbone"
# Settings that change how a run was logged or how fast it ran, not what it learned.
BOOKKEEPING_SETTINGS = frozenset(
    {"wall_seconds", "threads", "log_every", "eval_every", "eval_batch_size", "cache_features", "smoke"}
)


class RunFileError(ValueError):
    """A run folder lacks its summary file, or a file in it is unreadable or malformed."""


@dataclass
class SavedRun:
    """One run's evaluation as saved: per-variant figures and, if saved, per-example correctness.

    ``variants``: each variant's entry as saved (:class:`~vqa_demo.evaluation.records.VariantEntry`).
    ``correct`` maps variant -> example key (:func:`~vqa_demo.evaluation.records.example_key`) ->
    whether the variant chose the gold option; empty when the folder has no ``predictions.jsonl``.
    """

    name: str
    model: str
    source: str
    split: str
    n: int
    questions: str | None
    variants: dict[str, VariantEntry]
    not_applicable: dict[str, str] = field(default_factory=dict)
    setting: dict[str, Any] = field(default_factory=dict)
    correct: dict[str, dict[str, bool]] = field(default_factory=dict)
    chance: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``"qwen-run (Qwen2.5-VL)"``: the run's folder name and its model."""
        return f"{self.name} ({self.model})"

    def accuracy(self, variant: str) -> dict[str, Any] | None:
        """The variant's ``{"accuracy", "low", "high", "n", "correct"}``, or None if it has none."""
        entry = self.variants.get(variant)
        return entry.accuracy if entry is not None else None


@dataclass(frozen=True)
class PairedTest:
    """Exact McNemar test of one variant on two runs over the same questions."""

    variant: str
    run_a: str
    run_b: str
    only_a: int  # questions run A's variant got right and run B's wrong
    only_b: int
    p_value: float
    n: int


def find_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def load_run(path: str | Path, name: str | None = None) -> SavedRun:
    """The run saved in ``path`` (a folder, or its ``comparison.json`` / ``metrics.json``).

    Raises :class:`RunFileError` with one sentence saying what is missing or wrong.
    """
    path = Path(path).expanduser().resolve()
    if (path / "run_config.json").is_file() and find_file(path, SUMMARY_FILES) is None:
        path = path.parent  # a variant's best/ directory: its run folder holds the evaluation
    summary_file = path if path.is_file() else find_file(path, SUMMARY_FILES)
    if summary_file is None:
        raise RunFileError(
            f"{path} holds no comparison.json or metrics.json: give the --out folder of "
            "training.compare or of python -m vqa_demo.evaluate"
        )
    folder = path if path.is_dir() else path.parent
    try:
        summary = read_json_object(summary_file, MAX_SUMMARY_BYTES)
    except RecordError as error:
        raise RunFileError(str(error)) from None
    if "variants" not in summary:
        raise RunFileError(f"{summary_file} has no 'variants' object: it is not an evaluation summary")
    try:
        check_summary(summary)
    except RunContractError as error:
        raise RunFileError(f"{summary_file} is not a valid evaluation summary: {error}") from None
    variants, not_applicable, notes = summary_variants(summary, summary_file)
    model, source = backbone_of(summary, folder)
    run = SavedRun(
        name=name or folder.name,
        model=model,
        source=source,
        split=summary.get("split") or "?",
        n=summary.get("n", 0),
        questions=summary.get("questions"),
        variants=variants,
        not_applicable=not_applicable,
        setting=dict(summary.get("setting") or {}),
        notes=notes,
    )
    if source:
        run.setting.setdefault("base", source)
    predictions = find_file(summary_file.parent, PREDICTION_FILES) or find_file(folder, PREDICTION_FILES)
    if predictions is not None:
        add_answers(run, predictions)
    return run


def summary_variants(summary: dict, path: Path) -> tuple[dict, dict, list[str]]:
    """``(variants, not_applicable, notes)`` from a comparison.json or metrics.json object.

    Each variant is its :class:`~vqa_demo.evaluation.records.VariantEntry`; an entry without an
    accuracy, or with any key off the contract, is left out with a note naming the key.
    """
    raw = summary["variants"]
    variants, notes = {}, []
    for name in in_variant_order(raw):
        if isinstance(raw[name], dict) and raw[name].get("accuracy") is None:  # unlabelled split
            notes.append(f"{path.parent.name}: {name} left out (no accuracy in {path.name})")
            continue
        try:
            variants[str(name)] = VariantEntry.from_json(raw[name], f"variants.{name}.")
        except RunContractError as error:
            notes.append(f"{path.parent.name}: {name} left out ({path.name}: {error})")
    not_applicable = summary.get("not_applicable") or {}
    return variants, {str(k): v for k, v in not_applicable.items()}, notes


def add_answers(run: SavedRun, predictions: Path) -> None:
    """Fill ``run.correct`` and ``run.chance`` from ``predictions.jsonl`` (labelled rows only).

    When the file's questions do not match the summary's fingerprint, it belongs to another
    evaluation: it is left out with a note, so no paired test reads it.
    """
    if predictions.stat().st_size > MAX_PREDICTION_BYTES:
        run.notes.append(f"{run.name}: {predictions.name} is over {MAX_PREDICTION_BYTES:,} bytes; left out")
        return
    try:
        rows = read_predictions(predictions)
    except RecordError as error:
        run.notes.append(f"{run.name}: {error}; paired tests left out")
        return
    records = [r for r in rows if r.get("gold") is not None]
    keys = [example_key(r) for r in records]
    fingerprint = questions_fingerprint(records)
    if run.questions is not None and fingerprint != run.questions:
        run.notes.append(f"{run.name}: {predictions.name} answers other questions than its summary; left out")
        return
    run.questions = fingerprint
    correct: dict[str, dict[str, bool]] = {}
    for key, record in zip(keys, records):
        for variant, answer in record["variants"].items():
            if isinstance(answer.get("correct"), bool):
                correct.setdefault(variant, {})[key] = answer["correct"]
    run.correct = {v: c for v, c in correct.items() if len(c) == len(records)}
    counts = [len(r["options"]) for r in records]
    run.chance = float(np.mean([1.0 / k for k in counts])) if counts else None


def backbone_of(summary: dict, folder: Path) -> tuple[str, str]:
    """``(model name, base source)``: as the evaluation saved it, else worked out from ``setting.base``.

    Evaluations written before the ``backbone`` entry existed name only their ``--base``: a tiny
    stand-in, a preset or hub id, or a local folder whose ``config.json`` gives the model type.
    """
    saved = summary.get("backbone")
    if isinstance(saved, dict) and isinstance(saved.get("model"), str):
        return saved["model"], str(saved.get("source") or "")
    source = (summary.get("setting") or {}).get("base")
    if not isinstance(source, str) or not source:
        return UNKNOWN_MODEL, ""
    return model_of_source(source, folder), source


def model_of_source(source: str, folder: Path) -> str:
    """The model name of a ``--base`` value, from names and files only (nothing is downloaded)."""
    # Only files older than the ``backbone`` entry get here; the family registry imports torch.
    from vqa_demo.model.families.registry import FAMILIES, family_by_model_type, tiny_family

    family = tiny_family(source)
    if family is not None:
        return f"{family.title} (tiny)"
    preset = family_preset_for(source)
    if preset is not None:
        return FAMILIES[preset.family].title
    paligemma = preset_for(source)
    if paligemma is not None:
        return "PaliGemma 2" if paligemma.generation == 2 else "PaliGemma"
    for candidate in (Path(source), folder / source, folder.parent / source, Path.cwd() / source):
        config_file = candidate.expanduser() / "config.json"
        if config_file.is_file():
            try:
                config = read_json_object(config_file)
            except RecordError:
                break
            family = family_by_model_type(config.get("model_type"))
            return family.describe(config) if family else UNKNOWN_MODEL
    return UNKNOWN_MODEL


def load_runs(entries: list[str | Path | tuple[str | Path, str]]) -> tuple[list[SavedRun], list[str]]:
    """The runs of ``entries`` (paths, or ``(path, name)``) in order, names made unique; unreadable ones become notes."""
    runs, notes, names = [], [], set()
    for entry in entries:
        path, name = entry if isinstance(entry, tuple) else (entry, None)
        try:
            run = load_run(path, name)
        except RunFileError as error:
            notes.append(str(error))
            continue
        base, number = run.name, 2
        while run.name in names:
            run.name, number = f"{base} #{number}", number + 1
        names.add(run.name)
        runs.append(run)
        notes += run.notes
    return runs, notes


def variants_of(runs: list[SavedRun]) -> list[str]:
    """Every variant any run evaluated or declared not applicable, standard ones first."""
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys([*run.variants, *run.not_applicable]))
    return in_variant_order(seen)


def question_keys(run: SavedRun) -> set[str]:
    """The example keys of the questions ``run`` saved answers to (empty without predictions)."""
    return set(next(iter(run.correct.values()), {}))


def paired_tests(runs: list[SavedRun]) -> tuple[list[PairedTest], list[str]]:
    """McNemar tests of each variant between every two runs, on the questions both answered.

    Returns the tests, grouped by variant (in variant order), and one note per pair of runs that
    cannot be paired (and why) or is paired on part of its questions only.
    """
    tests, notes = [], []
    for a, b in combinations(runs, 2):
        if not a.correct or not b.correct:
            missing = a.name if not a.correct else b.name
            notes.append(
                f"{a.name} and {b.name}: no per-example answers saved for {missing}; accuracies only"
            )
            continue
        keys_a, keys_b = question_keys(a), question_keys(b)
        shared = keys_a & keys_b
        if not shared:
            notes.append(
                f"{a.name} and {b.name} answered different questions: compare their intervals, not paired tests"
            )
            continue
        if a.questions != b.questions:
            notes.append(
                f"{a.name} and {b.name} share {len(shared)} of their questions "
                f"({len(keys_a)} and {len(keys_b)}): their paired tests use those only"
            )
        keys = sorted(shared)
        for variant in [v for v in in_variant_order(a.correct) if v in b.correct]:
            test = mcnemar_exact([a.correct[variant][k] for k in keys], [b.correct[variant][k] for k in keys])
            tests.append(
                PairedTest(
                    variant,
                    a.label,
                    b.label,
                    int(test["b"]),
                    int(test["c"]),
                    float(test["p_value"]),
                    len(keys),
                )
            )
    order = variants_of(runs)
    tests.sort(key=lambda t: order.index(t.variant) if t.variant in order else len(order))
    return tests, notes


def setting_differences(runs: list[SavedRun]) -> dict[str, list[str]]:
    """Training settings whose values differ between runs: setting -> one value per run (``–`` if unset)."""
    keys = [k for run in runs for k in run.setting if k not in BOOKKEEPING_SETTINGS]
    differences = {}
    for key in dict.fromkeys(keys):
        values = [json.dumps(run.setting[key]) if key in run.setting else "–" for run in runs]
        if len(set(values)) > 1:
            differences[key] = [v.strip('"') for v in values]
    return differences
