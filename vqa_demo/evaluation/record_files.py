"""Reading an evaluation's files through their records: ``predictions.jsonl`` and a summary file.

Every reader of these files (the app's assets, :mod:`~vqa_demo.evaluation.saved_runs`, tests) calls
these functions, so a corrupt or hostile file is refused once, with one sentence that names the file,
the line and the key (:class:`~vqa_demo.evaluation.records.RecordError`), before any tab or table
reads a value. Torch-free.
"""

from __future__ import annotations

import json
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

MAX_SUMMARY_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 32  # comparison.json nests about 8 levels; a deeper file is hostile


def depth(value: Any) -> int:
    """How many levels of objects and arrays ``value`` nests."""
    level, items = 0, [value]
    while items:
        containers = [item for item in items if isinstance(item, (dict, list))]
        items = [v for item in containers for v in (item.values() if isinstance(item, dict) else item)]
        level += 1
    return level


def read_json_object(path: Path, max_bytes: int = MAX_SUMMARY_BYTES) -> dict[str, Any]:
    """``path`` parsed as one JSON object of at most ``max_bytes`` bytes and MAX_JSON_DEPTH levels."""
    try:
        with path.open("rb") as handle:
            text = handle.read(max_bytes + 1)  # bounded, whatever the file's size
        if len(text) > max_bytes:
            raise RecordError(f"{path} is over the {max_bytes:,}-byte limit for {path.name}")
        data = json.loads(text.decode("utf-8-sig"))
    except OSError as error:
        raise RecordError(f"{path} could not be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise RecordError(f"{path} is not valid JSON ({error.msg}, line {error.lineno})") from None
    except RecursionError:
        raise RecordError(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if depth(data) > MAX_JSON_DEPTH:
        raise RecordError(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(data, dict):
        raise RecordError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


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
