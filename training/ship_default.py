"""Package a compare run as the offline default in ``assets/`` (what the app loads with no settings).

Example::

    python -m training.ship_default --compare runs/compare --data data/synth --base runs/base --assets assets

Layout written::

    assets/base/                       the base model + processor (copied unless it already is assets/base)
    assets/checkpoints/<variant>/      each variant's best checkpoint + its training metrics.jsonl
    assets/validation/                 the validation split the comparison was computed on
    assets/evaluation/                 metrics.json + predictions.jsonl of the five variants
    assets/comparison.json             the comparison (curves, CIs, per family)
    assets/examples/                   a few validation images + examples.json (question, options, family)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from vqa_demo.data.splits import load_split

MAX_FILE_BYTES = 10 * 1024 * 1024


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


def main(args: argparse.Namespace) -> Path:
    compare, assets = Path(args.compare), Path(args.assets)
    assets.mkdir(parents=True, exist_ok=True)
    if Path(args.base).resolve() != (assets / "base").resolve():
        copy_tree(Path(args.base), assets / "base")
    comparison = json.loads((compare / "comparison.json").read_text())
    for name in comparison["variants"]:
        target = assets / "checkpoints" / name
        copy_tree(compare / name / "best", target)
        shutil.copy(compare / name / "metrics.jsonl", target / "metrics.jsonl")
        config_path = target / "run_config.json"
        config = json.loads(config_path.read_text())
        config["backbone"]["source"] = "assets/base"
        config_path.write_text(json.dumps(config, indent=2))
        comparison["variants"][name]["checkpoint"] = f"checkpoints/{name}"
    copy_tree(Path(args.data) / "validation", assets / "validation")
    copy_tree(compare / "evaluation", assets / "evaluation")
    comparison["split"] = "validation"
    (assets / "comparison.json").write_text(json.dumps(comparison, indent=2))

    split = load_split(assets / "validation")
    examples_dir = assets / "examples"
    if examples_dir.exists():
        shutil.rmtree(examples_dir)
    examples_dir.mkdir()
    listing = []
    for example in pick_examples(split, args.per_family):
        shutil.copy(example.image_path, examples_dir / example.file_name)
        listing.append(
            {
                "image": example.file_name,
                "question": example.question,
                "options": list(example.options),
                "family": example.metadata.get("family", ""),
            }
        )
    (examples_dir / "examples.json").write_text(json.dumps(listing, indent=2))
    scrub_build_paths(
        assets,
        {
            str(Path(args.base).resolve()): "assets/base",
            str(Path(args.data).resolve()): "data",
            str(compare.resolve()): "runs/compare",
            args.base: "assets/base",
            args.data: "data",
            str(compare): "runs/compare",
        },
    )
    too_big = [p for p in assets.rglob("*") if p.is_file() and p.stat().st_size >= MAX_FILE_BYTES]
    if too_big:
        raise SystemExit(f"files of 10 MB or more cannot ship: {[str(p) for p in too_big]}")
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
