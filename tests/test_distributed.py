"""Several processes through accelerate: sharding by rank, one writer, split-and-gathered evaluation.

The slow test starts a real 2-process gloo run on the CPU. accelerate 1.x's ``launch --cpu`` uses its
simple launcher, which starts ONE process unless an MPI hostfile is given; ``--multi_gpu`` with
``ACCELERATE_USE_CPU=1`` (the variable ``--cpu`` sets) starts two through torchrun, each on the CPU
(``DistributedType.MULTI_CPU``, gloo).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.distributed import epoch_order, rank_indices
from training.train import TrainConfig, main, parse_args, smoke_data
from vqa_demo.config import VARIANTS
from vqa_demo.data.jsonl import read_jsonl
from vqa_demo.data.splits import load_split
from vqa_demo.evaluate import main as evaluate_main
from vqa_demo.evaluate import parse_args as evaluate_args
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.evaluation.runner import evaluate, predict_records
from vqa_demo.evaluation.sharding import Shard
from vqa_demo.ui.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent

# Runs inside each launched process: records every write-like call under WATCHED, per rank, then runs
# a training run cut at step 4, its --resume, and the evaluation CLI, as separate main() calls.
ENTRY = r"""
import os, sys, json
WATCHED = os.environ["WATCHED"]
writes, recording = [], [True]

def hook(event, args):
    if not recording[0]:
        return
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink"):
        path, writing = args[0], True
    else:
        return
    if writing and isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(WATCHED):
        writes.append([event, os.fsdecode(path)])

sys.addaudithook(hook)
from training.train import main, parse_args
from vqa_demo.evaluate import main as evaluate_main, parse_args as evaluate_args

train_argv, eval_argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert main(parse_args(train_argv + ["--stop-after-steps", "4"]))["stopped_at"] == 4
main(parse_args(train_argv + ["--resume"]))
evaluate_main(evaluate_args(eval_argv))
recording[0] = False
with open(os.environ["WRITE_LOG"] + "." + os.environ["RANK"], "w") as handle:
    json.dump(writes, handle)
"""


# Runs inside each launched process: every variant trained with batch 1 x accumulation 2 per process.
ENTRY_HEADS = r"""
import json, sys
from training.train import main, parse_args

for variant_argv in json.loads(sys.argv[2]):
    main(parse_args(json.loads(sys.argv[1]) + variant_argv))
"""


def test_every_process_count_sees_the_same_epoch_order_and_each_example_once():
    num_examples, seed, per_device = 13, 3, 2
    for processes in (1, 2, 3):
        global_batch = per_device * processes
        micro_per_epoch = -(-num_examples // global_batch)
        for epoch in range(2):
            seen = []
            for m in range(micro_per_epoch):
                micro_index = epoch * micro_per_epoch + m
                shares = [
                    rank_indices(num_examples, seed, micro_index, per_device, processes, r)
                    for r in range(processes)
                ]
                assert {s.epoch for s in shares} == {epoch}
                assert all(s.indices and s.global_size == shares[0].global_size for s in shares)
                seen += [i for s in shares if s.weight for i in s.indices]
            # The real shares, in rank order, are the seed's epoch order: the same for any process count.
            assert seen == epoch_order(num_examples, seed, epoch)
    tail = [rank_indices(13, 3, 3, 2, 2, r) for r in range(2)]  # the 13th example alone
    assert [(s.weight, s.global_size, len(s.indices)) for s in tail] == [(1.0, 1, 1), (0.0, 1, 1)]


def test_shards_gather_to_the_single_process_evaluation_record_for_record(tiny_predictor, tmp_path):
    data = smoke_data(tmp_path, seed=4)
    split = load_split(data / "validation")
    single = evaluate(tiny_predictor, split, batch_size=3, progress=False)
    shard_one = Shard(index=1, count=3)
    shard_two = Shard(index=2, count=3)
    others = [
        predict_records(tiny_predictor, split, None, 3, False, s.batch_starts(len(split), 3))
        for s in (shard_one, shard_two)
    ]
    # Process 0 of 3 with a gather that returns the shares in a scrambled order, plus a duplicate.
    gather = lambda mine: others[1] + mine + others[0] + others[0][:1]  # noqa: E731
    sharded = evaluate(tiny_predictor, split, batch_size=3, progress=False, shard=Shard(0, 3, gather))
    assert [len(Shard(r, 3).batch_starts(16, 3)) for r in range(3)] == [2, 2, 2]
    assert sharded.records == single.records
    assert sharded.metrics == single.metrics


def test_boolean_flags_switch_off():
    assert parse_args(["--no-cache-features"]).cache_features is False
    assert parse_args([]).cache_features is True
    assert parse_args(["--smoke", "--no-smoke"]).smoke is False
    assert evaluate_args(["--data", "d", "--out", "o", "--circular"]).circular is True
    assert evaluate_args(["--data", "d", "--out", "o", "--no-circular"]).circular is False
    with pytest.raises(SystemExit):
        parse_args(["--report-to", "mlflow"])


def scalar_events(directory: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def launch_two_processes(
    tmp_path: Path, train_argv: list[str], eval_argv: list, script: str = ENTRY
) -> dict[int, list]:
    """Run ``script`` in 2 gloo processes with the two JSON arguments; the write logs per rank (if any)."""
    entry = tmp_path / "entry.py"
    entry.write_text(script)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1",
        WATCHED=str(tmp_path / "runs"), WRITE_LOG=str(tmp_path / "writes"),
    )  # fmt: skip
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), str(entry), json.dumps(train_argv), json.dumps(eval_argv),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    logs = {rank: tmp_path / f"writes.{rank}" for rank in (0, 1)}
    return {rank: json.loads(log.read_text()) for rank, log in logs.items() if log.is_file()}


@pytest.mark.slow
def test_two_processes_train_and_evaluate_like_one_with_twice_the_batch(tmp_path):
    data = smoke_data(tmp_path / "data", seed=0)
    runs = tmp_path / "runs"
    common = dict(
        variant="swag", pooling="attentive", base="tiny", data=str(data), smoke=True, max_train=13,
        lora_dropout=0.0, threads=1, log_examples=True, eval_batch_size=5, report_to="tensorboard",
        selection_split=str(data / "validation"),
    )  # fmt: skip
    main(TrainConfig(out=str(runs / "one"), batch_size=4, **common))
    train_argv = [
        "--variant", "swag", "--pooling", "attentive", "--base", "tiny", "--data", str(data), "--smoke",
        "--max-train", "13", "--lora-dropout", "0", "--threads", "1", "--log-examples",
        "--eval-batch-size", "5", "--report-to", "tensorboard", "--batch-size", "2", "--out", str(runs / "two"),
        "--selection-split", str(data / "validation"),
    ]  # fmt: skip
    eval_argv = [
        "--checkpoints", str(runs / "two" / "best"), "--data", str(data / "validation"),
        "--out", str(runs / "two-eval"), "--batch-size", "3", "--circular",
    ]  # fmt: skip
    writes = launch_two_processes(tmp_path, train_argv, eval_argv)

    # One writer: the main process wrote the run (checkpoints, state, metrics, trackers), the other nothing.
    assert writes[1] == []
    written = {Path(path).name for _, path in writes[0]}
    assert {"metrics.jsonl", "examples.jsonl", "metrics.json", "predictions.jsonl"} <= written

    # Same logged losses and accuracies as one process with the doubled batch (here cut and resumed).
    one, two = read_jsonl(runs / "one" / "metrics.jsonl"), read_jsonl(runs / "two" / "metrics.jsonl")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [2, 4, 6, 8]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert (b.get("accuracy"), b["epoch"], b["lr"]) == (a.get("accuracy"), a["epoch"], a["lr"])
    adapter_one = load_file(runs / "one" / "last" / "adapter_model.safetensors")
    adapter_two = load_file(runs / "two" / "last" / "adapter_model.safetensors")
    assert adapter_one.keys() == adapter_two.keys()
    for key in adapter_one:
        torch.testing.assert_close(adapter_two[key], adapter_one[key], rtol=0, atol=1e-5)
    head_one = load_file(runs / "one" / "last" / "head.safetensors")
    head_two = load_file(runs / "two" / "last" / "head.safetensors")
    # Every key, the two frozen shift biases (over options, over positions) included.
    assert head_one.keys() == head_two.keys()
    for key in head_one:
        torch.testing.assert_close(head_two[key], head_one[key], rtol=0, atol=1e-5)
    best_one = read_predictions(runs / "one" / "best_selection" / "predictions.jsonl")
    best_two = read_predictions(runs / "two" / "best_selection" / "predictions.jsonl")
    assert [r["index"] for r in best_two] == list(range(16))
    for a, b in zip(best_one, best_two):
        (va,), (vb,) = a["variants"].values(), b["variants"].values()
        assert va["choice"] == vb["choice"]
        scores_a, scores_b = torch.tensor(va["option_scores"]), torch.tensor(vb["option_scores"])
        torch.testing.assert_close(scores_b, scores_a, atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.tensor(vb["probabilities"]), torch.tensor(va["probabilities"]), atol=1e-5, rtol=0)  # fmt: skip

    # Each training example once per epoch across the ranks, in the one-process order.
    shares_one = read_jsonl(runs / "one" / "examples.jsonl")
    shares_two = read_jsonl(runs / "two" / "examples.jsonl")
    assert [r["micro"] for r in shares_two] == list(range(8))
    ids = sorted(ex.id for ex in load_split(data / "train").examples[:13])
    for epoch in (0, 1):
        seen = [i for r in shares_two if r["epoch"] == epoch for share in r["ranks"] for i in share]
        assert sorted(seen) == ids
    for a, b in zip(shares_one, shares_two):
        assert len(b["ranks"]) == 2 and all(len(share) <= 2 for share in b["ranks"])
        assert a["ranks"] == [b["ranks"][0] + b["ranks"][1]]

    # The tracker got the same numbers as metrics.jsonl.
    losses = scalar_events(runs / "two" / "trackers" / "mc-vqa", "loss")
    assert losses == pytest.approx({r["step"]: r["loss"] for r in two}, rel=1e-6)

    # The 2-process evaluation CLI (circular too) equals a single-process one record for record.
    evaluate_main(evaluate_args([*eval_argv[:5], str(runs / "one-eval"), *eval_argv[6:]]))
    single = read_predictions(runs / "one-eval" / "predictions.jsonl")
    assert read_predictions(runs / "two-eval" / "predictions.jsonl") == single
    metrics_one = json.loads((runs / "one-eval" / "metrics.json").read_text())
    assert json.loads((runs / "two-eval" / "metrics.json").read_text()) == metrics_one


@pytest.mark.slow
def test_two_processes_with_accumulation_train_every_head_like_one_with_the_global_batch(tmp_path):
    """2 processes x batch 1 x accumulation 2 = 1 process x batch 4, token-exact for COND_GEN, whose
    rows carry answers of unequal token lengths (tests/test_accumulation.py checks that for this data)."""
    from tests.test_accumulation import SEED, answer_token_counts

    data = smoke_data(tmp_path / "data", seed=SEED)
    counts = answer_token_counts(data, SEED, 4)
    assert sum(counts[:2]) != sum(counts[2:4]), counts  # the first step's two micro-batches
    runs = tmp_path / "runs"
    common = [
        "--base", "tiny", "--data", str(data), "--max-train", "12", "--max-val", "2", "--max-steps", "3",
        "--lora-dropout", "0", "--eval-every", "100", "--log-every", "1", "--eval-batch-size", "2",
        "--threads", "1", "--seed", str(SEED),
        # an explicit selection split keeps all 12 training examples (3 whole global batches of 4)
        "--selection-split", str(data / "validation"),
    ]  # fmt: skip
    variants = {name: ["--variant", head] + (["--pooling", pooling] if pooling else []) for name, (head, pooling) in VARIANTS.items()}  # fmt: skip
    for name, flags in variants.items():
        main(parse_args(common + flags + ["--batch-size", "4", "--out", str(runs / f"one-{name}")]))
    per_variant = [
        flags + ["--batch-size", "1", "--grad-accum", "2", "--out", str(runs / f"two-{name}")]
        for name, flags in variants.items()
    ]
    launch_two_processes(tmp_path, common, per_variant, script=ENTRY_HEADS)
    for name in variants:
        one, two = (
            read_jsonl(runs / f"one-{name}" / "metrics.jsonl"),
            read_jsonl(runs / f"two-{name}" / "metrics.jsonl"),
        )
        assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3]
        for a, b in zip(one, two):
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), name
        for file in ("adapter_model.safetensors", "head.safetensors"):
            if not (runs / f"one-{name}" / "last" / file).is_file():
                continue
            first, second = (
                load_file(runs / f"one-{name}" / "last" / file),
                load_file(runs / f"two-{name}" / "last" / file),
            )
            assert first.keys() == second.keys()
            for key in first:
                torch.testing.assert_close(second[key], first[key], rtol=0, atol=1e-5, msg=f"{name}: {key}")
