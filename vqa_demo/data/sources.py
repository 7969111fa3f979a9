"""``--data``: one loader for what users have, used by train, compare and evaluate.

``--data`` may be

- an imagefolder: a folder with ``train/`` and ``validation/`` split folders, or one split folder,
  each with ``metadata.csv`` or ``metadata.jsonl`` (:func:`~vqa_demo.data.splits.load_split`);
- a ``datasets`` ``save_to_disk`` folder, of a ``DatasetDict`` (the split is picked) or of one ``Dataset``;
- a ``.parquet`` or ``.jsonl`` file (one split), or a folder of ``<split>.parquet`` / ``<split>.jsonl``
  files, with an ``image`` column (images as data, or paths relative to the file);
- a hub dataset id, loaded with ``datasets.load_dataset`` (network or the local cache).

A split name has aliases (``validation``: ``val``, ``valid``, ``dev``). Columns are recognised by
:func:`~vqa_demo.data.schemas.detect_schema` or named with ``columns`` (``--columns``). Rows keep the
source's order; bad rows fail the load or are skipped (``on_bad_row``) as in an imagefolder, and rows
from a dataset need an image.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vqa_demo.data.jsonl import JsonlError, read_jsonl
from vqa_demo.data.rows import DataError
from vqa_demo.data.schemas import Schema, check_columns, detect_schema, parse_columns, to_project_row
from vqa_demo.data.splits import (
    METADATA_FILES,
    MCSplit,
    OnBadRow,
    column_union,
    examples_from_records,
    load_split,
)

SPLIT_ALIASES = {"validation": ("validation", "val", "valid", "dev"), "train": ("train",), "test": ("test",)}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_ROW_FILES = (".parquet", ".jsonl")


def split_names(split: str) -> tuple[str, ...]:
    """The names a split may go by, ``split`` first."""
    return SPLIT_ALIASES.get(split, (split,))


def pick_split(available: list[str], split: str, source: str) -> str:
    """The name in ``available`` for ``split`` (or an alias); raises :class:`DataError` listing them."""
    found = next((name for name in split_names(split) if name in available), None)
    if found is None:
        raise DataError(
            f"{source} has no {split!r} split (splits found: {', '.join(available) or 'none'}); "
            f"add or rename one to {split!r} (evaluate: or pass --split with one of them)"
        )
    return found


def load_data_split(
    data: str | Path,
    split: str = "validation",
    *,
    columns: str | None = None,
    on_bad_row: OnBadRow = "fail",
    check_images: bool = True,
    single_split: bool = True,
) -> MCSplit:
    """The split ``split`` of ``--data`` (see the module docstring), rows in the source's order.

    ``single_split=False`` (training, which needs two different splits) refuses data that is one split
    only (a split folder, one file, a saved ``Dataset``), which would otherwise serve as both.
    """
    path = Path(data)
    if not single_split and _is_one_split(path):
        raise DataError(
            f"--data {data} is a single split; training needs train and validation: give the folder "
            "that holds train/ and validation/ (or a DatasetDict, or train.* and validation.* files)"
        )
    if path.is_file():
        return _file_split(path, split, columns, on_bad_row, check_images)
    if path.is_dir():
        return _folder_split(path, split, columns, on_bad_row, check_images)
    if _HUB_ID.fullmatch(str(data)) and not str(data).startswith("."):
        return _hub_split(str(data), split, columns, on_bad_row)
    raise DataError(
        f"--data {data}: no such folder or file; give an imagefolder, a datasets save_to_disk folder, "
        "a .parquet or .jsonl file, or a hub dataset id"
    )


def _is_one_split(path: Path) -> bool:
    if path.is_file():
        return True
    return path.is_dir() and (
        any((path / name).is_file() for name in METADATA_FILES) or (path / "state.json").is_file()
    )


def _folder_split(path: Path, split: str, columns, on_bad_row, check_images) -> MCSplit:
    if any((path / name).is_file() for name in METADATA_FILES) and columns is None:
        return load_split(path, check_images=check_images, on_bad_row=on_bad_row)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _disk_split(path, split, columns, on_bad_row)
    subfolders = sorted(p.name for p in path.iterdir() if p.is_dir())
    files = {p.name: p for p in sorted(path.glob("*")) if p.suffix in _ROW_FILES}
    for name in split_names(split):
        if name in subfolders:
            return _folder_split(path / name, split, columns, on_bad_row, check_images)
        for suffix in _ROW_FILES:
            if f"{name}{suffix}" in files:
                return _file_split(files[f"{name}{suffix}"], split, columns, on_bad_row, check_images)
    found = subfolders + list(files)
    raise DataError(
        f"--data {path}: no {split!r} split (found: {', '.join(found) or 'nothing'}); add a {split}/ folder "
        f"with metadata.csv, or a {split}.parquet / {split}.jsonl file, or pass --split"
    )


def _disk_split(path: Path, split: str, columns, on_bad_row) -> MCSplit:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        name = pick_split(list(loaded), split, str(path))
        return rows_split(loaded[name], name, f"{path} [{name}]", columns, on_bad_row)
    return rows_split(loaded, split, str(path), columns, on_bad_row)


def _file_split(path: Path, split: str, columns, on_bad_row, check_images) -> MCSplit:
    if path.suffix == ".parquet":
        import pyarrow.parquet

        return rows_split(pyarrow.parquet.read_table(path).to_pylist(), split, str(path), columns, on_bad_row)
    if path.suffix not in (".jsonl", ".csv"):
        raise DataError(f"--data {path}: expected a .parquet, .jsonl or .csv file, or a folder")
    if columns is None and path.suffix == ".csv":
        return load_split(path, check_images=check_images, on_bad_row=on_bad_row)
    try:
        records = read_jsonl(path)
    except JsonlError as error:
        raise DataError(str(error)) from None
    if columns is None and "file_name" in column_union(records):
        return load_split(path, check_images=check_images, on_bad_row=on_bad_row)
    return rows_split(records, split, str(path), columns, on_bad_row, image_root=path.parent)


def _hub_split(dataset_id: str, split: str, columns, on_bad_row) -> MCSplit:
    import datasets

    from vqa_demo.hub_errors import hub_problem

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as error:  # noqa: BLE001 - the hub's many error types become one sentence
        raise DataError(hub_problem(error, dataset_id, "--data", "dataset")) from None
    name = pick_split(list(loaded), split, dataset_id)
    return rows_split(loaded[name], name, f"{dataset_id} [{name}]", columns, on_bad_row)


def rows_split(
    records: Any,
    name: str,
    source: str,
    columns: str | None = None,
    on_bad_row: OnBadRow = "fail",
    image_root: Path | None = None,
) -> MCSplit:
    """An :class:`MCSplit` of dataset rows (a ``datasets.Dataset`` or dicts) in any known or named schema.

    Every row needs an image (data, or a path inside ``image_root``); answers follow the schema's rule.
    """
    names = list(records.column_names) if hasattr(records, "column_names") else column_union(records)
    schema = parse_columns(columns) if columns else detect_schema(names)
    check_columns(schema, names, source)
    rows = [_with_image_file(to_project_row(r, schema), schema, image_root) for r in records]
    root = image_root if rows and all("file_name" in row for row in rows) else None
    split = examples_from_records(
        rows,
        root,
        name,
        source=source,
        on_bad_row=on_bad_row,
        check_images=root is not None,
        flexible_answers=schema.flexible_answers,
        id_column=schema.id,
        require_image=True,
    )
    print_schema(schema, source)
    return split


def _with_image_file(row: dict[str, Any], schema: Schema, image_root: Path | None) -> dict[str, Any]:
    """An image given as a path (a JSONL file's cell) becomes the row's ``file_name`` under ``image_root``."""
    image = row.get("image")
    if image_root is not None and isinstance(image, str) and image.strip():
        row["file_name"] = row.pop("image").strip()
    elif (
        isinstance(image, Mapping) and image.get("path") and not image.get("bytes") and image_root is not None
    ):
        row["file_name"] = str(image["path"])
        row.pop("image")
    return row


def print_schema(schema: Schema, source: str) -> None:
    """Say which columns were read (the user sees a misrecognised schema at once)."""
    options = schema.options[0] if schema.option_list else "|".join(schema.options)
    print(
        f"{source}: {schema.name} schema: question={schema.question}, options={options}, "
        f"answer={schema.answer or '(none: unlabeled)'}"
        + (f", hint={schema.hint}" if schema.hint else "")
        + (f", id={schema.id}" if schema.id else ""),
        file=sys.stderr,
    )
