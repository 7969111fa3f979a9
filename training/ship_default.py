"""Package a compare run as the offline default in ``assets/`` (what the app loads with no settings).

Example::

    python -m training.ship_default --compare runs/compare --data data/synth --base runs/base --assets assets

Layout written::

    assets/base/                       the base model + processor (copied unless it already is assets/base)
    assets/checkpoints/<variant>/      each variant's best checkpoint + its training metrics.jsonl
    assets/validation/                 the validation split the comparison was computed on
    assets/evaluation/predictions.jsonl  the five variants' per-example answers (the Errors tab)
    assets/comparison.json             the comparison (curves, CIs, per family, McNemar): every figure
                                       the app shows; the evaluation's metrics.json holds copies of the
                                       same figures, so it is not shipped
    assets/examples/                   a few validation images per family + examples.json (question,
                                       options, family), the Ask tab's examples
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

from vqa_demo.checkpoints import read_run_config, write_run_config
from vqa_demo.data.splits import MCSplit, load_split

MAX_FILE_BYTES = 10 * 1024 * 1024
SHIPPED_BASE = "assets/base"  # the base as the run configs name it, relative to the repository


def portable(value, replacements: dict[str, str]):
    """``value`` (parsed JSON) with every path under a ``replacements`` key made relative.

    Longest prefixes win, so ``/tmp/r2/synth/validation`` with ``{"/tmp/r2/synth": "data"}`` becomes
    ``data/validation``. Only whole path prefixes are replaced: a tokenizer's ``"/"`` token stays.
    """
    if isinstance(value, dict):
        return {k: portable(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, replacements) for v in value]
    if not isinstance(value, str):
        return value
    for prefix in sorted(replacements, key=len, reverse=True):
        root = prefix.rstrip("/")
        if root and (value == root or value.startswith(root + "/")):
            return replacements[prefix] + value[len(root) :]
    return value


def scrub_build_paths(assets: Path, replacements: dict[str, str]) -> list[Path]:
    """Rewrite every JSON file under ``assets`` so no path of the build machine ships; returns the changed files."""
    changed = []
    for path in sorted(assets.rglob("*.json")):
        data = json.loads(path.read_text())
        cleaned = portable(data, replacements)
        if cleaned != data:
            path.write_text(json.dumps(cleaned, indent=2))
            changed.append(path)
    return changed


def copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def pick_examples(split, per_family: int = 1) -> list:
    """The first ``per_family`` examples of each family, in split order."""
    chosen, counts = [], {}
    for example in split:
        family = example.metadata.get("family", "")
        if counts.get(family, 0) < per_family:
            counts[family] = counts.get(family, 0) + 1
            chosen.append(example)
    return chosen


def point_at_shipped_base(checkpoint: Path) -> None:
    """Rewrite ``checkpoint``'s run config (through :class:`~vqa_demo.config.RunConfig`) to load the shipped base."""
    config = read_run_config(checkpoint)
    write_run_config(checkpoint, replace(config, backbone=replace(config.backbone, source=SHIPPED_BASE)))


def ship_variants(compare: Path, assets: Path, comparison: dict) -> None:
    """Copy each variant's best checkpoint and training curve; ``comparison`` is updated to point at them.
    Zero-training rows (``zero_shot``, a family's own baseline) have no checkpoint to copy."""
    for name, entry in comparison["variants"].items():
        if not entry.get("checkpoint"):
            continue
        target = assets / "checkpoints" / name
        copy_tree(compare / name / "best", target)
        shutil.copy(compare / name / "metrics.jsonl", target / "metrics.jsonl")
        point_at_shipped_base(target)
        comparison["variants"][name]["checkpoint"] = f"checkpoints/{name}"


def ship_predictions(compare: Path, assets: Path) -> None:
    """The per-example answers only: the evaluation's figures already are in ``comparison.json``."""
    target = assets / "evaluation"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(compare / "evaluation" / "predictions.jsonl", target / "predictions.jsonl")


def write_examples(split: MCSplit, folder: Path, per_family: int) -> list[dict]:
    """Copy :func:`pick_examples`'s images into ``folder`` and list them in ``folder/examples.json``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    listing = []
    for example in pick_examples(split, per_family):
        shutil.copy(example.image_path, folder / example.file_name)
        listing.append(
            {
                "image": example.file_name,
                "question": example.question,
                "options": list(example.options),
                "family": example.metadata.get("family", ""),
            }
        )
    (folder / "examples.json").write_text(json.dumps(listing, indent=2))
    return listing


def check_sizes(assets: Path) -> None:
    too_big = [p for p in assets.rglob("*") if p.is_file() and p.stat().st_size >= MAX_FILE_BYTES]
    if too_big:
        raise SystemExit(f"files of 10 MB or more cannot ship: {[str(p) for p in too_big]}")


def main(args: argparse.Namespace) -> Path:
    compare, assets = Path(args.compare), Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    if Path(args.base).resolve() != (assets / "base").resolve():
        copy_tree(Path(args.base), assets / "base")
    comparison = json.loads((compare / "comparison.json").read_text())
    ship_variants(compare, assets, comparison)
    copy_tree(Path(args.data) / "validation", assets / "validation")
    ship_predictions(compare, assets)
    comparison["split"] = "validation"
    (assets / "comparison.json").write_text(json.dumps(comparison, indent=2))
    write_examples(load_split(assets / "validation"), assets / "examples", args.per_family)
    scrub_build_paths(
        assets,
        {
            str(Path(args.base).resolve()): SHIPPED_BASE,
            str(Path(args.data).resolve()): "data",
            str(compare.resolve()): "runs/compare",
            args.base: SHIPPED_BASE,
            args.data: "data",
            str(compare): "runs/compare",
        },
    )
    check_sizes(assets)
    print(f"wrote the offline default to {assets}")
    return assets


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare", required=True, help="output directory of training.compare")
    parser.add_argument("--data", required=True, help="dataset directory with validation/")
    parser.add_argument("--base", required=True, help="the base model directory the variants were trained on")
    parser.add_argument("--assets", default="assets")
    parser.add_argument("--per-family", type=int, default=2, help="example images per family")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
