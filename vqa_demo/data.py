"""Multiple-choice VQA data: examples, splits and loaders (writers: :mod:`vqa_demo.data_writers`).

A split is a Hugging Face ``imagefolder``-style directory: images (possibly in
subfolders) plus ``metadata.csv`` or ``metadata.jsonl`` with one row per question::

    file_name,question,option1,option2,option3,option4,answer[,family,...]

``answer`` is the 1-based number of the correct option; splits without it (or with
blank cells) are unlabeled. Instead of ``option1..optionK`` a single ``options``
column holding a list (a JSON list string in CSV) is accepted. Rows may have fewer
options than the header by leaving the trailing option cells empty.

Order matters: ``datasets.load_dataset("imagefolder", ...)`` sorts the images by
file name, so predictions made on it and written next to the original metadata
end up on the wrong rows (a known cause of wrong submissions). Everything here
keeps the metadata file order, and :func:`~vqa_demo.data_writers.write_submission` writes in that order.

Files are read with the stdlib ``csv`` and ``json`` modules rather than pandas so
that no cell is silently turned into a float, a date or NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

MIN_OPTIONS = 2
MAX_OPTIONS = 8
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
IMAGE_COLUMN = "image"

OPTION_COLUMN = re.compile(r"option([1-9]\d*)")
_MAX_LISTED = 5


class DataError(ValueError):
    """A problem in user-supplied data; the message says what to change."""


@dataclass(frozen=True)
class MCExample:
    """One image, one question and its K answer options.

    ``answer_index`` is 0-based (the files use 1-based ``answer``) and ``None`` on
    unlabeled splits. The image is either a file (``image_path``) or an in-memory
    PIL image (``image``); ``metadata`` holds the remaining columns as strings.
    """

    id: str
    question: str
    options: tuple[str, ...]
    answer_index: int | None
    file_name: str | None = None
    image_path: Path | None = None
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    metadata: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def num_options(self) -> int:
        return len(self.options)

    def load_image(self) -> Image.Image:
        """Return the image as RGB, rotated upright according to its EXIF orientation."""
        if self.image is not None:
            return ImageOps.exif_transpose(self.image).convert("RGB")
        if self.image_path is None:
            raise DataError(f"example {self.id!r} has no image: give it an image_path or an image")
        try:
            with Image.open(self.image_path) as opened:
                return ImageOps.exif_transpose(opened).convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image file {self.image_path} of example {self.id!r} does not exist") from None


@dataclass
class MCSplit:
    """A named list of examples, always in the order of the original metadata file."""

    name: str
    examples: list[MCExample]
    root: Path | None = None

    @property
    def labeled(self) -> bool:
        """True when every example has a gold answer (an empty split is not labeled)."""
        return bool(self.examples) and all(ex.answer_index is not None for ex in self.examples)

    @property
    def num_options(self) -> int | None:
        """K when every example has the same number of options, else None."""
        counts = {ex.num_options for ex in self.examples}
        return counts.pop() if len(counts) == 1 else None

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[MCExample]:
        return iter(self.examples)

    def __getitem__(self, index: int) -> MCExample:
        return self.examples[index]


# ---------------------------------------------------------------- row parsing


def _text(value: Any) -> str:
    """A cell as stripped text; missing cells (None, NaN from pandas) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def _where(row_number: int, file_name: str | None, source: str | None) -> str:
    place = f"row {row_number}" + (f" of {source}" if source else "")
    return place + (f" (file_name {file_name!r})" if file_name else "")


def column_union(records: list[Mapping]) -> list[str]:
    """Ordered union of the keys of all records (JSONL rows may differ)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def _option_columns(columns: list[str], source: str) -> list[str]:
    """``option1..optionK`` from the header, checked to be contiguous with 2 <= K <= 8."""
    numbers = sorted(int(m.group(1)) for c in columns if (m := OPTION_COLUMN.fullmatch(c)))
    if not numbers:
        return []
    expected = list(range(1, numbers[-1] + 1))
    if numbers != expected:
        missing = ", ".join(f"option{n}" for n in sorted(set(expected) - set(numbers)))
        found = ", ".join(f"option{n}" for n in numbers)
        raise DataError(
            f"{source}: option columns must be numbered option1..optionK without gaps; "
            f"found {found}, missing {missing}"
        )
    if not MIN_OPTIONS <= len(numbers) <= MAX_OPTIONS:
        raise DataError(
            f"{source}: found {len(numbers)} option column(s); use {MIN_OPTIONS} to {MAX_OPTIONS} "
            f"(option1..option{MAX_OPTIONS})"
        )
    return [f"option{n}" for n in numbers]


def _parse_options_cell(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise DataError(
                f'{where}: options {value!r} is not a JSON list; write it like ["red", "blue", "green"]'
            ) from None
    if hasattr(value, "tolist"):  # numpy / arrow arrays from in-memory datasets
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{where}: options must be a list of option texts, got {type(value).__name__}")
    return [_text(v) for v in value]


def _trim_options(texts: list[str], where: str) -> tuple[str, ...]:
    """Drop trailing empty options (a row with fewer options); refuse gaps and K out of range."""
    filled = [i for i, t in enumerate(texts) if t]
    count = filled[-1] + 1 if filled else 0
    gaps = [i + 1 for i in range(count) if not texts[i]]
    if gaps:
        raise DataError(
            f"{where}: option{gaps[0]} is empty but option{count} is not; fill options from "
            f"option1 upwards and leave only the trailing ones empty"
        )
    if not MIN_OPTIONS <= count <= MAX_OPTIONS:
        raise DataError(f"{where}: has {count} non-empty option(s); give {MIN_OPTIONS} to {MAX_OPTIONS}")
    return tuple(texts[:count])


def _parse_answer(value: Any, num_options: int, where: str) -> int | None:
    """1-based ``answer`` cell -> 0-based index; blank -> None."""
    text = _text(value)
    if not text:
        return None
    number: int | None = None
    if not isinstance(value, bool):
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)  # "2.0" from spreadsheets that store numbers as floats
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                number = int(as_float)
    if number is None:
        raise DataError(
            f"{where}: answer {text!r} is not an integer; write the 1-based number of the "
            f"correct option, 1 to {num_options} (K={num_options})"
        )
    if not 1 <= number <= num_options:
        raise DataError(
            f"{where}: answer {number} is out of range; it must be the 1-based option number "
            f"1 to {num_options} (this row has K={num_options} options)"
        )
    return number - 1


def _image_from_cell(value: Any) -> tuple[Image.Image | None, Path | None]:
    """An ``image`` cell: a PIL image, an undecoded ``{"bytes", "path"}`` dict, or a path."""
    if value is None:
        return None, None
    if isinstance(value, Image.Image):
        return value, None
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return Image.open(io.BytesIO(value["bytes"])), None
        return None, Path(value["path"]) if value.get("path") else None
    if isinstance(value, (str, Path)) and str(value).strip():
        return None, Path(str(value).strip())
    return None, None


def examples_from_records(
    records: Iterable[Mapping], root: Path | None, name: str, source: str | None = None
) -> MCSplit:
    """Parse metadata rows into an :class:`MCSplit`, keeping their order.

    With a ``root`` (imagefolder) every row needs ``file_name`` and gets
    ``image_path = root / file_name``; without one ``file_name`` is optional and an
    ``image`` column may carry the image. ``source`` names the data in error
    messages (e.g. ``"metadata.csv"``); rows are numbered from 1, header excluded.
    Example ids are the file name (``"name#2"``, ... for repeats) or ``"row-{i}"``
    with ``i`` the 0-based position.
    """
    rows = [{str(k).strip(): v for k, v in record.items()} for record in records]
    source = source or name
    columns = column_union(rows)
    option_columns = _option_columns(columns, source)
    has_list = "options" in columns
    if option_columns and has_list:
        raise DataError(f"{source}: has both an 'options' column and option1.. columns; keep only one kind")
    required = ["question"] + (["file_name"] if root is not None else [])
    missing = [c for c in required if c not in columns]
    if not option_columns and not has_list:
        missing.append("option1..optionK (or options)")
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(columns) or 'none'}"
        )
    special = {"question", "file_name", "answer", "options", IMAGE_COLUMN, *option_columns}
    extra_columns = [c for c in columns if c and c not in special]

    examples: list[MCExample] = []
    id_counts: dict[str, int] = {}
    for index, row in enumerate(rows):
        file_name = _text(row.get("file_name")) or None
        where = _where(index + 1, file_name, source)
        if root is not None and file_name is None:
            raise DataError(f"{where}: file_name is empty; give the image path relative to {root}")
        question = _text(row.get("question"))
        if not question:
            raise DataError(f"{where}: question is empty")
        if has_list:
            texts = _parse_options_cell(row.get("options"), where)
        else:
            texts = [_text(row.get(c)) for c in option_columns]
        options = _trim_options(texts, where)
        answer_index = _parse_answer(row.get("answer"), len(options), where)
        image, image_path = _image_from_cell(row.get(IMAGE_COLUMN))
        if root is not None:
            image_path = root / file_name
        if file_name is None:
            example_id = f"row-{index}"
        else:
            id_counts[file_name] = id_counts.get(file_name, 0) + 1
            repeat = id_counts[file_name]
            example_id = file_name if repeat == 1 else f"{file_name}#{repeat}"
        examples.append(
            MCExample(
                id=example_id,
                question=question,
                options=options,
                answer_index=answer_index,
                file_name=file_name,
                image_path=image_path,
                image=image,
                metadata={c: _text(row.get(c)) for c in extra_columns},
            )
        )
    return MCSplit(name=name, examples=examples, root=root)


# ---------------------------------------------------------------- loaders


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise DataError(f"{path} is empty; it needs a header row such as file_name,question,option1,...")
        header = [name.strip() for name in reader.fieldnames]
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise DataError(f"{path}: duplicate column(s) {', '.join(duplicates)}; give each column once")
        rows = []
        for row in reader:
            if None in row:  # DictReader puts surplus cells under the key None
                raise DataError(
                    f"{path}: row {len(rows) + 1} has more cells than the header has columns "
                    f"({len(header)}); quote cells that contain commas"
                )
            rows.append(row)
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}: line {line_number} is not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {line_number} must be a JSON object, one row per line")
            rows.append(row)
    return rows


def _find_metadata(path: Path) -> Path:
    if path.is_file():
        if path.suffix not in (".csv", ".jsonl"):
            raise DataError(f"{path}: expected a metadata .csv or .jsonl file or a split directory")
        return path
    if not path.is_dir():
        raise DataError(f"split directory {path} does not exist")
    found = [path / f for f in METADATA_FILES if (path / f).is_file()]
    if len(found) > 1:
        raise DataError(f"{path} has both metadata.csv and metadata.jsonl; keep only one")
    if not found:
        subdirs = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("metadata.*")))
        hint = f"; these subfolders have one: {', '.join(subdirs)}" if subdirs else ""
        raise DataError(f"{path} has no metadata.csv or metadata.jsonl{hint}")
    return found[0]


def _check_images(split: MCSplit, metadata_file: Path) -> None:
    missing = [ex.file_name for ex in split if ex.image_path is not None and not ex.image_path.is_file()]
    if missing:
        listed = ", ".join(str(m) for m in missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise DataError(
            f"{len(missing)} image file(s) listed in {metadata_file.name} are missing from "
            f"{split.root}: {listed}{more}; file_name must be relative to that directory"
        )


def load_split(path: str | Path, name: str | None = None, check_images: bool = True) -> MCSplit:
    """Load an imagefolder split (``metadata.csv`` or ``metadata.jsonl``) in file order.

    ``path`` is the split directory or its metadata file; ``name`` defaults to the
    directory name. Unlike ``datasets``' imagefolder loader this never sorts, so the
    examples (and any submission written from them) follow the metadata rows.
    """
    metadata_file = _find_metadata(Path(path))
    root = metadata_file.parent
    try:
        rows = _read_csv(metadata_file) if metadata_file.suffix == ".csv" else _read_jsonl(metadata_file)
    except UnicodeDecodeError:
        raise DataError(f"{metadata_file} is not UTF-8 text; save it as UTF-8") from None
    split = examples_from_records(rows, root, name or root.name, source=str(metadata_file))
    if check_images:
        _check_images(split, metadata_file)
    return split


def load_hf_dataset(dataset: Any, name: str = "hf") -> MCSplit:
    """Convert an in-memory ``datasets.Dataset`` (or a list of dicts) to an :class:`MCSplit`.

    Columns: ``question``; ``option1..optionK`` or an ``options`` list; optional 1-based
    ``answer``, ``file_name`` and ``image`` (PIL images). Rows keep the dataset's order,
    which for ``load_dataset("imagefolder")`` is sorted by file name, not the metadata
    order: to write a submission, load the folder with :func:`load_split` instead.
    """
    if isinstance(dataset, Mapping):
        raise DataError(
            f"got a mapping of splits ({', '.join(map(str, dataset))}); pass one, e.g. ds['test']"
        )
    return examples_from_records(dataset, root=None, name=name)
