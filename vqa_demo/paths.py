"""The one containment check for file names that come from outside: data files, assets, requests."""

from __future__ import annotations

from pathlib import Path


def inside(path: Path, folder: Path) -> Path | None:
    """``folder / path`` resolved, or None when it escapes ``folder`` (``..``, absolute paths, symlinks
    out, symlink loops)."""
    try:
        resolved = (folder / path).resolve()
        root = folder.resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop on Python 3.11
        return None
    return resolved if resolved.is_relative_to(root) else None
