"""Validation of user-supplied questions and options (see :mod:`vqa_demo.inputs` for the contract)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from vqa_demo.config import MAX_OPTIONS, MIN_OPTIONS, OPTION_LETTERS
from vqa_demo.inputs.errors import InputError

# Input limits: the model side sizes its answer budget from MAX_OPTION_CHARS (vqa_demo.model.encoding).
MAX_QUESTION_CHARS = 2000
MAX_OPTION_CHARS = 300

_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
# C0/C1 controls except \n (tabs are already spaces), lone surrogates (unencodable) and the BOM.
_UNWANTED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x84\x86-\x9f\ufeff\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n{3,}")
_GRAPHEME_GLUE = {"\u200d", "\ufe0e", "\ufe0f"}
# Letters that draw nothing but are not whitespace, formatting (Cf) or marks (M*): Hangul fillers,
# the Braille blank, the combining grapheme joiner, Khmer inherent vowels, Mongolian free variation
# selectors (Unicode's Default_Ignorable_Code_Point and the blank-looking fillers).
_INVISIBLE = set("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f")


def option_letter(position: int) -> str:
    """``2`` -> ``"B"``: the form's letter for a 1-based option position (the number past H)."""
    return OPTION_LETTERS[position - 1] if 1 <= position <= len(OPTION_LETTERS) else str(position)


def option_name(position: int) -> str:
    """``2`` -> ``"Option B"``: an option as the form labels it."""
    return f"Option {option_letter(position)}"


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
    min_options: int = MIN_OPTIONS,
    max_options: int = MAX_OPTIONS,
    max_question_chars: int = MAX_QUESTION_CHARS,
    max_option_chars: int = MAX_OPTION_CHARS,
) -> PreparedQuestion:
    """Validate and clean one multiple-choice question.

    Text is NFC-normalised, C0/C1 control characters (other than line breaks) are removed, tabs
    become spaces and every line break becomes ``"\\n"``; right-to-left text, emoji and literal
    special-token strings (``"<image>"``, ``"<eos>"``...) are kept as typed (see the module
    docstring). Questions and options over their character limit are shortened, at a word boundary
    when one is near, with a note. Options are stripped and folded onto one line but never dropped:
    an empty option (one of only invisible characters included), two options equal after case,
    width, whitespace and invisible-character folding, or a count outside ``[min_options,
    max_options]`` raise :class:`InputError` naming the options by letter (Option A...) or the limits.
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
        name = option_name(position)
        value = " ".join(_clean_text(option, name, notes, max_option_chars).split())
        if _is_blank(value):
            raise InputError(
                "option_empty",
                f"{name} is empty (or holds only invisible characters): fill it in or remove it.",
            )
        cleaned.append(_shorten(value, max_option_chars, name, notes))
    _check_duplicates(cleaned)
    return PreparedQuestion(question=text, options=cleaned, notes=notes)


def check_option_count(count: int, *, min_options: int = MIN_OPTIONS, max_options: int = MAX_OPTIONS) -> None:
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


def _is_invisible(ch: str) -> bool:
    # Zero-width (Cf), marks without a base letter (M*), variation selectors (Mn) and blank fillers.
    return (
        ch.isspace()
        or ch in _INVISIBLE
        or unicodedata.category(ch)[0] == "M"
        or unicodedata.category(ch) == "Cf"
    )


def _is_blank(text: str) -> bool:
    """True if ``text`` would look empty: only whitespace, marks, formatting and blank-looking letters."""
    return all(_is_invisible(ch) for ch in text)


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
    # "1999 characters (limit 2000)" alone reads like an off-by-one: say why it is shorter.
    at = " to end at a word boundary" if len(shortened) < limit else ""
    notes.append(f"{name} shortened to {len(shortened)} characters{at} (limit {limit})")
    return shortened


def _option_key(option: str) -> str:
    # Options that differ only in characters that draw nothing look the same to the user.
    folded = unicodedata.normalize("NFKC", option).casefold()
    visible = "".join(" " if ch.isspace() else ch for ch in folded if ch.isspace() or not _is_invisible(ch))
    return " ".join(visible.split()) or folded


def _check_duplicates(options: list[str]) -> None:
    first_position: dict[str, int] = {}
    for position, option in enumerate(options, start=1):
        key = _option_key(option)
        if key in first_position:
            earlier = first_position[key]
            raise InputError(
                "option_duplicate",
                f"Options {option_letter(earlier)} and {option_letter(position)} are the same "
                f"({options[earlier - 1][:40]!r} and {option[:40]!r}): make every option different.",
            )
        first_position[key] = position
