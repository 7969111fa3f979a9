"""Everything the app reads from disk, confined to the assets folder and the checkpoint folders.

Layout (``assets/``)::

    examples/            images for the Ask tab (question and options from examples/examples.json or
                         examples/metadata.csv, or from the validation row with the same file name)
    validation/          the labelled split (metadata.csv with a family column + images)
    evaluation/          predictions.jsonl: every variant's answer per validation example (Errors tab)
    comparison.json      every figure the Compare tab and the model card show: per-variant accuracy,
                         per-family accuracy, calibration, agreement, McNemar tests, training curves
                         (the evaluation's metrics.json holds copies of the same figures: not read)
    runs/<name>/         other runs' saved evaluations for the Compare tab's "Across backbones"
                         (optional; ``--compare-runs`` names them elsewhere): see
                         :mod:`vqa_demo.evaluation.saved_runs`

Missing pieces are not errors: each becomes a note the UI shows. File names taken from data files
are resolved and refused when they point outside their folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vqa_demo.data.jsonl import read_jsonl
from vqa_demo.data.splits import DataError, MCSplit, load_split
from vqa_demo.evaluation.record_files import read_predictions, read_summary
from vqa_demo.evaluation.records import RecordError
from vqa_demo.evaluation.saved_runs import SavedRun, load_runs
from vqa_demo.paths import inside
from vqa_demo.run_folders import find_checkpoints
from vqa_demo.ui.server_settings import AppConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
EXAMPLES_LISTING = "examples.json"
SERVED_RUN = "served"


@dataclass
class Example:
    """An example for the Ask tab: an image file with a question and options (possibly empty)."""

    image_path: Path
    question: str
    options: list[str]
    caption: str


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        notes.append(f"{path.name} not found in {path.parent}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        notes.append(f"{path.name} could not be read: {error}")
        return None


@dataclass
class AppAssets:
    """The app's data files, read once at build time."""

    config: AppConfig
    validation: MCSplit | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict | None = None
    curves: dict[str, list[dict]] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[SavedRun] = field(default_factory=list)  # the served run first, then --compare-runs
    run_notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, config: AppConfig) -> AppAssets:
        assets = cls(config)
        assets.read_files()
        return assets

    def read_files(self) -> None:
        """Read every file once; a missing or unreadable one becomes a note."""
        self.validation = self._load_split(self.config.validation_dir)
        predictions = self.config.evaluation_dir / "predictions.jsonl"
        if predictions.is_file():
            try:
                self.records = read_predictions(predictions)
            except RecordError as error:
                self.notes.append(str(error))
        else:
            self.notes.append(f"predictions.jsonl not found in {self.config.evaluation_dir}")
        self.comparison = self._read_comparison(self.config.comparison_file)
        self.curves = self._load_curves()
        self.examples = self._load_examples()
        served = [(self.config.assets, SERVED_RUN)] if self.comparison is not None else []
        self.runs, self.run_notes = load_runs([*served, *self.config.other_runs()])

    # -- loading ----------------------------------------------------------------------------------
    def _read_comparison(self, path: Path) -> dict | None:
        """comparison.json checked against its records (:mod:`vqa_demo.evaluation.records`): a file
        off the contract becomes a note, so no tab draws half of it."""
        if not path.is_file():
            self.notes.append(f"{path.name} not found in {path.parent}")
            return None
        try:
            return read_summary(path)[0]
        except RecordError as error:
            self.notes.append(str(error))
            return None

    def _load_split(self, folder: Path) -> MCSplit | None:
        if not folder.is_dir():
            self.notes.append(f"no validation split at {folder}")
            return None
        try:
            split = load_split(folder, check_images=False, on_bad_row="skip")
        except (DataError, OSError) as error:
            self.notes.append(f"validation split could not be read: {error}")
            return None
        self.notes += [f"validation row left out: {bad}" for bad in split.bad_rows]
        return split

    def _load_curves(self) -> dict[str, list[dict]]:
        """Training curves from comparison.json, else each checkpoint's metrics.jsonl."""
        variants = (self.comparison or {}).get("variants", {})
        curves = {name: v["curve"] for name, v in variants.items() if v.get("curve")}
        if curves:
            return curves
        for root in self.config.checkpoints:
            try:
                directories = find_checkpoints(root)
            except (ValueError, OSError):
                continue
            for directory in directories:
                for candidate in (directory / "metrics.jsonl", directory.parent / "metrics.jsonl"):
                    if candidate.is_file() and inside(candidate, root):
                        name = _variant_name(directory)
                        # A run killed mid-write leaves a partial last line: the rest is still a curve.
                        curves[name] = read_jsonl(candidate, skip_bad_lines=True)
                        break
        return curves

    def _load_examples(self) -> list[Example]:
        """Every example the assets ship, in their listed order (no cap: each family must appear)."""
        folder = self.config.examples_dir
        by_file = {ex.file_name: ex for ex in (self.validation or [])}
        examples: list[Example] = []
        if (folder / EXAMPLES_LISTING).is_file():
            examples = self._listed_examples(folder)
        elif (folder / "metadata.csv").is_file() or (folder / "metadata.jsonl").is_file():
            try:
                split = load_split(folder)
                for ex in split.examples:
                    path = inside(Path(ex.file_name or ""), folder)
                    if path is not None and path.is_file():
                        caption = _caption(ex.metadata.get("family"), ex.question)
                        examples.append(Example(path, ex.question, list(ex.options), caption))
            except DataError as error:
                self.notes.append(f"examples/metadata could not be read: {error}")
        elif folder.is_dir():
            for entry in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                # A symlink out of the folder would be copied into Gradio's cache and served.
                path = inside(Path(entry.name), folder)
                if path is None or not path.is_file():
                    continue
                match = by_file.get(entry.name)
                if match is not None:
                    caption = _caption(match.metadata.get("family"), match.question)
                    examples.append(Example(path, match.question, list(match.options), caption))
                else:
                    examples.append(Example(path, "", [], entry.stem))
        elif self.validation is not None:
            # One example per question family, in split order.
            seen: set[str] = set()
            for ex in self.validation:
                family = ex.metadata.get("family", "")
                path = inside(Path(ex.file_name or ""), self.config.validation_dir)
                if family in seen or path is None or not path.is_file():
                    continue
                seen.add(family)
                examples.append(Example(path, ex.question, list(ex.options), _caption(family, ex.question)))
        return examples

    def _listed_examples(self, folder: Path) -> list[Example]:
        """Examples from ``examples.json`` (written by ``training/ship_default.py``): image, question, options, family."""
        listing = _read_json(folder / EXAMPLES_LISTING, self.notes)
        examples = []
        for entry in listing if isinstance(listing, list) else []:
            if not isinstance(entry, dict):
                continue
            path = inside(Path(str(entry.get("image", ""))), folder)
            if path is None or not path.is_file():
                self.notes.append(f"example image {entry.get('image')!r} is missing from {folder}")
                continue
            question, options = str(entry.get("question", "")), [str(o) for o in entry.get("options", [])]
            examples.append(Example(path, question, options, _caption(entry.get("family"), question)))
        return examples

    # -- access -----------------------------------------------------------------------------------
    def validation_image(self, file_name: str | None) -> Image.Image | None:
        """A validation image by its metadata file name; None if missing or outside the folder."""
        if not file_name:
            return None
        path = inside(Path(file_name), self.config.validation_dir)
        if path is None or not path.is_file():
            return None
        with Image.open(path) as opened:
            return opened.convert("RGB")

    @property
    def variant_names(self) -> list[str]:
        """Variants found in the comparison, else in the stored predictions, in their order."""
        if self.comparison:
            return list(self.comparison.get("variants", {}))
        if self.records:
            return list(self.records[0].get("variants", {}))
        return []


def _caption(family: str | None, question: str) -> str:
    """The full ``family: question`` (the gallery shortens it on screen and shows it whole on hover)."""
    return f"{family}: {question}" if family else question


def _variant_name(directory: Path) -> str:
    """``runs/x/swag-attentive/best`` -> ``swag-attentive``: checkpoint folders may be named best/last."""
    return directory.parent.name if directory.name in {"best", "last"} else directory.name
