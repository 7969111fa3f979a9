"""Share evaluation work between the processes of an ``accelerate launch`` run.

Under ``accelerate launch --num_processes N`` every process runs the whole script. A :class:`Shard`
says which batches this process computes and puts the per-example records of all processes back
together in the split's order, so metrics computed from them equal a single-process evaluation.

Sharding is by whole batches (process ``r`` takes batches ``r, r + N, r + 2N, ...`` of the single-process
batching): every batch is composed and padded exactly as in one process, so each example's scores are
the same numbers, not merely close. Nothing is padded to equal lengths, so no duplicates arise.

accelerate is imported only when a run really has several processes; the app and a plain
``python -m vqa_demo.evaluate`` never need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Shard:
    """This process's share: ``index`` of ``count`` processes, and how to gather Python objects.

    ``gather`` maps this process's list to the concatenation of every process's list (accelerate's
    ``gather_object``); a single process gathers to itself. ``device`` is the process's own device
    (``None``: the caller's choice) and ``barrier`` accelerate's ``wait_for_everyone``.
    """

    index: int = 0
    count: int = 1
    gather: Callable[[list], list] | None = None
    device: torch.device | None = None
    barrier: Callable[[], None] | None = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @classmethod
    def from_accelerate(cls, state: Any) -> Shard:
        """The share of an ``accelerate.PartialState`` (or ``Accelerator``) process."""
        from accelerate.utils import gather_object

        gather = gather_object if state.num_processes > 1 else None
        return cls(state.process_index, state.num_processes, gather, state.device, state.wait_for_everyone)

    @classmethod
    def from_environment(cls) -> Shard:
        """This process's share when started by ``accelerate launch`` with several processes, else the whole."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # PartialState, unlike Accelerator, does not read the flag `accelerate launch --cpu` sets.
        return cls.from_accelerate(PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")))

    def wait(self) -> None:
        """Block until every process gets here (nothing to wait for in one process)."""
        if self.barrier is not None:
            self.barrier()

    def batch_starts(self, num_examples: int, batch_size: int) -> list[int]:
        """First example index of every batch this process computes."""
        starts = range(0, num_examples, batch_size)
        return list(starts[self.index :: self.count])

    def gather_records(self, records: list[dict[str, Any]], num_examples: int) -> list[dict[str, Any]]:
        """Every process's records, each example once, in the split's order (by ``record["index"]``)."""
        gathered = self.gather(records) if self.gather is not None and self.count > 1 else records
        by_index = {record["index"]: record for record in gathered}
        assert sorted(by_index) == list(range(num_examples)), "evaluation shards lost or repeated examples"
        return [by_index[i] for i in range(num_examples)]
