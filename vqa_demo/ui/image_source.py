"""Which images may reach the model: one admission check for every image payload an event receives.

An image is admitted only if it is

(a) a file that this server put in Gradio's upload cache (an upload through its ``/upload`` route, or a
    file it served as an output, such as a picked example),
(b) a file inside the app's example or validation folder, or
(c) inline bytes: a base64 data URL, or raw bytes from a Python caller, within the byte limit.

Paths are resolved (symlinks, ``..``) before they are compared with those folders. Every other path,
URL or payload shape gets one and the same message, whether or not the file exists, so the check
cannot be used to probe the server's disk. The payload may come in any shape a client can send:
Gradio's ``FileData``/``ImageData`` models, a dict with or without Gradio's ``meta`` marker, with
``path`` or ``url``, a bare string, a list, or bytes.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqa_demo.inputs.errors import InputError
from vqa_demo.inputs.image import human_bytes

NOT_ADMITTED = "This image was not uploaded to this app and is not one of its examples: upload the image file and try again."
_MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class RefusedImage:
    """What the Image component hands the callback instead of an image that was not admitted."""

    error: InputError


class ImageAdmission:
    """The admission rule for one app: its example/validation folders, its cache and its byte limit."""

    def __init__(
        self,
        folders: Sequence[Path],
        max_bytes: int,
        cache_dir: str | Path | None = None,
        created_files: Callable[[], Iterable[Iterable[str]]] | None = None,
    ):
        self.folders = [Path(os.path.realpath(f)) for f in folders]
        self.max_bytes = max_bytes
        self.cache_dir = Path(os.path.realpath(cache_dir)) if cache_dir is not None else None
        self.created_files = created_files

    def watch(self, blocks: Any) -> None:
        """Admit files that ``blocks`` (a launched-or-not ``gr.Blocks``) put in Gradio's cache."""
        from gradio.utils import get_upload_folder

        self.cache_dir = Path(os.path.realpath(get_upload_folder()))
        self.created_files = lambda: list(blocks.temp_file_sets)

    # -- the check --------------------------------------------------------------------------------
    def admit(self, payload: Any) -> str | bytes | None:
        """The admitted image as a resolved file path or inline bytes; None when nothing was sent.

        Raises :class:`InputError` (``image_not_allowed``, ``image_too_large``, ``image_unreadable``).
        """
        if hasattr(payload, "model_dump"):  # Gradio's FileData / ImageData models
            payload = payload.model_dump()
        if payload is None or payload == "" or payload == {}:
            return None
        if isinstance(payload, (bytes, bytearray, memoryview)):
            return self._inline(bytes(payload))
        if isinstance(payload, dict):
            path, url = payload.get("path"), payload.get("url")
            if path is None and url is None:
                return None
            payload = path if path is not None else url
        if isinstance(payload, (list, tuple)):
            raise InputError(
                "image_not_allowed", f"Send one image, not a list of {len(payload)}: pick a single file."
            )
        if not isinstance(payload, str):
            raise InputError("image_not_allowed", NOT_ADMITTED)
        if payload[:5].lower() == "data:":
            return self._data_url(payload)
        return self._file(payload)

    def preprocess(self, payload: Any) -> str | bytes | RefusedImage | None:
        """:meth:`admit` that never raises, so the callback reports the refusal (see :func:`admitting_event`)."""
        try:
            return self.admit(payload)
        except InputError as error:
            return RefusedImage(error)

    # -- the three admitted kinds -----------------------------------------------------------------
    def _file(self, text: str) -> str:
        if not text or "\x00" in text or len(text) > _MAX_PATH_CHARS or "://" in text[:16]:
            raise InputError("image_not_allowed", NOT_ADMITTED)
        try:
            real = Path(os.path.realpath(text))
        except (OSError, ValueError) as exc:
            raise InputError("image_not_allowed", NOT_ADMITTED) from exc
        if any(real.is_relative_to(folder) for folder in self.folders) or self._created_here(text, real):
            return str(real)
        raise InputError("image_not_allowed", NOT_ADMITTED)

    def _created_here(self, text: str, real: Path) -> bool:
        """True if ``real`` is in the cache folder and one of the files this app put there."""
        if self.cache_dir is None or self.created_files is None or not real.is_relative_to(self.cache_dir):
            return False
        for files in self.created_files():
            if text in files or str(real) in files:
                return True
            # Gradio stores the path it wrote, which differs from ours when GRADIO_TEMP_DIR is a link.
            # list() copies the set in one step (the upload route may add to it meanwhile).
            if any(Path(f).name == real.name and os.path.realpath(f) == str(real) for f in list(files)):
                return True
        return False

    def _data_url(self, url: str) -> bytes:
        header, comma, body = url.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise InputError(
                "image_unreadable",
                "Inline images must be base64 data URLs (data:image/png;base64,...): re-encode the image.",
            )
        # Refuse from the encoded length before decoding anything (4 characters carry 3 bytes).
        estimate = len(body.strip()) * 3 // 4
        if estimate > self.max_bytes + 2:
            raise InputError(
                "image_too_large",
                f"The inline image is about {human_bytes(estimate)} and the limit is "
                f"{human_bytes(self.max_bytes)}: compress or downscale it.",
            )
        try:
            data = base64.b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise InputError(
                "image_unreadable", "The inline image is not valid base64: re-encode the image file."
            ) from exc
        return self._inline(data)

    def _inline(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise InputError(
                "image_too_large",
                f"The image is {human_bytes(len(data))} and the limit is {human_bytes(self.max_bytes)}: "
                "compress or downscale it.",
            )
        return data


def admitting_event(fn: Callable, admission: ImageAdmission, inputs: Sequence[Any]) -> Callable:
    """``fn`` as an event function for ``preprocess=False`` events whose first input is the image.

    The image payload goes through ``admission.preprocess`` (never Gradio's own image loading); the
    other values through the preprocess of the components in ``inputs`` as built, not as a
    ``gr.update`` may have rebuilt them for one session. ``fn``'s signature (the API's parameter
    names and defaults) is kept.
    """
    signature = inspect.signature(fn)

    def event(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = list(bound.args)
        values[0] = admission.preprocess(values[0])
        for i, component in enumerate(inputs[1 : len(values)], start=1):
            values[i] = component.preprocess(values[i])
        return fn(*values)

    event.__signature__ = signature
    event.__doc__ = fn.__doc__
    event.__name__ = getattr(fn, "__name__", "event")
    event.__wrapped__ = fn  # what runs after the admission (tests call it with their own files)
    return event
