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

from vqa_demo.inputs.errors import CATEGORIES, InputError
from vqa_demo.inputs.image import PreparedImage, prepare_image
from vqa_demo.inputs.text import PreparedQuestion, check_option_count, prepare_question

__all__ = [
    "CATEGORIES",
    "InputError",
    "PreparedImage",
    "PreparedQuestion",
    "check_option_count",
    "prepare_image",
    "prepare_question",
]
