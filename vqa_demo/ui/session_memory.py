"""What an answer keeps of its image between events, and how long: bounded per answer, per server.

The Explain section needs two things of the image an answer was given: a copy to paint heatmaps on
and the model's own input to run attributions from. :func:`keep_image` makes both from the decoded
upload (whose full resolution can be 40 MP, ~120 MB decoded) so that the caller can drop it at once:

- ``display``: the image fitted into :data:`~vqa_demo.explain.attribution.OVERLAY_MAX_SIDE`, made by the same
  resize :func:`~vqa_demo.explain.attribution.heatmap_overlay` applies, so every overlay painted on it is
  pixel-identical to one painted on the full image;
- ``pixel_values float[3, H, W]``: the processor's output at model resolution, which the predictor
  and :func:`~vqa_demo.explain.attribution.attribute` accept in place of an image (identical scores).

:class:`AnswerMemory` holds these copies for all sessions together: a copy older than the time to
live is dropped, and when the copies exceed the byte budget the oldest go first. A dropped copy
leaves its :class:`KeptImage` empty (``available`` is False), so a late Explain request gets a
message instead of an error. Gradio's own per-session state is bounded separately (``gr.State``
``time_to_live`` and the launch's ``state_session_capacity``, see :mod:`vqa_demo.ui.server_settings`).

glibc keeps freed blocks of a few MB in its heaps (the dynamic mmap threshold rises to the largest
freed block, up to 32 MB), so a process that decoded big images stays big after dropping them;
:func:`return_freed_memory` hands such pages back to the system (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from PIL import Image

from vqa_demo.explain.heatmaps import OVERLAY_MAX_SIDE, fit_long_side
from vqa_demo.libc import libc_function

if TYPE_CHECKING:
    import torch

# Below this many decoded bytes an image's buffers are small enough for malloc's bins (no trim).
TRIM_AFTER_BYTES = 16 * 1024 * 1024


class KeptImage:
    """An answer's image as the Explain section needs it; emptied when :class:`AnswerMemory` drops it.

    ``display``: RGB, long side at most the overlay's ``max_side``. ``pixel_values float[3, H, W]``:
    the model's input for the image (CPU).
    """

    def __init__(self, display: Image.Image, pixel_values: torch.Tensor):
        self.display: Image.Image | None = display
        self.pixel_values: torch.Tensor | None = pixel_values
        self.nbytes = len(display.getbands()) * display.width * display.height + (
            pixel_values.numel() * pixel_values.element_size()
        )
        self.holder: weakref.ref[AnswerMemory] | None = None  # set by AnswerMemory.admit

    @property
    def available(self) -> bool:
        return self.display is not None

    def forget(self) -> None:
        self.display = None
        self.pixel_values = None

    def release(self) -> None:
        """Drop these copies from the :class:`AnswerMemory` that holds them (if it still exists)."""
        memory = self.holder() if self.holder is not None else None
        if memory is not None:
            memory.release(self)


def keep_image(image: Image.Image, pixel_values: Callable, max_side: int = OVERLAY_MAX_SIDE) -> KeptImage:
    """The display copy and model input of ``image`` (an RGB upload at full resolution).

    ``pixel_values`` is the predictor's method (``[image] -> float[1, 3, H, W]``). Neither copy
    references ``image``, so dropping it afterwards frees its pixels.
    """
    model_input = pixel_values([image])[0].detach().to("cpu")
    display = fit_long_side(image.convert("RGB"), max_side)
    if display is image:
        display = image.copy()
    return KeptImage(display, model_input)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    return libc_function("malloc_trim", [ctypes.c_size_t])  # None: not glibc, nothing to trim


def return_freed_memory() -> bool:
    """Give the pages of freed heap blocks back to the system; False where libc cannot (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class AnswerMemory:
    """The image copies of recent answers, across all sessions: at most ``max_bytes``, ``ttl`` seconds each.

    Thread-safe: answers are admitted from worker threads while Gradio's state sweeper releases
    expired sessions from its event loop. ``ttl`` <= 0 keeps copies until the byte budget needs
    the room; ``max_bytes`` <= 0 keeps none (Explain then asks to answer again). With
    ``sweep_every`` seconds, a daemon thread also expires copies while no answer comes in:
    Gradio keeps a closed browser session's state for an hour whatever its time to live.
    """

    def __init__(
        self,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float | None = None,
    ):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self._kept: OrderedDict[int, tuple[KeptImage, float]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        if sweep_every and ttl > 0:
            threading.Thread(target=_sweep, args=(weakref.ref(self), sweep_every), daemon=True).start()

    @property
    def held_bytes(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._kept)

    def admit(self, kept: KeptImage) -> KeptImage:
        """Start holding ``kept`` (the newest); drop expired copies, then the oldest beyond the budget."""
        kept.holder = weakref.ref(self)
        with self._lock:
            self._kept[id(kept)] = (kept, self.clock())
            self._held += kept.nbytes
            dropped = self._expire_locked()
            while self._held > self.max_bytes and self._kept:
                dropped += self._drop_locked(next(iter(self._kept)))
        if dropped >= TRIM_AFTER_BYTES:
            return_freed_memory()
        return kept

    def release(self, kept: KeptImage | None) -> None:
        """Drop ``kept`` now (its session ended or its state expired); unknown or None is a no-op."""
        if kept is None:
            return
        with self._lock:
            dropped = self._drop_locked(id(kept)) if self._kept.get(id(kept), (None,))[0] is kept else 0
        if dropped >= TRIM_AFTER_BYTES:
            return_freed_memory()

    def expire(self) -> int:
        """Drop every copy older than the time to live; returns how many were dropped."""
        with self._lock:
            before = len(self._kept)
            dropped = self._expire_locked()
        if dropped >= TRIM_AFTER_BYTES:
            return_freed_memory()
        return before - len(self._kept)

    def _expire_locked(self) -> int:
        if self.ttl <= 0:
            return 0
        dropped, now = 0, self.clock()
        while self._kept:
            key, (_, admitted) = next(iter(self._kept.items()))
            if now - admitted <= self.ttl:
                break
            dropped += self._drop_locked(key)
        return dropped

    def _drop_locked(self, key: int) -> int:
        kept, _ = self._kept.pop(key)
        self._held -= kept.nbytes
        kept.forget()
        return kept.nbytes


def _sweep(memory_ref: weakref.ref, every: float) -> None:
    """Expire ``memory_ref``'s copies every ``every`` seconds until the memory itself is gone."""
    while (memory := memory_ref()) is not None:
        memory.expire()
        del memory  # no strong reference while sleeping, so the memory can be collected
        time.sleep(every)
