"""Reading an evaluation's files through their records: ``predictions.jsonl`` and a summary file.

Every reader of these files (the app's assets, :mod:`~vqa_demo.evaluation.saved_runs`, tests) calls
these functions, so a corrupt or hostile file is refused once, with one sentence that names the file,
the line and the key (:class:`~vqa_demo.evaluation.records.RecordError`), before any tab or table
reads a value. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqa_demo.data.jsonl import JsonlError, read_jsonl
from vqa_demo.evaluation.records import (
    ExampleRecord,
    RecordError,
    RunContractError,
    VariantEntry,
    check_summary,
    read_entries,
)
from vqa_demo.json_files import read_json_object as read_bounded_json

MAX_SUMMARY_BYTES = 32 * 1024 * 1024


def read_json_object(path: Path, max_bytes: int = MAX_SUMMARY_BYTES) -> dict[str, Any]:
    """``path`` parsed as one JSON object of at most ``max_bytes`` bytes (:func:`vqa_demo.json_files.read_json_object`)."""
    return read_bounded_json(path, max_bytes, error=RecordError, encoding="utf-8-sig")


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``predictions.jsonl`` file, checked line by line, as JSON objects with every
    optional key filled in (:class:`~vqa_demo.evaluation.records.ExampleRecord`)."""
    path = Path(path)
    try:
        rows = read_jsonl(path)
        return [
            ExampleRecord.from_json(row, f"line {number} ", position=number - 1).to_json()
            for number, row in enumerate(rows, start=1)
        ]
    except (JsonlError, RunContractError) as error:
        raise RecordError(f"{path.name} could not be read: {error}") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path.name} could not be read: it is not UTF-8 text") from None
    except OSError as error:
        raise RecordError(f"{path.name} could not be read ({error.strerror})") from None


def read_summary(path: str | Path) -> tuple[dict[str, Any], dict[str, VariantEntry]]:
    """``(the summary object, its variant entries)`` of a ``comparison.json`` or ``metrics.json``;
    refused whole when any key the readers use is off the contract."""
    path = Path(path)
    summary = read_json_object(path)
    try:
        check_summary(summary)
        return summary, read_entries(summary)
    except RunContractError as error:
        raise RecordError(f"{path.name} is not a valid evaluation summary: {error}") from None
