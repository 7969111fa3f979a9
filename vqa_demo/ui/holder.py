"""The shared predictor: loaded once, lazily, on the first request that needs it; thread-safe.

The app is built without touching model weights. What the UI needs before that (variant names and
which option counts each accepts) comes from the checkpoints' ``run_config.json`` files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqa_demo.checkpoints import CheckpointError, read_run_config
from vqa_demo.config import VARIANTS, RunConfig
from vqa_demo.loading import find_checkpoints, load_predictor
from vqa_demo.predictor import Predictor, Variant

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model could not be loaded; the message says why and what to change."""


@dataclass(frozen=True)
class VariantInfo:
    """What the UI knows about a variant without loading it."""

    name: str
    config: RunConfig

    @property
    def head(self) -> str:
        return self.config.head.head

    @property
    def attentive(self) -> bool:
        return self.config.head.pooling == "attentive"

    def incompatibility(self, num_options: int) -> str | None:
        """Why the variant cannot answer ``num_options`` options (None if it can)."""
        return Variant(self.name, self.config).incompatibility(num_options)


def read_variant_infos(checkpoints: Sequence[Path]) -> list[VariantInfo]:
    """Variant names and configs from run_config.json files, named the way ``load_variants`` names them."""
    directories = [d for root in checkpoints for d in find_checkpoints(root)]
    infos: list[VariantInfo] = []
    for directory in directories:
        config = read_run_config(directory)
        taken = {i.name for i in infos}
        name = config.variant if config.variant not in taken else Path(directory).name
        infos.append(VariantInfo(name, config))
    return infos


def canonical_order(infos: list[VariantInfo]) -> list[VariantInfo]:
    """The five standard variants in their usual order, then any others as found."""
    order = list(VARIANTS)
    return sorted(infos, key=lambda i: order.index(i.name) if i.name in order else len(order))


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
        if predictor is not None:
            self.infos = [VariantInfo(v.name, v.config) for v in predictor.variants.values()]
            self.problem = None
        else:
            try:
                self.infos = read_variant_infos(self.checkpoints)
                self.problem = None
            except CheckpointError as error:
                self.infos, self.problem = [], str(error)
        self.infos = canonical_order(self.infos)

    @classmethod
    def from_config(cls, config) -> PredictorHolder:
        """A holder that loads ``config.checkpoints`` on top of ``config.base`` when first asked."""

        def load():
            if config.threads:
                import torch

                torch.set_num_threads(config.threads)
            return load_predictor(config.checkpoints, base=config.base, device=config.device)

        return cls(loader=load, checkpoints=config.checkpoints)

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def info(self, name: str) -> VariantInfo:
        return next(i for i in self.infos if i.name == name)

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
