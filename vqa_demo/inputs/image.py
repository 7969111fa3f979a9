"""Validation of user-supplied images (see :mod:`vqa_demo.inputs` for the contract).

Sizes are checked from the file header before any pixel is decoded, non-raster documents (SVG, HTML,
PDF, PostScript) are recognised by their content rather than their file name, and no exception from
Pillow escapes as anything other than an :class:`~vqa_demo.inputs.errors.InputError`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vqa_demo.inputs.errors import InputError

# Decoders we trust with hostile bytes (JPEG also opens phones' multi-picture MPO files).
# EPS is excluded on purpose: Pillow hands it to Ghostscript.
_RASTER_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"
_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_MIB = 1024 * 1024
# A progressive JPEG may repeat a tiny scan thousands of times; libjpeg only warns and pays a pass over
# the whole image for each (4 to 165 ms per scan at 36 MP, by machine). Pillow and libjpeg write 10.
MAX_JPEG_SCANS = 32
_JPEG_SOS = b"\xff\xda"


@dataclass
class PreparedImage:
    """An image ready for the model: ``image`` is always mode ``"RGB"``, 8 bits per channel."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)


def prepare_image(
    source: str | Path | bytes | Image.Image | np.ndarray | None,
    *,
    max_pixels: int = 40_000_000,
    max_bytes: int = 20 * 1024 * 1024,
    max_aspect: float = 20.0,
    min_side: int = 2,
) -> PreparedImage:
    """Validate and normalise one user image.

    ``source`` is a file path, encoded file bytes, a PIL image, or a numpy array shaped
    ``[H, W]``, ``[H, W, 1|2|3|4]`` (uint8, bool, other integers or floats, as Gradio may send).
    ``None`` (nothing uploaded) raises ``image_missing``.

    Limits: at most ``max_bytes`` encoded bytes (checked before decoding) and ``max_pixels``
    pixels (checked from the header before decoding; Pillow's own decompression-bomb warning is
    also an error here, so the effective limit is ``min(max_pixels, Image.MAX_IMAGE_PIXELS)``);
    each side at least ``min_side`` pixels (the default 2 rejects 1-pixel images and lines); the
    long side at most ``max_aspect`` times the short side.

    Accepted-but-changed inputs add a note: animated or multi-page files use their first frame,
    EXIF orientation is applied, transparency is composited on white, CMYK and 16-bit or float
    pixels are converted to 8-bit RGB. A wrong Python type raises ``TypeError`` (a caller bug).
    """
    limits = dict(max_pixels=max_pixels, max_aspect=max_aspect, min_side=min_side)
    if source is None:
        raise InputError("image_missing", "No image was given: upload an image and try again.")
    if isinstance(source, np.ndarray):
        return _prepare_array(source, **limits)
    if isinstance(source, Image.Image):
        return _prepare_pil(source, **limits)
    if isinstance(source, (str, Path)):
        source = read_image_file(source, max_bytes)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError(f"prepare_image expects a path, bytes, PIL image or numpy array, not {type(source)}")
    return _prepare_bytes(bytes(source), max_bytes=max_bytes, **limits)


def read_image_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the image file at ``path`` (at most ``max_bytes``); raises :class:`InputError`."""
    path = Path(path)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        is_file = False
    if not is_file:
        raise InputError("image_not_found", f"No image file at {str(path)!r}: check the path.")
    try:
        size = path.stat().st_size
        _check_byte_count(size, max_bytes)
        with path.open("rb") as handle:
            # Bounded read: the size may change between stat and read.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(
            "image_unreadable", f"Could not read {path.name!r} ({exc.strerror}): check the file."
        ) from exc
    _check_byte_count(len(data), max_bytes)
    return data


def _check_byte_count(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InputError(
            "image_too_large",
            f"The file is {human_bytes(size)} and the limit is {human_bytes(max_bytes)}: compress or downscale it.",
        )


def human_bytes(size: int) -> str:
    return f"{size / _MIB:.1f} MB" if size >= _MIB else f"{size:,} bytes"


def _check_geometry(width: int, height: int, *, max_pixels: int, max_aspect: float, min_side: int) -> None:
    if width * height > max_pixels:
        raise InputError(
            "image_too_large",
            f"The image is {width}x{height} = {width * height:,} pixels and the limit is {max_pixels:,}: "
            "downscale it.",
        )
    if min(width, height) < min_side:
        raise InputError(
            "image_too_small",
            f"The image is only {width}x{height} pixels: upload one at least {min_side} pixels on each side.",
        )
    if max(width, height) > max_aspect * min(width, height):
        raise InputError(
            "image_aspect",
            f"The image is {width}x{height} pixels, more than {max_aspect:g} times longer than it is "
            "wide: crop it closer to a square.",
        )


def _non_raster_kind(data: bytes) -> str | None:
    """Name the document type if ``data`` is a vector or text document rather than pixels."""
    if data.startswith(_RASTER_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return None
    head = data[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("ascii", errors="ignore")
    if b"%PDF-" in head[:1024]:  # the PDF spec allows junk before the header
        return "a PDF document"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "a PostScript file"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    if text.startswith(b"<"):
        return "an SVG drawing" if b"<svg" in text else "an HTML or XML document"
    return None


def _webp_is_cut(data: bytes) -> bool:
    # RIFF declares its length; libwebp only says "could not create decoder object" when cut.
    return (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) < int.from_bytes(data[4:8], "little") + 8
    )


def _looks_truncated(exc: BaseException) -> bool:
    return isinstance(exc, EOFError) or "truncated" in str(exc).lower()


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Turn anything Pillow raises, including its decompression-bomb warning, into an InputError."""
    # catch_warnings edits the process-wide filter list; the header check in _check_geometry is the
    # primary guard, so a race between threads here can only weaken this second line of defence.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as exc:
            raise InputError(
                "image_too_large", "The image declares far too many pixels to decode: downscale it."
            ) from exc
        except Image.UnidentifiedImageError as exc:
            raise InputError(
                "image_unreadable",
                f"The file is not a readable {_FORMAT_NAMES} image: re-save it in one of those formats.",
            ) from exc
        except Exception as exc:  # Pillow's decoders raise many types; none may reach the user raw
            if _looks_truncated(exc):
                raise InputError(
                    "image_truncated", "The image file is incomplete (cut off): upload the whole file again."
                ) from exc
            raise InputError(
                "image_unreadable",
                f"The image could not be decoded: re-save it as {_FORMAT_NAMES} and try again.",
            ) from exc


def _prepare_bytes(data: bytes, *, max_bytes: int, **limits) -> PreparedImage:
    return _prepare_pil(open_checked(data, max_bytes=max_bytes, **limits), **limits)


def open_checked(data: bytes, *, max_bytes: int, **limits) -> Image.Image:
    """``data`` opened lazily (no pixel decoded) after every check that needs no decoding.

    Bytes, content type, size from the header (``limits`` as in :func:`prepare_image`) and the JPEG
    scan count; raises :class:`InputError`. What :func:`prepare_image` then decodes, it decodes once.
    """
    _check_byte_count(len(data), max_bytes)
    if not data:
        raise InputError("image_empty", "The image file is empty: upload it again.")
    kind = _non_raster_kind(data)
    if kind is not None:
        raise InputError(
            "image_not_raster",
            f"The file is {kind}, not a picture: export it as PNG or JPEG and upload that.",
        )
    if _webp_is_cut(data):
        raise InputError(
            "image_truncated", "The image file is incomplete (cut off): upload the whole file again."
        )
    # 0xFF 0xDA cannot occur inside entropy-coded data (a data 0xFF is followed by 0x00), so the
    # count is every scan header plus, at worst, a few bytes of metadata that look like one.
    if data.startswith(b"\xff\xd8") and (scans := data.count(_JPEG_SOS)) > MAX_JPEG_SCANS:
        raise InputError(
            "image_too_slow",
            f"The JPEG has {scans:,} scans and the limit is {MAX_JPEG_SCANS}: re-save it as a baseline "
            "JPEG or PNG.",
        )
    with _pillow_errors():
        image = Image.open(io.BytesIO(data), formats=_RASTER_FORMATS)
        _check_geometry(*image.size, **limits)
    return image


def inspect_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = 40_000_000,
    max_bytes: int = 20 * 1024 * 1024,
    max_aspect: float = 20.0,
    min_side: int = 2,
) -> tuple[int, int]:
    """``(width, height)`` of an image file after every check :func:`prepare_image` makes before decoding.

    Cheap (no pixel is decoded), for a first verdict on an upload; raises :class:`InputError`.
    """
    if isinstance(source, (str, Path)):
        source = read_image_file(source, max_bytes)
    limits = dict(max_pixels=max_pixels, max_aspect=max_aspect, min_side=min_side)
    return open_checked(bytes(source), max_bytes=max_bytes, **limits).size


def _prepare_pil(image: Image.Image, **limits) -> PreparedImage:
    """Decode (if still lazy) and convert a PIL image; never modifies the caller's pixels."""
    notes: list[str] = []
    with _pillow_errors():
        _check_geometry(*image.size, **limits)
        if getattr(image, "is_animated", False):
            image.seek(0)
            notes.append("animated image: used the first frame")
        image.load()
        image = _apply_orientation(image, notes)
        rgb = _to_rgb(image, notes)
    if rgb is image:
        rgb = image.copy()
    assert rgb.mode == "RGB", rgb.mode
    return PreparedImage(image=rgb, notes=notes)


def _apply_orientation(image: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = image.getexif().get(0x0112)
        if orientation not in (2, 3, 4, 5, 6, 7, 8):
            return image
        rotated = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not block an otherwise fine picture
        notes.append("EXIF metadata unreadable: orientation not applied")
        return image
    notes.append("EXIF orientation applied")
    return rotated


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    # "transparency" in info is a palette index (P) or a colour key (1, L, RGB: PNG tRNS chunk).
    if ("transparency" in image.info and mode in ("1", "L", "P", "RGB")) or mode in (
        "PA",
        "LA",
        "La",
        "RGBA",
        "RGBa",
    ):
        return _composite_on_white(image, notes)
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        grey, note = _to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        if note:
            notes.append(note)
        return Image.fromarray(grey).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK colours converted to RGB")
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise InputError(
            "image_unreadable",
            f"Images in colour mode {mode!r} are not supported: save it as RGB PNG or JPEG.",
        ) from exc


def _composite_on_white(image: Image.Image, notes: list[str]) -> Image.Image:
    rgba = image.convert("RGBA") if image.mode != "La" else image.convert("LA").convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] < 255:
        notes.append("transparent areas composited on white")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_uint8(values: np.ndarray, *, sixteen_bit: bool = False) -> tuple[np.ndarray, str | None]:
    """Map numeric pixels to uint8 by their range, never by clipping; returns (pixels, note)."""
    if values.dtype == np.uint8:
        return values, None
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255, None
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InputError(
            "image_array_values",
            "The image contains NaN or infinite pixel values: replace them with numbers.",
        )
    low, high = float(values.min()), float(values.max())
    sixteen_bit_note = f"16-bit {'greyscale' if values.ndim == 2 else 'pixel values'} converted to 8 bit"
    if sixteen_bit or values.dtype == np.uint16:
        scaled, note = values / 65535.0, sixteen_bit_note
    elif values.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        scaled, note = values, None
    elif low >= 0 and high <= 255:
        scaled, note = values / 255.0, None
    elif values.dtype.kind in "iu" and low >= 0 and high <= 65535:
        scaled, note = values / 65535.0, sixteen_bit_note
    else:
        span = (high - low) or 1.0
        scaled, note = (values - low) / span, f"pixel values rescaled from [{low:g}, {high:g}] to 0-255"
    return np.rint(np.asarray(scaled, dtype=np.float32) * 255.0).astype(np.uint8), note


def _prepare_array(array: np.ndarray, **limits) -> PreparedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise InputError(
            "image_array_shape",
            f"The image array has shape {array.shape}; expected height x width, optionally x 3 (RGB) "
            "or x 4 (RGBA): convert it to one of those.",
        )
    if array.dtype.kind not in "biuf":
        raise InputError(
            "image_array_dtype",
            f"The image array holds {array.dtype} values; expected uint8, bool, integer or float: convert it to uint8.",
        )
    _check_geometry(array.shape[1], array.shape[0], **limits)
    pixels, note = _to_uint8(np.ascontiguousarray(array))
    notes = [note] if note else []
    prepared = _prepare_pil(Image.fromarray(pixels), **limits)
    return PreparedImage(image=prepared.image, notes=notes + prepared.notes)
