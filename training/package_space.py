"""Package a training run for a Hugging Face Space (or any other machine): one folder the app serves as it is.

Example::

    python -m training.package_space --run runs/compare --out space/run
    VQA_CHECKPOINTS=space/run python app.py        # what the Space runs (or: python app.py --checkpoints space/run)

``--run`` is a ``training.compare`` or ``training.train`` output folder. Written (``--out``)::

    <variant>/best/          each variant's best checkpoint (run_config.json, adapter, head) + metrics.jsonl
    comparison.json          the run's comparison (training.compare), or
    evaluation/              its evaluation: metrics.json + predictions.jsonl (the card, Compare, Errors)
    validation/              the validation images the evaluation was made on (the Errors tab)
    <base folder name>/      a local base model, copied (a hub id or the shipped default is not copied:
                             the Space loads it by name); the run configs find it here by name and hash

The app serves the package's own figures: nothing of the shipped default's is used. (The shipped
default in ``assets/`` is built by ``training.ship_default``.)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vqa_demo.base_ref import PACKAGE_PREFIX, is_named
from vqa_demo.checkpoints import read_run_config
from vqa_demo.cli_errors import CliParser, HelpFormatter, UsageError, run_cli
from vqa_demo.loading import resolve_base
from vqa_demo.run_folders import EVALUATION_DIRS, find_checkpoints

RUN_FILES = ("comparison.json",)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def package_checkpoints(run: Path, out: Path) -> list[Path]:
    """Copy each variant's ``best/`` (with its training curve) to ``out/<variant>/best``."""
    directories = find_checkpoints(run)
    copied = []
    for directory in directories:
        variant_folder = directory.parent if directory.name in ("best", "last") else directory
        name = variant_folder.name if variant_folder != run else run.name
        _copy(directory, out / name / "best")
        _copy(variant_folder / "metrics.jsonl", out / name / "metrics.jsonl")
        copied.append(out / name / "best")
    return copied


def package_base(checkpoint: Path, out: Path) -> str:
    """Copy a local base next to the checkpoints; returns what the package's runs load."""
    config = read_run_config(checkpoint)
    source = config.backbone.source
    if source.startswith(PACKAGE_PREFIX) or is_named(source):
        return source
    folder = Path(resolve_base(None, checkpoint))
    if not folder.is_dir():
        return source  # a hub id
    _copy(folder, out / folder.name)
    return str(out / folder.name)


def main(args: argparse.Namespace) -> Path:
    run, out = Path(args.run).resolve(), Path(args.out).resolve()
    if out == run or out.is_relative_to(run):
        raise UsageError(f"--out {args.out} is inside --run {args.run}; give a folder outside the run")
    checkpoints = package_checkpoints(run, out)
    for name in RUN_FILES:
        _copy(run / name, out / name)
    evaluation = next((run / d for d in EVALUATION_DIRS if (run / d).is_dir()), None)
    if evaluation is not None:
        _copy(evaluation, out / "evaluation")
    _copy(run / "validation", out / "validation")
    base = package_base(checkpoints[0], out)
    if evaluation is None and not (run / "comparison.json").is_file():
        print(f"note: {run} has no evaluation; the app will say so (run python -m vqa_demo.evaluate first)")
    print(
        f"packaged {len(checkpoints)} variant(s) on base {base} in {out}; serve it with: "
        f"python app.py --checkpoints {out}"
    )
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = CliParser(
        prog="python -m training.package_space", description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--run", required=True, help="a training.compare or training.train output folder")
    parser.add_argument("--out", required=True, help="the package folder to write (e.g. in the Space repo)")
    return parser.parse_args(argv)


def cli(argv=None) -> Path:
    return run_cli(main, parse_args(argv))


if __name__ == "__main__":
    cli()
