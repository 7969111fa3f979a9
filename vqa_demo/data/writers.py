"""Write splits: ``metadata.csv`` / ``metadata.jsonl`` and the ``file_name,answer`` submission CSV.

The reading side (formats, validation, :class:`~vqa_demo.data.splits.MCSplit`) is :mod:`vqa_demo.data.splits`.
"""

from __future__ import annotations

import csv
import json
import operator
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vqa_demo.data.csv_cells import csv_row
from vqa_demo.data.jsonl import write_jsonl
from vqa_demo.data.splits import OPTION_COLUMN, DataError, MCExample, MCSplit, column_union


def write_submission(split: MCSplit, predicted_indices: Sequence[int], path: str | Path) -> Path:
    """Write the ``file_name,answer`` CSV (1-based answers) in the split's original order.

    ``predicted_indices[i]`` is the 0-based option chosen for ``split[i]``. A split read from a
    dataset without file names is keyed by its ``id_column`` instead (``question_id,answer``).
    """
    if len(predicted_indices) != len(split):
        raise DataError(
            f"got {len(predicted_indices)} predictions for the {len(split)} examples of split "
            f"{split.name!r}; predict every example, in the split's order"
        )
    key_column = split.id_column or "file_name"
    keys = [ex.id if split.id_column else ex.file_name for ex in split]
    unnamed = [ex.id for ex, key in zip(split, keys) if not key]
    if unnamed:
        raise DataError(
            f"split {split.name!r}: {len(unnamed)} example(s) have no file_name (first: {unnamed[0]}); "
            f"a submission names every row by file_name, so load the split from its metadata file"
        )
    lines = []
    for example, key, predicted in zip(split, keys, predicted_indices):
        try:
            choice = operator.index(predicted)
        except TypeError:
            raise DataError(f"prediction {predicted!r} for {key!r} is not an integer option index") from None
        if not 0 <= choice < example.num_options:
            raise DataError(
                f"prediction {choice} for {key!r} is not a 0-based option index 0..{example.num_options - 1}"
            )
        lines.append((key, choice + 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(csv_row([key_column, "answer"]))
        writer.writerows(csv_row(line) for line in lines)
    return path


def _example_record(example: MCExample) -> dict[str, Any]:
    record: dict[str, Any] = {"file_name": example.file_name, "question": example.question}
    record.update({f"option{i + 1}": text for i, text in enumerate(example.options)})
    if example.answer_index is not None:
        record["answer"] = example.answer_index + 1
    return {**record, **example.metadata}


def write_metadata(split_dir: str | Path, rows: Iterable[Mapping | MCExample], fmt: str = "csv") -> Path:
    """Write ``metadata.csv`` (or ``metadata.jsonl`` with ``fmt="jsonl"``) into ``split_dir``.

    ``rows`` are dicts or :class:`MCExample` s (written as ``file_name, question,
    option1..optionK, answer`` 1-based, then their metadata). Rows keep their order;
    in CSV, missing cells are left empty, list values are written as JSON and formula-like
    cells are neutralised (:mod:`vqa_demo.data.csv_cells`).
    """
    if fmt not in ("csv", "jsonl"):
        raise DataError(f"unknown metadata format {fmt!r}; use 'csv' or 'jsonl'")
    records = [_example_record(r) if isinstance(r, MCExample) else dict(r) for r in rows]
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / f"metadata.{fmt}"
    if fmt == "jsonl":
        return write_jsonl(path, records)
    columns = column_union(records)
    # option columns must stay contiguous even when rows with more options come later
    options = sorted((c for c in columns if OPTION_COLUMN.fullmatch(c)), key=lambda c: int(c[6:]))
    if options:
        first = min(columns.index(c) for c in options)
        rest = [c for c in columns if c not in options]
        columns = rest[:first] + options + rest[first:]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(csv_row(columns))
        for record in records:
            cells = [record.get(c, "") for c in columns]
            writer.writerow(csv_row(json.dumps(v) if isinstance(v, (list, dict)) else v for v in cells))
    return path


def write_split(split: MCSplit, folder: str | Path) -> Path:
    """A self-contained imagefolder copy of ``split`` in ``folder``: each image under its
    :attr:`~vqa_demo.data.splits.MCExample.image_name` (files copied, in-memory images as PNG) and
    ``metadata.csv`` in the split's order, so a run folder travels with the images it was validated on.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for example in split:
        target = folder / example.image_name
        target.parent.mkdir(parents=True, exist_ok=True)
        if example.image_path is not None:
            shutil.copyfile(example.image_path, target)
        else:
            example.load_image().save(target, format="PNG")
        rows.append(replace(example, file_name=example.image_name))
    return write_metadata(folder, rows)
