"""Refuse pickle-based weight files before anything could unpickle them."""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint directory contains a file format that can execute code when loaded."""


def refuse_pickles(directory: str | Path) -> None:
    """Raise :class:`UnsafeCheckpointError` naming every pickle-format file under ``directory``.

    Only file names are inspected; nothing is opened.
    """
    directory = Path(directory)
    found = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        names = ", ".join(str(p.relative_to(directory)) for p in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise UnsafeCheckpointError(
            f"{directory} contains pickle-format files ({names}{more}); they can run arbitrary code when "
            "loaded and are refused. Convert them to safetensors (save_pretrained(..., safe_serialization=True))."
        )
