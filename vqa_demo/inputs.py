"""Validation of user-supplied images and questions, shared by the Gradio app and the CLI.

Everything a user hands us passes through :func:`prepare_image` or :func:`prepare_question`
before it reaches the model. Both either return a cleaned value plus ``notes`` (human-readable
remarks about what was changed, for the UI to show) or raise :class:`InputError`, whose
``category`` is a stable machine-readable string (one of :data:`CATEGORIES`) and whose
``message`` is one sentence telling the user what to change.

Images come back as 8-bit ``"RGB"`` PIL images. Sizes are checked from the file header before
any pixel is decoded, non-raster documents (SVG, HTML, PDF, PostScript) are recognised by their
content rather than their file name, and no exception from Pillow escapes as anything other than
an :class:`InputError`. No global Pillow setting (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``) is changed.

Text is cleaned (NFC, control characters removed, line endings unified) but otherwise left as the
user wrote it: right-to-left scripts, emoji and literal special-token strings such as ``"<image>"``,
``"<bos>"``, ``"<eos>"`` or ``"<pad>"`` are kept verbatim. Neutralising those strings is the
tokenizer layer's job (it encodes user text with ``split_special_tokens=True``), so they reach
the model as plain characters, never as control tokens.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

CATEGORIES = (
    "image_missing",
    "image_not_found",
    "image_empty",
    "image_too_large",
    "image_not_raster",
    "image_unreadable",
    "image_truncated",
    "image_too_small",
    "image_aspect",
    "image_array_shape",
    "image_array_dtype",
    "image_array_values",
    "question_empty",
    "option_empty",
    "option_duplicate",
    "too_few_options",
    "too_many_options",
)


class InputError(ValueError):
    """A problem with user input; ``str(error)`` is the user-facing ``message``."""

    def __init__(self, category: str, message: str):
        assert category in CATEGORIES, f"unknown input error category {category!r}"
        super().__init__(message)
        self.category = category
        self.message = message

    def __reduce__(self):
        return (type(self), (self.category, self.message))


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

# Decoders we trust with hostile bytes (JPEG also opens phones' multi-picture MPO files).
# EPS is excluded on purpose: Pillow hands it to Ghostscript.
_RASTER_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"
_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_MIB = 1024 * 1024


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
        source = _read_file(Path(source), max_bytes)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError(f"prepare_image expects a path, bytes, PIL image or numpy array, not {type(source)}")
    return _prepare_bytes(bytes(source), max_bytes=max_bytes, **limits)


def _read_file(path: Path, max_bytes: int) -> bytes:
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
            f"The file is {_human_bytes(size)} and the limit is {_human_bytes(max_bytes)}: compress or downscale it.",
        )


def _human_bytes(size: int) -> str:
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
    with _pillow_errors():
        return _prepare_pil(Image.open(io.BytesIO(data), formats=_RASTER_FORMATS), **limits)


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


# ---------------------------------------------------------------------------------------------
# Questions and options
# ---------------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
# C0/C1 controls except \n (tabs are already spaces), lone surrogates (unencodable) and the BOM.
_UNWANTED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x84\x86-\x9f\ufeff\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n{3,}")
_GRAPHEME_GLUE = {"\u200d", "\ufe0e", "\ufe0f"}


@dataclass
class PreparedQuestion:
    """A cleaned question and its options, in the user's order; ``notes`` say what was changed."""

    question: str
    options: list[str]
    notes: list[str] = field(default_factory=list)


def prepare_question(
    question: str | None,
    options: Sequence[str | None],
    *,
    min_options: int = 2,
    max_options: int = 8,
    max_question_chars: int = 2000,
    max_option_chars: int = 300,
) -> PreparedQuestion:
    """Validate and clean one multiple-choice question.

    Text is NFC-normalised, C0/C1 control characters (other than line breaks) are removed, tabs
    become spaces and every line break becomes ``"\\n"``; right-to-left text, emoji and literal
    special-token strings (``"<image>"``, ``"<eos>"``...) are kept as typed (see the module
    docstring). Questions and options over their character limit are shortened, at a word boundary
    when one is near, with a note. Options are stripped and folded onto one line but never dropped:
    an empty option, two options equal after case and whitespace folding, or a count outside
    ``[min_options, max_options]`` raise :class:`InputError` naming the 1-based positions or limits.
    ``None`` counts as empty text (a blank form field); a bare string as ``options`` is a caller bug
    and raises ``TypeError``.
    """
    if isinstance(options, str):
        raise TypeError("options must be a sequence of strings, not one string")
    options = list(options)
    notes: list[str] = []

    text = _clean_text(question, "the question", notes, max_question_chars)
    text = _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.split("\n"))).strip()
    if _is_blank(text):
        raise InputError("question_empty", "The question is empty: type a question about the image.")
    text = _shorten(text, max_question_chars, "question", notes)

    check_option_count(len(options), min_options=min_options, max_options=max_options)
    cleaned = []
    for position, option in enumerate(options, start=1):
        name = f"option {position}"
        value = " ".join(_clean_text(option, name, notes, max_option_chars).split())
        if _is_blank(value):
            raise InputError("option_empty", f"Option {position} is empty: fill it in or remove it.")
        cleaned.append(_shorten(value, max_option_chars, name, notes))
    _check_duplicates(cleaned)
    return PreparedQuestion(question=text, options=cleaned, notes=notes)


def check_option_count(count: int, *, min_options: int = 2, max_options: int = 8) -> None:
    """Raise ``too_few_options`` / ``too_many_options`` unless ``min_options <= count <= max_options``.

    Separate from :func:`prepare_question` for callers that receive the count on its own (the app's
    API takes ``k`` next to a fixed number of option fields).
    """
    if count < min_options:
        raise InputError(
            "too_few_options", f"Give at least {min_options} answer options (got {max(count, 0)})."
        )
    if count > max_options:
        raise InputError(
            "too_many_options",
            f"Give at most {max_options} answer options (got {count}): remove {count - max_options}.",
        )


def _clean_text(text: str | None, name: str, notes: list[str], limit: int) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, not {type(text)}")
    # Bound the work on megabyte-sized pastes; the generous margin leaves room for removed characters.
    text = text[: 4 * limit + 1024]
    text = _LINE_BREAKS.sub("\n", text).replace("\t", " ")
    text, removed = _UNWANTED.subn("", text)
    if removed:
        notes.append(f"removed {removed} control character{'s' if removed > 1 else ''} from {name}")
    return unicodedata.normalize("NFC", text)


def _is_blank(text: str) -> bool:
    # Zero-width characters (category Cf) alone would look empty to the user.
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def _shorten(text: str, limit: int, name: str, notes: list[str]) -> str:
    """Cut ``text`` to at most ``limit`` characters, preferring a nearby word boundary."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    boundary = max(head.rfind(" "), head.rfind("\n"))
    if boundary > 0 and boundary >= limit - min(100, limit // 5):
        cut = boundary
    else:
        cut = limit
        # Keep combining marks, variation selectors and ZWJ emoji sequences whole.
        while cut > 0 and (
            unicodedata.combining(text[cut]) or text[cut] in _GRAPHEME_GLUE or text[cut - 1] == "\u200d"
        ):
            cut -= 1
        cut = cut or limit
    shortened = text[:cut].rstrip()
    notes.append(f"{name} shortened to {len(shortened)} characters (limit {limit})")
    return shortened


def _option_key(option: str) -> str:
    folded = unicodedata.normalize("NFKC", option).casefold()
    return " ".join("".join(ch for ch in folded if unicodedata.category(ch) != "Cf").split())


def _check_duplicates(options: list[str]) -> None:
    first_position: dict[str, int] = {}
    for position, option in enumerate(options, start=1):
        key = _option_key(option)
        if key in first_position:
            earlier = first_position[key]
            raise InputError(
                "option_duplicate",
                f"Options {earlier} and {position} are the same ({options[earlier - 1][:40]!r} and "
                f"{option[:40]!r}): make every option different.",
            )
        first_position[key] = position
