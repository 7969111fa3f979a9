"""Multiple-choice VQA data: examples, splits and loaders (writers: :mod:`vqa_demo.data.writers`).

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
keeps the metadata file order, and :func:`~vqa_demo.data.writers.write_submission` writes in that order.

Files are read with the stdlib ``csv`` and ``json`` modules rather than pandas so
that no cell is silently turned into a float, a date or NaN.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.data.csv_cells import read_cell
from vqa_demo.data.jsonl import JsonlError, read_jsonl
from vqa_demo.data.rows import (
    OPTION_COLUMN,
    BadRow,
    DataError,
    cell_text,
    check_image_file,
    clean_question,
    image_from_cell,
    image_path_in,
    normalise_answer,
    option_columns,
    parse_answer,
    parse_options_cell,
    trim_options,
    where,
)
from vqa_demo.inputs.errors import InputError
from vqa_demo.inputs.image import prepare_image

__all__ = ["OPTION_COLUMN", "MAX_OPTIONS", "MIN_OPTIONS", "BadRow", "DataError", "MCExample", "MCSplit"]

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
IMAGE_COLUMN = "image"
OnBadRow = Literal["fail", "skip"]
_MAX_LISTED = 20


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

    @property
    def image_name(self) -> str:
        """The file name the image has in a written copy of the split: ``file_name``, else ``<id>.png``
        (a dataset's in-memory image; characters other than letters, digits, ``-_.#`` become ``_``)."""
        return self.file_name or re.sub(r"[^\w.#-]", "_", self.id).lstrip(".") + ".png"

    def load_image(self) -> Image.Image:
        """Return the image as RGB, upright, after the app's upload checks (formats, byte and pixel limits)."""
        if self.image is None and self.image_path is None:
            raise DataError(f"example {self.id!r} has no image: give it an image_path or an image")
        try:
            return prepare_image(self.image if self.image is not None else self.image_path).image
        except InputError as error:
            raise DataError(f"image of example {self.id!r}: {error.message}") from None


@dataclass
class MCSplit:
    """A named list of examples, always in the order of the original metadata file."""

    name: str
    examples: list[MCExample]
    root: Path | None = None
    bad_rows: list[BadRow] = field(default_factory=list)  # rows left out (``on_bad_row="skip"``)
    # the column that names each row in a submission when there is no file_name (e.g. question_id)
    id_column: str | None = None

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


# ---------------------------------------------------------------- rows


def column_union(records: list[Mapping]) -> list[str]:
    """Ordered union of the keys of all records (JSONL rows may differ)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def bad_rows_message(source: str, bad_rows: list[BadRow]) -> str:
    """One line per bad row (the first ``_MAX_LISTED``), for an error or a skip report."""
    lines = [f"  {bad}" for bad in bad_rows[:_MAX_LISTED]]
    if len(bad_rows) > _MAX_LISTED:
        lines.append(f"  ... and {len(bad_rows) - _MAX_LISTED} more")
    return f"{source}: {len(bad_rows)} bad row(s):\n" + "\n".join(lines)


@dataclass(frozen=True)
class RowLayout:
    """Which columns of a metadata file hold what, checked once from the header.

    ``option_columns`` are ``option1..optionK`` (empty when ``has_list``: one ``options`` column
    holds a list); ``extra_columns`` (family, ...) become each example's ``metadata``.
    ``flexible_answers``: answers follow :func:`~vqa_demo.data.rows.normalise_answer` (0-based index,
    letter or option text, the rule of the known dataset schemas) instead of this project's 1-based number.
    """

    option_columns: list[str]
    has_list: bool
    extra_columns: list[str]
    flexible_answers: bool = False
    require_image: bool = False  # rows from a dataset: a row without an image is a bad row


def read_layout(
    columns: list[str],
    source: str,
    needs_file_name: bool,
    flexible_answers: bool = False,
    id_column: str | None = None,
    require_image: bool = False,
) -> RowLayout:
    """The :class:`RowLayout` of a header; raises :class:`DataError` naming every missing column."""
    options_in = option_columns(columns, source)
    has_list = "options" in columns
    if options_in and has_list:
        raise DataError(f"{source}: has both an 'options' column and option1.. columns; keep only one kind")
    required = ["question"] + (["file_name"] if needs_file_name else [])
    missing = [c for c in required if c not in columns]
    if not options_in and not has_list:
        missing.append("option1..optionK (or options)")
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(columns) or 'none'}"
        )
    special = {"question", "file_name", "answer", "options", IMAGE_COLUMN, id_column, *options_in}
    extras = [c for c in columns if c and c not in special]
    return RowLayout(options_in, has_list, extras, flexible_answers, require_image)


def parse_row(
    row: Mapping, layout: RowLayout, root: Path | None, place: str, check_images: bool
) -> dict[str, Any]:
    """One row's :class:`MCExample` fields but ``id`` and ``file_name``; raises :class:`DataError` at ``place``."""
    texts = (
        parse_options_cell(row.get("options"), place)
        if layout.has_list
        else [cell_text(row.get(c)) for c in layout.option_columns]
    )
    question, options = clean_question(cell_text(row.get("question")), trim_options(texts, place), place)
    if layout.flexible_answers:
        answer_index = normalise_answer(row.get("answer"), options, place)
    else:
        answer_index = parse_answer(row.get("answer"), len(options), place)
    image, image_path = image_from_cell(row.get(IMAGE_COLUMN), place)
    if layout.require_image and image is None and image_path is None and root is None:
        raise DataError(f"{place}: has no image; give every row an image, or pass --on-bad-row skip")
    if root is not None:
        file_name = cell_text(row.get("file_name"))
        if not file_name:
            raise DataError(f"{place}: file_name is empty; give the image path relative to {root}")
        image_path = image_path_in(root, file_name, place)
        if check_images:
            check_image_file(image_path, place)
    return {
        "question": question,
        "options": options,
        "answer_index": answer_index,
        "image_path": image_path,
        "image": image,
        "metadata": {c: cell_text(row.get(c)) for c in layout.extra_columns},
    }


def example_id(file_name: str | None, index: int, seen: dict[str, int]) -> str:
    """The file name (``"name#2"``, ... for repeats counted in ``seen``), else ``"row-{index}"``."""
    if file_name is None:
        return f"row-{index}"
    seen[file_name] = seen.get(file_name, 0) + 1
    return file_name if seen[file_name] == 1 else f"{file_name}#{seen[file_name]}"


def examples_from_records(
    records: Iterable[Mapping],
    root: Path | None,
    name: str,
    source: str | None = None,
    on_bad_row: OnBadRow = "fail",
    check_images: bool = False,
    flexible_answers: bool = False,
    id_column: str | None = None,
    require_image: bool = False,
) -> MCSplit:
    """Parse metadata rows into an :class:`MCSplit`, keeping their order.

    With a ``root`` (imagefolder) every row needs ``file_name``, which must stay inside ``root``,
    and gets ``image_path = root / file_name`` (decoded once with the app's upload checks when
    ``check_images``); without one ``file_name`` is optional and an ``image`` column may carry the
    image. ``source`` names the data in error messages (e.g. ``"metadata.csv"``); rows are numbered
    from 1, header excluded. A header problem always raises. Bad rows raise one :class:`DataError`
    listing them all (``on_bad_row="fail"``) or are left out and listed in ``split.bad_rows``
    (``"skip"``). Example ids are the file name (``"name#2"``, ... for repeats) or ``"row-{i}"``
    with ``i`` the 0-based position, or the ``id_column`` cell when one is named (it then keys
    the submission). ``flexible_answers`` and ``require_image``: see :class:`RowLayout`.
    """
    if on_bad_row not in ("fail", "skip"):
        raise ValueError(f"on_bad_row must be 'fail' or 'skip', got {on_bad_row!r}")
    rows = [{str(k).strip(): v for k, v in record.items()} for record in records]
    source = source or name
    layout = read_layout(
        column_union(rows), source, root is not None, flexible_answers, id_column, require_image
    )
    row_source = Path(source).name if root is not None else source  # the header line names the full path
    examples: list[MCExample] = []
    bad_rows: list[BadRow] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        file_name = cell_text(row.get("file_name")) or None
        key = cell_text(row.get(id_column)) or None if id_column else file_name
        try:
            fields = parse_row(row, layout, root, where(index + 1, file_name, row_source), check_images)
        except DataError as error:
            bad_rows.append(BadRow(index + 1, file_name, str(error)))
            continue
        examples.append(MCExample(id=example_id(key, index, seen), file_name=file_name, **fields))
    if bad_rows and on_bad_row == "fail":
        raise DataError(bad_rows_message(source, bad_rows) + "\nFix or remove these rows.")
    return MCSplit(name=name, examples=examples, root=root, bad_rows=bad_rows, id_column=id_column)


# ---------------------------------------------------------------- loaders


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        # strict: an unterminated quote is an error instead of a cell that swallows the file's end.
        reader = csv.DictReader(handle, strict=True)
        rows: list[dict[str, Any]] = []
        last_line = 0
        try:
            if not reader.fieldnames:
                raise DataError(
                    f"{path} is empty; it needs a header row such as file_name,question,option1,..."
                )
            header = [read_cell(name.strip()) for name in reader.fieldnames]
            duplicates = sorted({c for c in header if header.count(c) > 1})
            if duplicates:
                raise DataError(f"{path}: duplicate column(s) {', '.join(duplicates)}; give each column once")
            last_line = reader.line_num
            for row in reader:
                if None in row:  # DictReader puts surplus cells under the key None
                    raise DataError(
                        f"{path}: row {len(rows) + 1} has more cells than the header has columns "
                        f"({len(header)}); quote cells that contain commas"
                    )
                rows.append({read_cell(k.strip()): v if v is None else read_cell(v) for k, v in row.items()})
                last_line = reader.line_num
        except csv.Error as error:
            raise DataError(_csv_problem(path, error, row=len(rows) + 1, line=last_line + 1)) from None
    return rows


def _csv_problem(path: Path, error: csv.Error, row: int, line: int) -> str:
    """A readable message for the csv module's errors on data row ``row`` (starting at file ``line``)."""
    text = str(error)
    place = f"{path}: row {row} (starting on line {line})"
    if "field larger than field limit" in text:
        return (
            f"{place} has a cell longer than {csv.field_size_limit():,} characters; shorten it "
            "(a quote that is never closed also makes one cell swallow the lines after it)"
        )
    if "unexpected end of data" in text:
        return f'{place} has a quoted cell that is never closed; add the closing quote (")'
    if "expected after" in text:
        return f'{place} has text right after a closing quote; write a quote inside a quoted cell as ""'
    return f"{place} is not valid CSV ({text}); quote cells that contain commas, quotes or line breaks"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return read_jsonl(path)
    except JsonlError as error:
        raise DataError(str(error)) from None


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


def read_metadata(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """``(metadata file, raw rows in file order)`` of a split directory or metadata file, unvalidated.

    For readers of other row layouts (open-answer splits); :func:`load_split` validates the rows.
    """
    metadata_file = _find_metadata(Path(path))
    try:
        rows = _read_csv(metadata_file) if metadata_file.suffix == ".csv" else _read_jsonl(metadata_file)
    except UnicodeDecodeError:
        raise DataError(f"{metadata_file} is not UTF-8 text; save it as UTF-8") from None
    return metadata_file, rows


def load_split(
    path: str | Path, name: str | None = None, check_images: bool = True, on_bad_row: OnBadRow = "fail"
) -> MCSplit:
    """Load an imagefolder split (``metadata.csv`` or ``metadata.jsonl``) in file order.

    ``path`` is the split directory or its metadata file; ``name`` defaults to the
    directory name. Unlike ``datasets``' imagefolder loader this never sorts, so the
    examples (and any submission written from them) follow the metadata rows.
    With ``check_images`` every image is decoded once with the app's upload checks, so a
    bad image is a bad row now rather than a failure in the middle of a run. Bad rows
    fail the whole load with their list, or with ``on_bad_row="skip"`` are left out and
    listed in ``split.bad_rows`` (see :func:`examples_from_records`).
    """
    metadata_file, rows = read_metadata(path)
    root = metadata_file.parent
    return examples_from_records(
        rows,
        root,
        name or root.name,
        source=str(metadata_file),
        on_bad_row=on_bad_row,
        check_images=check_images,
    )


def load_hf_dataset(dataset: Any, name: str = "hf", on_bad_row: OnBadRow = "fail") -> MCSplit:
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
    return examples_from_records(dataset, root=None, name=name, on_bad_row=on_bad_row)
