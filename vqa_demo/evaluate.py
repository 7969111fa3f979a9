"""Evaluate trained variants on a split through the shared predictor.

Example::

    python -m vqa_demo.evaluate --checkpoints assets/checkpoints --data assets/validation --out runs/eval --circular
    # a real 3B base on a small CPU: int8 language model, two threads (default: one thread, fp32)
    python -m vqa_demo.evaluate --data data/validation --out runs/eval --precision auto --threads 2
    # the same on several GPUs: each process scores its share of the batches, the main process writes
    accelerate launch --num_processes 2 -m vqa_demo.evaluate --data assets/validation --out runs/eval

Writes ``metrics.json`` and ``predictions.jsonl`` (formats in :mod:`vqa_demo.evaluation.runner`), and for an
unlabeled split one ``submission_<variant>.csv`` per variant, rows in the metadata file's order.
``metrics.json`` also records ``threads`` and, with ``--precision``, what it resolved to (``precision``).

Every row and image is checked before the model loads. ``--on-bad-row fail`` (the default) stops
there with the list of bad rows (row number and reason); ``--on-bad-row skip`` prints the list and
evaluates the other rows (a submission then lacks the skipped rows).
"""

from __future__ import annotations

import argparse
import sys

from vqa_demo.cli_errors import CliParser, HelpFormatter, fail, run_cli
from vqa_demo.runtime import DEFAULT_CHECKPOINTS, add_precision_argument, add_threads_argument

# torch, transformers and the data readers load inside the steps that use them, so --help and a
# bad argument answer at once.


def parse_args(argv=None) -> argparse.Namespace:
    parser = CliParser(prog="python -m vqa_demo.evaluate", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        default=[str(DEFAULT_CHECKPOINTS)],
        help="a training.compare or training.train --out folder, best/ dirs, or folders of variant dirs",
    )
    parser.add_argument(
        "--base", default=None, help="base model dir or hub id (default: from the run configs)"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="an imagefolder (root or split folder), a datasets save_to_disk folder, a .parquet/.jsonl "
        "file, or a hub dataset id",
    )
    parser.add_argument(
        "--split", default="validation", help="the split to evaluate in --data (default: validation)"
    )
    parser.add_argument(
        "--columns",
        default=None,
        help="column roles for an unrecognised schema: question=...,options=...(a|b|c for one column "
        "per option),answer=...[,image=...,hint=...,id=...] (default: recognised from the columns)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--variants", nargs="*", default=None, help="subset of variant names (default: all)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward pass")
    parser.add_argument(
        "--circular",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score every option rotation",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu or cuda (ignored under accelerate launch: its device)"
    )
    add_threads_argument(parser)
    add_precision_argument(parser)
    parser.add_argument(
        "--on-bad-row",
        choices=("fail", "skip"),
        default="fail",
        help="a malformed row or image: fail before loading the model (default), or skip it and report it",
    )
    return parser.parse_args(argv)


def load_checked_split(args: argparse.Namespace):
    """The split with every row and image checked; exits with the bad rows' list under ``fail``."""
    from vqa_demo.data.sources import load_data_split
    from vqa_demo.data.splits import DataError, bad_rows_message

    try:
        split = load_data_split(args.data, args.split, columns=args.columns, on_bad_row=args.on_bad_row)
    except DataError as error:
        fail(str(error))
    if split.bad_rows:
        print(f"skipping {bad_rows_message(args.data, split.bad_rows)}", file=sys.stderr)
    if not split.examples:
        fail(f"no usable rows left in {args.data}; fix the rows listed above")
    return split


def main(args: argparse.Namespace) -> dict:
    from vqa_demo.checkpoint_checks import UnsafeCheckpointError
    from vqa_demo.evaluation.runner import evaluate, write_evaluation
    from vqa_demo.evaluation.sharding import Shard
    from vqa_demo.loading import load_predictor
    from vqa_demo.model.base_checks import UnsafeBaseError
    from vqa_demo.runtime import hold_freed_memory, use_threads

    use_threads(args.threads)
    hold_freed_memory()
    split = load_checked_split(args)
    shard = Shard.from_environment()
    device = str(shard.device) if shard.device is not None else args.device
    try:
        predictor = load_predictor(
            args.checkpoints,
            base=args.base,
            device=device,
            batch_size=args.batch_size,
            precision=args.precision,
        )
    except (UnsafeCheckpointError, UnsafeBaseError) as error:
        fail(str(error))
    result = evaluate(predictor, split, args.variants, args.batch_size, circular=args.circular, shard=shard)
    if not shard.is_main:
        return result.metrics
    result.metrics["threads"] = args.threads
    if predictor.precision is not None:
        result.metrics["precision"] = predictor.precision
    write_evaluation(result, args.out, split)
    for name, m in result.metrics["variants"].items():
        if m.get("n"):
            acc = m["accuracy"]
            print(
                f"{name:24s} accuracy {acc['accuracy']:.3f}  95% CI [{acc['low']:.3f}, {acc['high']:.3f}]  n={m['n']}"
            )
    print(f"wrote {args.out}/metrics.json and predictions.jsonl")
    return result.metrics


def base_name(args: argparse.Namespace) -> str | None:
    """The base the checkpoints will load (for a hub error's sentence); None when it cannot be told."""
    from vqa_demo.checkpoints import resolve_base
    from vqa_demo.run_folders import find_checkpoints

    try:
        return resolve_base(args.base, find_checkpoints(args.checkpoints[0])[0])
    except (ValueError, OSError):
        return args.base


def cli(argv=None) -> dict:
    """``python -m vqa_demo.evaluate``: a user mistake exits 2 with one line."""
    args = parse_args(argv)
    return run_cli(main, args, base=lambda: base_name(args))


if __name__ == "__main__":
    cli()
