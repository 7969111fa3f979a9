"""Checks for one metadata row: the same rules as the app's form, plus where the image may live.

Each function raises :class:`DataError` with the row's place (``row 3 of metadata.csv (file_name
'a.png')``) and what to change; :func:`vqa_demo.data.splits.examples_from_records` collects them per row as
:class:`BadRow` so a split can be refused with the whole list, or loaded without those rows.
Questions and options are cleaned exactly as the app cleans typed text
(:func:`~vqa_demo.inputs.text.prepare_question`: control characters removed, NFC, duplicates
refused); images pass the upload checks (:func:`~vqa_demo.inputs.image.prepare_image`: format
allow-list, byte and pixel limits), so no file type the app refuses reaches a decoder from a data file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS
from vqa_demo.inputs.errors import InputError
from vqa_demo.inputs.image import prepare_image
from vqa_demo.inputs.text import prepare_question
from vqa_demo.paths import inside

OPTION_COLUMN = re.compile(r"option([1-9]\d*)")
_ANSWER = re.compile(r"[0-9]+")  # ASCII digits only: "２", "٢", "+2", "1e0" and "2.0" are refused


class DataError(ValueError):
    """A problem in user-supplied data; the message says what to change."""


@dataclass(frozen=True)
class BadRow:
    """A metadata row that was refused: 1-based ``row`` (header excluded) and the full message."""

    row: int
    file_name: str | None
    message: str

    def __str__(self) -> str:
        return self.message


def cell_text(value: Any) -> str:
    """A cell as stripped text; missing cells (None, NaN from pandas) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def where(row_number: int, file_name: str | None, source: str | None) -> str:
    place = f"row {row_number}" + (f" of {source}" if source else "")
    return place + (f" (file_name {file_name!r})" if file_name else "")


def option_columns(columns: list[str], source: str) -> list[str]:
    """``option1..optionK`` from the header, checked to be contiguous with 2 <= K <= 8."""
    named = [c for c in columns if OPTION_COLUMN.fullmatch(c)]
    if not named:
        return []
    # Numbers past MAX_OPTIONS are refused before they size anything (option99999999999999999999).
    too_far = [c for c in named if len(c) > len("option999") or int(c[6:]) > MAX_OPTIONS]
    if too_far and len(named) <= MAX_OPTIONS:
        raise DataError(
            f"{source}: column {too_far[0][:40]!r} is past option{MAX_OPTIONS}; name the option columns "
            f"option1..optionK with K from {MIN_OPTIONS} to {MAX_OPTIONS}"
        )
    numbers = sorted(int(c[6:]) for c in named) if not too_far else []
    expected = list(range(1, numbers[-1] + 1)) if numbers else []
    if numbers != expected:
        missing = ", ".join(f"option{n}" for n in sorted(set(expected) - set(numbers)))
        found = ", ".join(f"option{n}" for n in numbers)
        raise DataError(
            f"{source}: option columns must be numbered option1..optionK without gaps; "
            f"found {found}, missing {missing}"
        )
    if not MIN_OPTIONS <= len(named) <= MAX_OPTIONS:
        raise DataError(
            f"{source}: found {len(named)} option column(s); use {MIN_OPTIONS} to {MAX_OPTIONS} "
            f"(option1..option{MAX_OPTIONS})"
        )
    return [f"option{n}" for n in numbers]


def parse_options_cell(value: Any, place: str) -> list[str]:
    """An ``options`` cell (a list, or a JSON list string in CSV) as option texts."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except (json.JSONDecodeError, RecursionError):
            raise DataError(
                f'{place}: options {value[:80]!r} is not a JSON list; write it like ["red", "blue", "green"]'
            ) from None
    if hasattr(value, "tolist"):  # numpy / arrow arrays from in-memory datasets
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{place}: options must be a list of option texts, got {type(value).__name__}")
    return [cell_text(v) for v in value]


def trim_options(texts: list[str], place: str) -> list[str]:
    """Drop trailing empty options (a row with fewer options); refuse gaps and K out of range."""
    filled = [i for i, t in enumerate(texts) if t]
    count = filled[-1] + 1 if filled else 0
    gaps = [i + 1 for i in range(count) if not texts[i]]
    if gaps:
        raise DataError(
            f"{place}: option{gaps[0]} is empty but option{count} is not; fill options from "
            f"option1 upwards and leave only the trailing ones empty"
        )
    if not MIN_OPTIONS <= count <= MAX_OPTIONS:
        raise DataError(f"{place}: has {count} non-empty option(s); give {MIN_OPTIONS} to {MAX_OPTIONS}")
    return texts[:count]


def clean_question(question: str, options: list[str], place: str) -> tuple[str, tuple[str, ...]]:
    """The app's cleaning and checks (empty, duplicate options, control characters) for one row."""
    try:
        prepared = prepare_question(question, options, min_options=MIN_OPTIONS, max_options=MAX_OPTIONS)
    except InputError as error:
        raise DataError(f"{place}: {error.message}") from None
    return prepared.question, tuple(prepared.options)


def parse_answer(value: Any, num_options: int, place: str) -> int | None:
    """1-based ``answer`` cell (plain ASCII digits, or a JSON integer) -> 0-based index; blank -> None."""
    text = cell_text(value)
    if not text:
        return None
    plain = isinstance(value, int) and not isinstance(value, bool)
    if not plain and not (isinstance(value, str) and _ANSWER.fullmatch(text)):
        raise DataError(
            f"{place}: answer {text[:20]!r} is not an integer; write the 1-based number of the "
            f"correct option in plain digits, 1 to {num_options} (K={num_options})"
        )
    number = int(text)
    if not 1 <= number <= num_options:
        raise DataError(
            f"{place}: answer {number} is out of range; it must be the 1-based option number "
            f"1 to {num_options} (this row has K={num_options} options)"
        )
    return number - 1


def normalise_answer(value: Any, options: tuple[str, ...], place: str) -> int | None:
    """A schema's answer cell -> 0-based index; blank -> None. The rule, in this order:

    an integer (or a string of ASCII digits) is the 0-based option index (A-OKVQA, ScienceQA, AI2D);
    a single letter ``A``..``H`` (either case) is the option at that position (MMBench); any other
    text is the option with that text, compared after the same cleaning as the options, then
    ignoring case. Anything else raises :class:`DataError` naming the three forms.
    """
    text = cell_text(value)
    if not text:
        return None
    k = len(options)
    letters = "".join(chr(ord("A") + i) for i in range(k))
    if (isinstance(value, int) and not isinstance(value, bool)) or _ANSWER.fullmatch(text):
        if not 0 <= int(text) < k:
            raise DataError(
                f"{place}: answer {int(text)} is out of range; an integer answer is the 0-based option "
                f"index 0 to {k - 1} (this row has K={k} options)"
            )
        return int(text)
    if len(text) == 1 and text.upper() in letters:
        return letters.index(text.upper())
    cleaned = " ".join(text.split())
    for matches in (lambda o: o == cleaned, lambda o: o.casefold() == cleaned.casefold()):
        found = [i for i, option in enumerate(options) if matches(option)]
        if len(found) == 1:
            return found[0]
    raise DataError(
        f"{place}: answer {text[:40]!r} is neither a 0-based index 0 to {k - 1}, a letter A to "
        f"{letters[-1]}, nor the text of one of the {k} options; write one of those"
    )


def image_path_in(root: Path, file_name: str, place: str) -> Path:
    """``root / file_name``, refused unless it stays inside ``root`` after resolving ``..`` and symlinks."""
    relative = Path(file_name)
    if "\x00" in file_name or relative.is_absolute() or ".." in relative.parts or file_name.startswith("~"):
        raise DataError(
            f"{place}: file_name must be a path relative to the split folder, without '..'; got {file_name[:80]!r}"
        )
    if inside(relative, root) is None:
        raise DataError(f"{place}: file_name {file_name[:80]!r} leads outside the split folder (a symlink?)")
    return root / relative


def check_image_file(path: Path, place: str) -> None:
    """Decode ``path`` with the app's upload checks; the pixels are not kept."""
    try:
        prepare_image(path)
    except InputError as error:
        raise DataError(f"{place}: image {path.name!r}: {error.message}") from None


def image_from_cell(value: Any, place: str) -> tuple[Image.Image | None, Path | None]:
    """An ``image`` cell: a PIL image, an undecoded ``{"bytes", "path"}`` dict, or a path.

    Images given as data (PIL or bytes) are validated and converted now; paths when loaded.
    """
    try:
        if isinstance(value, Image.Image):
            return prepare_image(value).image, None
        if isinstance(value, Mapping):
            if value.get("bytes"):
                return prepare_image(bytes(value["bytes"])).image, None
            return None, Path(value["path"]) if value.get("path") else None
    except InputError as error:
        raise DataError(f"{place}: image: {error.message}") from None
    if isinstance(value, (str, Path)) and str(value).strip():
        return None, Path(str(value).strip())
    return None, None
