"""The selection split: the questions ``best/`` is chosen on, never the ones it is reported on.

A run that picks its checkpoint by validation accuracy and then reports that same accuracy reports
the best of about ten draws: optimistic, and its interval ignores the choice. So training runs
choose on a *selection split* and the held-out validation split is only ever evaluated once, at the
end (``training.compare``).

The selection split is ``--selection-split DIR`` when given (an imagefolder split like the others;
train is then used whole), else a seeded slice carved from train: :data:`SELECTION_SIZE` examples,
at most a fifth of train (:func:`selection_size`). The slice is the same for every variant of a
comparison (same data, ``--max-train`` and seed), and is drawn before training, so no training step
ever sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqa_demo.data.splits import MCSplit, load_split

SELECTION_SIZE = 300
MAX_SELECTION_SHARE = 0.2  # of train, so a small train split keeps most of its examples to learn from
CARVED_NAME = "selection"


def selection_size(num_train: int, requested: int = SELECTION_SIZE) -> int:
    """How many training examples the carved selection split takes: ``requested``, at most a fifth of
    train, at least 1 (and none from a train split of fewer than 2 examples)."""
    if num_train < 2:
        return 0
    return max(1, min(requested, int(num_train * MAX_SELECTION_SHARE)))


def carve_selection(train: MCSplit, size: int, seed: int) -> tuple[MCSplit, MCSplit]:
    """``(train without the slice, the slice)``: ``size`` examples drawn with ``seed``; both keep the
    metadata order of ``train``."""
    chosen = set(np.random.default_rng(seed).permutation(len(train))[:size].tolist())
    kept = [ex for i, ex in enumerate(train.examples) if i not in chosen]
    carved = [ex for i, ex in enumerate(train.examples) if i in chosen]
    return (
        MCSplit(train.name, kept, train.root),
        MCSplit(CARVED_NAME, carved, train.root),
    )


def selection_for(
    train: MCSplit, split_dir: str | None, size: int, seed: int
) -> tuple[MCSplit, MCSplit, dict]:
    """``(training examples, selection split, its description)`` for a run.

    The description (saved in ``run_config.json`` and ``comparison.json``) is
    ``{"source": DIR, "n"}`` for an explicit split, or ``{"source": "carved from train", "n", "seed",
    "ids"}`` for a carved one, so the same questions can be evaluated again."""
    if split_dir:
        selection = load_split(Path(split_dir))
        return train, selection, {"source": str(split_dir), "n": len(selection)}
    rest, selection = carve_selection(train, selection_size(len(train), size), seed)
    if not len(selection):
        raise SystemExit(
            f"train has {len(train)} example(s), too few to carve a selection split from: add training "
            "examples or pass --selection-split"
        )
    description = {
        "source": "carved from train",
        "n": len(selection),
        "seed": seed,
        "ids": [ex.id for ex in selection],
    }
    return rest, selection, description


def carved_split(train: MCSplit, description: dict) -> MCSplit:
    """The carved selection split a description names, rebuilt from its train split (by example id)."""
    ids = set(description["ids"])
    return MCSplit(CARVED_NAME, [ex for ex in train.examples if ex.id in ids], train.root)
