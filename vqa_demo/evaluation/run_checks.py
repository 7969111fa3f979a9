"""The typed contract of a saved run's files, checked before any value is used.

:mod:`vqa_demo.evaluation.saved_runs` reads a run folder written by ``training.compare`` or
``vqa_demo.evaluate``, and the app reads every folder under ``assets/runs`` at start-up: one malformed
file must become a listed reason, never an exception. Only the keys the run reader uses are typed;
anything else in the files (curves, calibration, agreement...) is not read and not checked.

Summary (``comparison.json`` / ``metrics.json``), each key optional unless said::

    variants        object, required: variant name -> entry (below)
    setting         object; setting.base a string (setting values are shown as their JSON text)
    split           string          n           integer count (0 .. MAX_COUNT)
    questions       string or null  not_applicable  object of strings
    backbone        object: model and source strings

A variant entry: ``accuracy`` an accuracy (below); ``by_family`` an object of accuracies;
``by_metadata.family`` the same; ``training`` a string. An accuracy is an object with numbers
``accuracy``, ``low``, ``high`` in [0, 1], a count ``n`` and optionally a count ``correct`` <= n.

A ``predictions.jsonl`` line: ``id`` a string or integer, ``question`` a string, ``options`` a list of
MIN_OPTIONS to MAX_OPTIONS strings, ``gold`` null or an index into the options, ``variants`` an object
of objects whose ``correct``, when present, is true or false.

Counts are bounded (MAX_COUNT): a JSON integer such as 10**30 parses in Python but not in the
64-bit JSON encoder that serves the app's tables.
"""

from __future__ import annotations

from typing import Any

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS

MAX_COUNT = 10**9  # examples in one evaluation; far above any split, far below 64-bit overflow


class RunContractError(ValueError):
    """A key of a run file has the wrong JSON type or is out of range; the message names the key."""


def json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, as a message says it (``an array``, ``a number``)."""
    if isinstance(value, bool):
        return "true or false"
    kinds = {dict: "an object", list: "an array", str: "a string", type(None): "null"}
    return kinds.get(type(value), "a number")


def _fail(where: str, expected: str, value: Any) -> RunContractError:
    shown = f" ({value})" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return RunContractError(f"'{where}' must be {expected}, got {json_kind(value)}{shown:.40}")


def expect_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    return value


def expect_string(value: Any, where: str, nullable: bool = False) -> str | None:
    if isinstance(value, str) or (nullable and value is None):
        return value
    raise _fail(where, "a string" + (" or null" if nullable else ""), value)


def expect_count(value: Any, where: str, upper: int = MAX_COUNT) -> int:
    """An integer in ``0 .. upper`` (true/false and 4.0 are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise _fail(where, f"a whole number from 0 to {upper:,}", value)
    return value


def expect_fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _fail(where, "a number from 0 to 1", value)
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


def check_variant_entry(entry: Any, where: str) -> dict[str, Any]:
    """``{"accuracy", "by_family", "baseline"}`` of one variant entry of a summary file."""
    expect_object(entry, where)
    accuracy = check_accuracy(entry.get("accuracy"), f"{where}.accuracy")
    by_family = check_accuracies(entry["by_family"], f"{where}.by_family") if "by_family" in entry else {}
    if not by_family and "by_metadata" in entry:
        by_metadata = expect_object(entry["by_metadata"], f"{where}.by_metadata")
        if "family" in by_metadata:
            by_family = check_accuracies(by_metadata["family"], f"{where}.by_metadata.family")
    training = expect_string(entry["training"], f"{where}.training") if "training" in entry else None
    return {"accuracy": accuracy, "by_family": by_family, "baseline": bool(training)}


def check_summary(summary: dict[str, Any]) -> None:
    """The top-level keys of a summary file (variant entries are checked one by one)."""
    expect_object(summary.get("variants"), "variants")
    if "setting" in summary:
        setting = expect_object(summary["setting"], "setting")
        if "base" in setting:
            expect_string(setting["base"], "setting.base")
    if "split" in summary:
        expect_string(summary["split"], "split")
    if "n" in summary:
        expect_count(summary["n"], "n")
    if "questions" in summary:
        expect_string(summary["questions"], "questions", nullable=True)
    if "not_applicable" in summary:
        for name, reason in expect_object(summary["not_applicable"], "not_applicable").items():
            expect_string(reason, f"not_applicable.{name}")
    if "backbone" in summary:
        backbone = expect_object(summary["backbone"], "backbone")
        for key in ("model", "source"):
            if key in backbone:
                expect_string(backbone[key], f"backbone.{key}")


def check_prediction(record: dict[str, Any], where: str) -> None:
    """One ``predictions.jsonl`` record (a parsed line) against the contract."""
    if isinstance(record.get("id"), bool) or not isinstance(record.get("id"), (str, int)):
        raise _fail(f"{where} id", "a string or integer", record.get("id"))
    expect_string(record.get("question"), f"{where} question")
    options = record.get("options")
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise _fail(f"{where} options", "a list of option texts", options)
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise RunContractError(
            f"'{where} options' has {len(options)} options; {MIN_OPTIONS} to {MAX_OPTIONS} expected"
        )
    if record.get("gold") is not None:
        expect_count(record["gold"], f"{where} gold", upper=len(options) - 1)
    for name, answer in expect_object(record.get("variants"), f"{where} variants").items():
        expect_object(answer, f"{where} variants.{name}")
        if "correct" in answer and not isinstance(answer["correct"], bool):
            raise _fail(f"{where} variants.{name}.correct", "true or false", answer["correct"])
