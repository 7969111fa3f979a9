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

from vqa_demo.runtime import DEFAULT_CHECKPOINTS, add_precision_argument, add_threads_argument

# torch, transformers and the data readers load inside the steps that use them, so --help and a
# bad argument answer at once.


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoints", nargs="+", default=[str(DEFAULT_CHECKPOINTS)], help="variant dirs or parents"
    )
    parser.add_argument(
        "--base", default=None, help="base model dir or hub id (default: from the run configs)"
    )
    parser.add_argument("--data", required=True, help="split directory with metadata.csv/jsonl")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--variants", nargs="*", default=None, help="subset of variant names")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--circular",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score every option rotation",
    )
    parser.add_argument("--device", default="auto", help="ignored under accelerate launch (its device)")
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
    from vqa_demo.data.splits import DataError, bad_rows_message, load_split

    try:
        split = load_split(args.data, on_bad_row=args.on_bad_row)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    if split.bad_rows:
        print(f"skipping {bad_rows_message(args.data, split.bad_rows)}", file=sys.stderr)
    if not split.examples:
        raise SystemExit(f"error: no usable rows left in {args.data}")
    return split


def main(args: argparse.Namespace) -> dict:
    from vqa_demo.evaluation.runner import evaluate, write_evaluation
    from vqa_demo.evaluation.sharding import Shard
    from vqa_demo.loading import load_predictor
    from vqa_demo.runtime import use_threads

    use_threads(args.threads)
    split = load_checked_split(args)
    shard = Shard.from_environment()
    device = str(shard.device) if shard.device is not None else args.device
    predictor = load_predictor(
        args.checkpoints,
        base=args.base,
        device=device,
        batch_size=args.batch_size,
        precision=args.precision,
    )
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


if __name__ == "__main__":
    main(parse_args())
