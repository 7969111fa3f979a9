"""Where a run's variant checkpoints and its evaluation are, from file names alone (no torch, nothing loaded).

The app's settings, its model card and the CLIs ask this before anything heavy is imported, so
``python app.py --help`` and a bad ``--checkpoints`` answer at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

RUN_CONFIG = "run_config.json"


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete, malformed or does not fit the loaded base."""


def find_checkpoints(root: str | Path) -> list[Path]:
    """Variant directories under ``root``, sorted by name; ``root`` may be

    a variant directory (``best/``), one variant's run folder (its ``best/``), a folder of variant
    directories (``assets/checkpoints``) or a ``training.compare`` folder (each ``<variant>/best``).
    """
    root = Path(root)
    if (root / RUN_CONFIG).is_file():
        return [root]
    if (root / "best" / RUN_CONFIG).is_file():
        return [root / "best"]
    found = sorted(p.parent for p in root.glob(f"*/{RUN_CONFIG}"))
    found = found or sorted(p.parent for p in root.glob(f"*/best/{RUN_CONFIG}"))
    if not found:
        what = "no such folder" if not root.exists() else f"no {RUN_CONFIG} in it or its subfolders"
        raise CheckpointError(
            f"--checkpoints {root}: no variant checkpoints ({what}); give a training.compare --out folder, "
            "a training.train --out folder, or variant directories (best/)"
        )
    return found


# training.compare's, or `vqa_demo.evaluate --out <run>/evaluation` of a training.train run (whose
# best_selection/ chose best/, so it is never shown as the run's accuracy)
EVALUATION_DIRS = ("evaluation",)


def has_evaluation(folder: Path) -> bool:
    """``folder`` holds an evaluation: training.compare's ``comparison.json`` or an evaluated run's metrics."""
    return (folder / "comparison.json").is_file() or (folder / "evaluation" / "metrics.json").is_file()


def served_run_folder(checkpoints: Sequence[Path]) -> Path | None:
    """The run folder the checkpoints come from, which holds their evaluation; None if they disagree.

    ``runs/compare``, ``runs/compare/<variant>`` and ``runs/compare/*/best`` all give ``runs/compare``
    (its comparison.json); a ``training.train --out`` folder or its ``best/`` gives that folder (its
    ``evaluation/``, if evaluated); a folder of variant directories gives itself.
    """
    folders = set()
    for root in checkpoints:
        try:
            directories = find_checkpoints(root)
        except (ValueError, OSError):
            return None
        for directory in directories:
            if directory.name in ("best", "last"):  # a training run's checkpoint: in a compare folder?
                run = directory.parent
                folders.add(run.parent if has_evaluation(run.parent) else run)
            else:  # a folder of variant directories, possibly inside an assets folder
                up = (directory.parent, directory.parent.parent)
                folders.add(next((f for f in up if has_evaluation(f)), directory.parent))
    return folders.pop().resolve() if len(folders) == 1 else None
