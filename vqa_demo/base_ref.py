"""How a run names its base model so that it resolves from any working directory and after moving.

A base is recorded in ``run_config.json`` (``backbone.source`` + ``base_hash``) as

- the shipped default (a folder inside this package's ``assets/``): ``package:assets/base``, resolved
  against the installed package wherever it is;
- any other local folder: its absolute path and a :func:`content_hash`; when that path is gone (the
  base moved with the run), a folder of the same name next to the run or above it with the same
  hash is taken;
- a hub id, preset or tiny family: unchanged.

A base that cannot be found raises :class:`~vqa_demo.checkpoint_checks.CheckpointError` in one
sentence naming it and the ``--base`` override.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vqa_demo.checkpoint_checks import CheckpointError
from vqa_demo.config import FAMILY_PRESETS, preset_for

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_PREFIX = "package:"
_SAMPLE_BYTES = 1 << 20


def content_hash(folder: Path) -> str:
    """``sha256:<16 hex>`` of a model folder: every file's relative name and size, the whole of files up
    to 1 MiB (configs, tokenizers) and the first and last MiB of larger ones (weights), so a multi-GB
    base is identified in well under a second."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_SAMPLE_BYTES))
            if size > 2 * _SAMPLE_BYTES:
                handle.seek(size - _SAMPLE_BYTES)
                digest.update(handle.read())
            elif size > _SAMPLE_BYTES:
                digest.update(handle.read())
    return "sha256:" + digest.hexdigest()[:16]


def is_named(source: str) -> bool:
    """A hub id, preset or tiny family (not a local folder)."""
    if preset_for(source) or source in FAMILY_PRESETS:
        return True
    if not source.startswith("tiny"):
        return False
    from vqa_demo.model.families.registry import tiny_family  # the families import transformers

    return tiny_family(source) is not None


def record_base(source: str) -> tuple[str, str | None]:
    """``(source to save, content hash or None)`` for a base loaded from ``source`` in this working directory."""
    if source.startswith(PACKAGE_PREFIX) or is_named(source):
        return source, None
    local = Path(source).expanduser()
    if not (local / "config.json").is_file():
        return source, None  # a hub id
    resolved = local.resolve()
    if resolved.is_relative_to(PACKAGE_ROOT / "assets"):
        return PACKAGE_PREFIX + resolved.relative_to(PACKAGE_ROOT).as_posix(), None
    return str(resolved), content_hash(resolved)


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def resolve_recorded_base(source: str, base_hash: str | None, checkpoint: Path) -> str:
    """The base to load for a run whose ``run_config.json`` (in ``checkpoint``) records ``source``."""
    if source.startswith(PACKAGE_PREFIX):
        folder = PACKAGE_ROOT / source.removeprefix(PACKAGE_PREFIX)
        if _is_model(folder):
            return str(folder)
        raise CheckpointError(not_found(source, checkpoint))
    if is_named(source):
        return source
    recorded = Path(source)
    parents = checkpoint.resolve().parents
    if recorded.is_absolute():
        if _is_model(recorded):
            return source
        for parent in parents:  # the base moved together with the run
            candidate = parent / recorded.name
            if _is_model(candidate) and base_hash in (None, content_hash(candidate)):
                return str(candidate)
        raise CheckpointError(not_found(source, checkpoint))
    # A relative source (runs saved before bases were recorded): next to the run, then here.
    for parent in parents:
        for candidate in (parent / recorded, parent / recorded.name):
            if _is_model(candidate):
                return str(candidate)
    for candidate in (recorded, PACKAGE_ROOT / recorded):
        if _is_model(candidate):
            return str(candidate)
    if len(recorded.parts) == 2 and not source.startswith((".", "~")):
        return source  # a hub id: loading it says whether it exists
    raise CheckpointError(not_found(source, checkpoint))


def not_found(source: str, checkpoint: Path) -> str:
    return (
        f"the base model {source!r} that {checkpoint} was trained on was not found; pass --base "
        "<its folder or hub id> (VQA_BASE for the app)"
    )
