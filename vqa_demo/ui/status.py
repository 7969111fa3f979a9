"""The status box every tab writes, and the refusal object the ``/answer`` API returns.

A status is Markdown that also reads as plain text for API callers: ``⚠ **message**`` for a problem
the user can fix (one sentence saying what to change), ``✓ message`` with one ``Note: ...``
paragraph per note after a success. A refused answer's raw-scores output is
``{"error": {"category", "message"}}``; API callers branch on the stable category.
"""

from __future__ import annotations

from typing import Any


def status_error(message: str) -> str:
    """``⚠ **message**``: the text a person reads (the category goes to :func:`error_json`)."""
    return f"⚠ **{message}**"


def status_ok(message: str, notes: list[str] | None = None) -> str:
    """``✓ message`` and one ``Note: ...`` paragraph per note: Markdown that reads as plain text for API callers."""
    lines = [f"✓ {message}"] + [f"Note: {n}" for n in notes or []]
    return "\n\n".join(lines)


def error_json(message: str, category: str) -> dict[str, Any]:
    """The raw-scores output of a refused answer: ``{"error": {"category", "message"}}``."""
    return {"error": {"category": category, "message": message}}


def failure_category(raw: Any) -> str | None:
    """The stable category of a refused answer from its raw-scores output (None after a success)."""
    error = raw.get("error") if isinstance(raw, dict) else None
    return error.get("category") if isinstance(error, dict) else None
