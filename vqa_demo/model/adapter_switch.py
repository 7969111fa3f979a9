"""Which LoRA adapter the shared model runs as: merged weights where possible, else peft's switch.

peft's active adapter is global model state, so one :class:`AdapterSwitch` serves one model and
its users hold :attr:`AdapterSwitch.lock` around any forward that depends on the active adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from torch import nn

from vqa_demo.model.family import BackboneFamily
from vqa_demo.model.merged_adapters import MergedAdapters


class AdapterSwitch:
    """Runs ``model`` as a named adapter or as the bare base.

    ``merge``: run each adapter merged into swapped-in weights (:mod:`vqa_demo.model.merged_adapters`);
    ``None`` does so where the model allows it (small float32), ``True`` insists, ``False`` keeps
    peft's unmerged forward. ``has_adapters`` False skips building merged copies altogether. ``family``
    is the model's (:attr:`~vqa_demo.model.backbone.Backbone.family`): which modules are the vision side.
    """

    def __init__(
        self, model: nn.Module, has_adapters: bool, merge: bool | None = None, *, family: BackboneFamily
    ):
        self.model = model
        self.family = family
        self.lock = threading.Lock()
        self.merged: MergedAdapters | None = None
        self.unmerged_reason: str | None = "merging switched off" if merge is False else None
        if merge is not False and has_adapters:
            merged = MergedAdapters(model)
            self.unmerged_reason = merged.unsupported_reason()
            if self.unmerged_reason is None:
                self.merged = merged
            elif merge:
                raise ValueError(f"cannot merge the adapters: {self.unmerged_reason}")

    def activate(self, adapter: str | None):
        """Context in which the model runs as ``adapter``; ``None`` means the bare base. Where merging
        is available the adapter runs merged into the weights, else through peft's LoRA branch; the
        scores agree to float rounding."""
        model = self.model
        if adapter is None:
            return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
        if self.merged is not None:
            return self.merged.active(adapter)
        model.set_adapter(adapter)
        return nullcontext()

    @contextmanager
    def unmerged(self) -> Iterator[None]:
        """Meanwhile every adapter runs through peft's unmerged LoRA forward (for comparisons)."""
        merged, self.merged = self.merged, None
        try:
            yield
        finally:
            self.merged = merged

    def adapts_tower(self) -> bool:
        """Whether any adapter on the model (not only the ones in use) has LoRA layers in the vision
        side (the family's frozen modules). The layers are looked at, not the targets: peft resolves
        ``all-linear`` to bare layer names that do not say where they are."""
        if not hasattr(self.model, "peft_config"):
            return False
        core = self.model.get_base_model()
        vision = self.family.frozen_modules(core)
        return any("lora_" in name for module in vision for name, _ in module.named_parameters())
