"""The one bounded reader of small JSON files written by someone else (run summaries, adapter and
run configs): a read of at most ``max_bytes`` whatever the file's size, a nesting limit, and one
sentence for each way the file can be wrong, raised as the caller's own error class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON_DEPTH = 32  # the deepest of our files nests about 8 levels; a deeper one is hostile


def nesting_depth(value: Any) -> int:
    """How many levels of objects and arrays ``value`` nests (without recursion)."""
    level, items = 0, [value]
    while items:
        containers = [item for item in items if isinstance(item, (dict, list))]
        items = [v for item in containers for v in (item.values() if isinstance(item, dict) else item)]
        level += 1
    return level


def read_json_object(
    path: Path, max_bytes: int, *, error: type[Exception], encoding: str = "utf-8"
) -> dict[str, Any]:
    """``path`` parsed as one JSON object of at most ``max_bytes`` bytes and :data:`MAX_JSON_DEPTH`
    levels; anything else raises ``error`` with one sentence naming the file."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path} is {size:,} bytes, over the {max_bytes:,}-byte limit for {path.name}")
        with path.open("rb") as handle:
            text = handle.read(max_bytes + 1)  # bounded: the file may grow after stat
        if len(text) > max_bytes:
            raise error(f"{path} is over the {max_bytes:,}-byte limit for {path.name}")
        data = json.loads(text.decode(encoding))
    except OSError as exc:
        raise error(f"{path} could not be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise error(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if nesting_depth(data) > MAX_JSON_DEPTH:
        raise error(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data
