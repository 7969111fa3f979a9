"""What changes when a training run has several processes (``accelerate launch --num_processes N``).

- :func:`rank_indices`: which examples this process trains on in one micro-batch. The epoch is
  shuffled once with the seed (the same order for any N); global micro-batch ``m`` is rows
  ``[m*b*N, (m+1)*b*N)`` of that order and process ``r`` takes its rows ``[r*b, (r+1)*b)``.
- :class:`RunWriter`: the one process that writes (``metrics.jsonl``, checkpoints, trackers), with
  barriers so the others never run ahead of a save they may read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from vqa_demo.data.jsonl import append_jsonl


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch; a pure function of (seed, epoch), so resume replays it
    and every process count sees the same order."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


@dataclass(frozen=True)
class MicroBatch:
    """One process's share of a global micro-batch.

    ``indices`` are the split indices to run (never empty: a process whose share of a short last batch
    is empty reruns the batch's first example with ``weight`` 0, so every process still takes part in
    the gradient all-reduce); ``global_size`` is the number of examples of the whole micro-batch.
    """

    epoch: int
    indices: list[int]
    weight: float
    global_size: int


def rank_indices(
    num_examples: int, seed: int, micro_index: int, micro_batch: int, num_processes: int, rank: int
) -> MicroBatch:
    """This process's examples of global micro-batch ``micro_index`` (counted over the whole run)."""
    global_batch = micro_batch * num_processes
    batches_per_epoch = math.ceil(num_examples / global_batch)
    epoch, position = divmod(micro_index, batches_per_epoch)
    rows = epoch_order(num_examples, seed, epoch)[position * global_batch : (position + 1) * global_batch]
    mine = rows[rank * micro_batch : (rank + 1) * micro_batch]
    if not mine:
        return MicroBatch(epoch, rows[:1], 0.0, len(rows))
    return MicroBatch(epoch, mine, 1.0, len(rows))


class RunWriter:
    """Everything written in the run directory goes through the main process.

    Trackers (``--report-to tensorboard|wandb``) are accelerate's; they log on the main process only.
    """

    def __init__(self, accelerator, out: Path, report_to: str, config: dict):
        self.accelerator, self.out = accelerator, Path(out)
        self.metrics_path = self.out / "metrics.jsonl"
        self.tracking = report_to != "none"
        if self.tracking:
            # tensorboard's hparams accept only numbers, strings and booleans.
            hparams = {k: v for k, v in config.items() if isinstance(v, int | float | str | bool)}
            accelerator.init_trackers("mc-vqa", config=hparams)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def fresh_start(self, config: dict) -> None:
        """A new run: drop old metrics, record the config."""
        if self.is_main:
            self.metrics_path.unlink(missing_ok=True)
            (self.out / "examples.jsonl").unlink(missing_ok=True)
            (self.out / "config.json").write_text(json.dumps(config, indent=2))
        self.accelerator.wait_for_everyone()

    def append(self, record: dict) -> None:
        """One line of ``metrics.jsonl`` (and the same numbers to the trackers)."""
        if self.is_main:
            append_jsonl(self.metrics_path, record)
        if self.tracking:
            values = {k: v for k, v in record.items() if k != "step" and isinstance(v, int | float)}
            self.accelerator.log(values, step=record["step"])

    def save(self, write, *args, **kwargs) -> None:
        """Run ``write(*args, **kwargs)`` on the main process; everyone waits for it to finish."""
        self.accelerator.wait_for_everyone()
        if self.is_main:
            write(*args, **kwargs)
        self.accelerator.wait_for_everyone()

    def log_examples(self, micro_index: int, batch: MicroBatch, ids: list[str]) -> None:
        """Debug record of which example ids each process trained on (``examples.jsonl``)."""
        from accelerate.utils import gather_object

        mine = ids if batch.weight else []
        shares = gather_object([mine]) if self.accelerator.num_processes > 1 else [mine]
        if self.is_main:
            record = {"micro": micro_index, "epoch": batch.epoch, "ranks": shares}
            append_jsonl(self.out / "examples.jsonl", record)

    def finish(self) -> None:
        """Close the trackers (not ``end_training``: it ends the process group another run may still use)."""
        self.accelerator.wait_for_everyone()
        for tracker in self.accelerator.trackers:
            tracker.finish()
