"""JSON Lines files, one JSON object per line: read, written and appended the same way everywhere.

Per-example predictions (``predictions.jsonl``), training curves (``metrics.jsonl``), data-file
metadata (``metadata.jsonl``) and the pretraining logs all go through these three functions. Files are
UTF-8 (a byte-order mark is tolerated on reading); blank lines are skipped. Non-ASCII text is written as
``\\uXXXX`` escapes, so a reader that splits on every Unicode line break (``str.splitlines``) still sees
one object per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A line is not a JSON object; the message names the file and the line number."""


def read_jsonl(path: str | Path, *, skip_bad_lines: bool = False) -> list[dict[str, Any]]:
    """The objects of ``path``, in file order.

    A line that is not valid JSON or not an object raises :class:`JsonlError`, unless
    ``skip_bad_lines``: then it is left out (a log whose writer was killed mid-line stays readable).
    """
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = _parse(line, path, number)
            except JsonlError:
                if skip_bad_lines:
                    continue
                raise
            rows.append(row)
    return rows


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise JsonlError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise JsonlError(f"{path}: line {number} is nested too deeply to be read") from None
    if not isinstance(row, dict):
        raise JsonlError(f"{path}: line {number} must be a JSON object, one object per line")
    return row


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record) + "\n"


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` to ``path``, one per line, replacing what was there."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(_line(record) for record in records)
    return path


def append_jsonl(path: str | Path, record: Mapping[str, Any]) -> None:
    """Add ``record`` as the last line of ``path`` (created if missing)."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(_line(record))
