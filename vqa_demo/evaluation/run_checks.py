"""The JSON type checks every run file is read through, before any value is used.

:mod:`vqa_demo.evaluation.records` declares the files' records (a ``predictions.jsonl`` line, a
``comparison.json`` / ``metrics.json`` variant entry) with these checks; a key of the wrong JSON type or
out of range raises :class:`RunContractError` naming the key. An accuracy is an object with numbers
``accuracy``, ``low``, ``high`` in [0, 1], a count ``n`` and optionally a count ``correct`` <= n.

Counts are bounded (MAX_COUNT): a JSON integer such as 10**30 parses in Python but not in the
64-bit JSON encoder that serves the app's tables.
"""

from __future__ import annotations

from typing import Any

MAX_COUNT = 10**9  # examples in one evaluation; far above any split, far below 64-bit overflow


class RunContractError(ValueError):
    """A key of a run file has the wrong JSON type or is out of range; the message names the key."""


def json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, as a message says it (``an array``, ``a number``)."""
    if isinstance(value, bool):
        return "true or false"
    kinds = {dict: "an object", list: "an array", str: "a string", type(None): "null"}
    return kinds.get(type(value), "a number")


def contract_error(where: str, expected: str, value: Any) -> RunContractError:
    shown = f" ({value})" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return RunContractError(f"'{where}' must be {expected}, got {json_kind(value)}{shown:.40}")


def expect_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise contract_error(where, "an object", value)
    return value


def expect_string(value: Any, where: str, nullable: bool = False) -> str | None:
    if isinstance(value, str) or (nullable and value is None):
        return value
    raise contract_error(where, "a string" + (" or null" if nullable else ""), value)


def expect_count(value: Any, where: str, upper: int = MAX_COUNT) -> int:
    """An integer in ``0 .. upper`` (true/false and 4.0 are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise contract_error(where, f"a whole number from 0 to {upper:,}", value)
    return value


def expect_number(value: Any, where: str, nullable: bool = False) -> float | None:
    """A JSON number (true/false are not numbers); -inf/inf/NaN pass, as Python's json writes them."""
    if nullable and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise contract_error(where, "a number" + (" or null" if nullable else ""), value)
    return float(value)


def expect_between(value: Any, where: str, low: float, high: float) -> float:
    """A number from ``low`` to ``high`` (true/false are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise contract_error(where, f"a number from {low:g} to {high:g}", value)
    return float(value)


def expect_numbers(value: Any, where: str, length: int | None = None) -> list:
    """A list of numbers (``float[length]`` when ``length`` is given)."""
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise contract_error(where, "a list of numbers", value)
    if length is not None and len(value) != length:
        raise RunContractError(f"'{where}' has {len(value)} numbers; {length} expected, one per option")
    return value


def expect_fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise contract_error(where, "a number from 0 to 1", value)
    return float(value)


def check_accuracy(value: Any, where: str) -> dict:
    """An accuracy object (see the module docstring); returns it."""
    expect_object(value, where)
    for key in ("accuracy", "low", "high"):
        expect_fraction(value.get(key), f"{where}.{key}")
    n = expect_count(value.get("n"), f"{where}.n")
    if "correct" in value:
        expect_count(value["correct"], f"{where}.correct", upper=n)
    return value


def check_accuracies(value: Any, where: str) -> dict[str, dict]:
    """An object of accuracies (``by_family``): name -> accuracy."""
    return {
        str(name): check_accuracy(entry, f"{where}.{name}")
        for name, entry in expect_object(value, where).items()
    }
