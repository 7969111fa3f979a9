"""Spreadsheet-safe CSV cells: every CSV the project writes goes through :func:`csv_row`.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets (CSV injection, e.g. ``=HYPERLINK(...)`` in a file name).
Following the OWASP rule such a cell is written with a leading apostrophe, which spreadsheets show
as text; a leading ``-`` is left alone when the whole cell is a number (``-2``, ``-0.5``), so
negative numbers stay numbers. A cell that already starts with apostrophes before such a character
gets one more, so :func:`read_cell` gives back exactly what was written, and our own readers
(``metadata.csv``) see the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISER = "'"
_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (a negative number is not one)."""
    return text.startswith(FORMULA_LEADS) and not _NUMBER.fullmatch(text)


def csv_cell(value: Any) -> Any:
    """``value`` as it is safe to write in a CSV cell: formula-like text behind an apostrophe.

    Numbers and other non-text values are returned unchanged (the csv module writes them as numbers).
    """
    if isinstance(value, str) and is_formula(value.lstrip(NEUTRALISER)):
        return NEUTRALISER + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    """Every cell of a row through :func:`csv_cell` (header rows too: column names are user text)."""
    return [csv_cell(value) for value in values]


def read_cell(text: str) -> str:
    """The text :func:`csv_cell` was given, from the cell it wrote (other cells unchanged)."""
    if text.startswith(NEUTRALISER) and is_formula(text.lstrip(NEUTRALISER)):
        return text[1:]
    return text
