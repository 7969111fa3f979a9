"""The shared predictor: loaded once, lazily, on the first request that needs it; thread-safe.

The app is built without touching model weights. What the UI needs before that (variant names and
which option counts each accepts) comes from the checkpoints' ``run_config.json`` files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vqa_demo.checkpoint_checks import UnsafeCheckpointError
from vqa_demo.checkpoints import CheckpointError, check_variant_dir, variant_name_for
from vqa_demo.config import RunConfig, in_variant_order
from vqa_demo.model.head_traits import option_count_refusal
from vqa_demo.run_folders import find_checkpoints
from vqa_demo.runtime import use_threads

if TYPE_CHECKING:
    from vqa_demo.predictor import Predictor

log = logging.getLogger(__name__)
# How long the background import of the model code waits for the server to listen before it goes ahead.
IMPORT_WAIT_S = 120.0


class ModelUnavailable(RuntimeError):
    """The model could not be loaded; the message says why and what to change."""


@dataclass(frozen=True)
class VariantInfo:
    """What the UI knows about a variant without loading it."""

    name: str
    config: RunConfig
    directory: Path | None = None
    # Set when the base-dependent checks at load time refuse the variant after start-up listed it.
    refusal: list[str] = field(default_factory=list, compare=False)

    @property
    def head(self) -> str:
        return self.config.head.head

    @property
    def attentive(self) -> bool:
        return self.config.head.pooling == "attentive"

    def incompatibility(self, num_options: int) -> str | None:
        """Why the variant cannot answer ``num_options`` options (None if it can)."""
        if self.refusal:
            return f"{self.name} could not be loaded: {self.refusal[0]}"
        return option_count_refusal(self.config.head, num_options, self.name)


def read_variant_infos(checkpoints: Sequence[Path]) -> list[VariantInfo]:
    """Variant names and configs from the run configs of the variants that pass the file checks."""
    return check_variants(checkpoints)[0]


def check_variants(checkpoints: Sequence[Path]) -> tuple[list[VariantInfo], list[tuple[str, str]]]:
    """Variant names and configs, named the way ``load_variants`` names them, and the refused ones.

    Every directory's files are checked (without building the model); a malformed one is left out
    and returned as ``(directory, reason)`` so the app can start with the others and say why.
    """
    directories = [d for root in checkpoints for d in find_checkpoints(root)]
    infos: list[VariantInfo] = []
    skipped: list[tuple[str, str]] = []
    for directory in directories:
        try:
            config = check_variant_dir(directory)
        except (CheckpointError, UnsafeCheckpointError) as error:
            log.warning("skipping variant checkpoint %s: %s", directory, error)
            skipped.append((str(directory), str(error)))
            continue
        name = variant_name_for(config, directory, {i.name for i in infos})
        infos.append(VariantInfo(name, config, Path(directory)))
    return infos, skipped


def canonical_order(infos: list[VariantInfo]) -> list[VariantInfo]:
    """The five standard variants in their usual order, then any others as found."""
    order = in_variant_order(dict.fromkeys(i.name for i in infos))
    return sorted(infos, key=lambda i: order.index(i.name))


class PredictorHolder:
    """Hands out one shared :class:`Predictor`, built by ``loader`` on first use (or injected).

    ``infos`` lists the variants for the UI; with a loader and no infos, give ``checkpoints`` so they
    can be read from the run configs.
    """

    def __init__(
        self,
        loader: Callable[[], Predictor] | None = None,
        predictor: Predictor | None = None,
        checkpoints: Sequence[Path] = (),
    ):
        if loader is None and predictor is None:
            raise ValueError("give a loader or a predictor")
        self._loader = loader
        self._predictor = predictor
        self._lock = threading.Lock()
        self.checkpoints = [Path(p) for p in checkpoints]
        self.problem: str | None = None
        self.skipped: list[tuple[str, str]] = []  # (directory, reason) of refused variants
        if predictor is not None:
            self.infos = [VariantInfo(v.name, v.config) for v in predictor.variants.values()]
        else:
            try:
                self.infos, self.skipped = check_variants(self.checkpoints)
            except CheckpointError as error:
                self.infos, self.problem = [], str(error)
            if not self.infos and self.skipped:
                self.problem = "No variant checkpoint could be used. " + self.skipped_text
        self.infos = canonical_order(self.infos)

    @property
    def skipped_text(self) -> str:
        """One line per refused variant: its folder name and why (empty when none was refused)."""
        # Reasons name files by absolute path; a visitor only needs the variant folder's name.
        return "\n\n".join(
            f"Skipped variant {Path(d).name}: {reason.replace(str(Path(d).parent) + '/', '')}"
            for d, reason in self.skipped
        )

    @property
    def usable_checkpoints(self) -> list[Path]:
        """The checked variant directories (what the loader should load)."""
        return [i.directory for i in self.infos if i.directory is not None]

    @classmethod
    def from_config(cls, config) -> PredictorHolder:
        """A holder that loads ``config.checkpoints`` on top of ``config.base`` when first asked."""

        def load():
            from vqa_demo.loading import load_predictor  # torch, transformers and the model code

            use_threads(config.threads)
            # Only the variants that passed the start-up checks; the base-dependent checks may
            # still refuse one, which then joins the skipped list instead of failing the others.
            skipped: list[tuple[str, str]] = []
            predictor = load_predictor(
                holder.usable_checkpoints,
                base=config.base,
                device=config.device,
                skipped=skipped,
                precision=config.precision,
            )
            holder.skipped.extend(skipped)
            for directory, reason in skipped:
                for info in holder.infos:
                    if str(info.directory) == directory:
                        info.refusal.append(reason.replace(str(Path(directory).parent) + "/", ""))
            return predictor

        holder = cls(loader=load, checkpoints=config.checkpoints)
        return holder

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def info(self, name: str) -> VariantInfo:
        return next(i for i in self.infos if i.name == name)

    def import_model_code(self, after: Callable[[], bool] | None = None) -> threading.Thread:
        """Import the model code (transformers, peft: seconds) in a background thread, once ``after()`` is
        true (the server listens; checked every 0.1 s for up to :data:`IMPORT_WAIT_S`), so that the page
        is served before it and the first question does not wait for it; returns the started thread.

        It holds the loading lock: a first question meanwhile waits in :meth:`get` instead of importing
        the same packages at once (transformers' lazy module then raised "cannot import name
        'AutoConfig'" for a question 0.2 s after the start)."""

        def run():
            deadline = time.monotonic() + IMPORT_WAIT_S
            while after is not None and not after() and time.monotonic() < deadline:
                time.sleep(0.1)
            with self._lock:
                import peft  # noqa: F401  (imported where the adapters are attached)

                import vqa_demo.loading  # noqa: F401

        thread = threading.Thread(target=run, name="import-model-code", daemon=True)
        thread.start()
        return thread

    def get(self) -> Predictor:
        """The predictor, loading it on the first call; raises :class:`ModelUnavailable` if that fails."""
        if self._predictor is not None:
            return self._predictor
        with self._lock:
            if self._predictor is None:
                if self.problem:
                    raise ModelUnavailable(self.problem)
                try:
                    self._predictor = self._loader()
                except Exception as error:  # any loader failure becomes a message, not a crash
                    log.exception("loading the predictor failed")
                    raise ModelUnavailable(f"The model could not be loaded: {error}") from error
        return self._predictor
