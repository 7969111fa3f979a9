"""Hostile and unusual questions and options through prepare_question."""

from __future__ import annotations

import time

import pytest

from vqa_demo.inputs import CATEGORIES, InputError, PreparedQuestion, prepare_question

OK_OPTIONS = ["a cat", "a dog"]

# (id, question, options, keyword limits, expected category, fragments the message must contain)
REJECTED = [
    ("question_empty", "", OK_OPTIONS, {}, "question_empty", []),
    ("question_whitespace", "  \n\t \r\n ", OK_OPTIONS, {}, "question_empty", []),
    ("question_only_controls", "\x00\x01\x1b\x7f\x9b", OK_OPTIONS, {}, "question_empty", []),
    ("question_zero_width", "\u200b\ufeff\u2060", OK_OPTIONS, {}, "question_empty", []),
    ("question_none", None, OK_OPTIONS, {}, "question_empty", []),
    ("no_options", "What is it?", [], {}, "too_few_options", ["2"]),
    ("one_option", "What is it?", ["cat"], {}, "too_few_options", ["2", "got 1"]),
    ("below_custom_minimum", "What is it?", OK_OPTIONS, {"min_options": 3}, "too_few_options", ["3"]),
    (
        "nine_options",
        "What is it?",
        [f"option {i}" for i in range(9)],
        {},
        "too_many_options",
        ["8", "got 9"],
    ),
    ("above_custom_maximum", "Q?", ["a", "b", "c", "d", "e"], {"max_options": 4}, "too_many_options", ["4"]),
    ("empty_option", "What is it?", ["cat", ""], {}, "option_empty", ["Option B"]),
    ("whitespace_option", "What is it?", ["  ", "cat", "dog"], {}, "option_empty", ["Option A"]),
    ("zero_width_option", "What is it?", ["cat", "dog", "\u200b\u200d"], {}, "option_empty", ["Option C"]),
    ("control_only_option", "What is it?", ["cat", "\x00\x07"], {}, "option_empty", ["Option B"]),
    ("none_option", "What is it?", ["cat", None], {}, "option_empty", ["Option B"]),
    ("duplicate_case", "What is it?", ["Cat", "cat"], {}, "option_duplicate", ["Options A and B"]),
    (
        "duplicate_whitespace",
        "What is it?",
        ["x", "a  big\tcat", " a big cat "],
        {},
        "option_duplicate",
        ["Options B and C"],
    ),
    (
        "duplicate_fullwidth",
        "What is it?",
        ["ＣＡＴ", "dog", "cat"],
        {},
        "option_duplicate",
        ["Options A and C"],
    ),
    (
        "duplicate_zero_width",
        "What is it?",
        ["cat", "ca\u200bt"],
        {},
        "option_duplicate",
        ["Options A and B"],
    ),
    ("duplicate_nfd", "What is it?", ["cafe\u0301", "café"], {}, "option_duplicate", ["Options A and B"]),
    # Options that draw nothing count as empty (section 6 of issue 12), and invisible extras do not
    # make two options different.
    ("braille_blank_option", "Q?", ["cat", "\u2800\u2800"], {}, "option_empty", ["Option B"]),
    ("hangul_filler_option", "Q?", ["\u3164", "cat"], {}, "option_empty", ["Option A"]),
    ("halfwidth_filler_option", "Q?", ["cat", "dog", "\uffa0 \u115f"], {}, "option_empty", ["Option C"]),
    ("combining_marks_only", "Q?", ["cat", "\u0301\u0308\u20dd"], {}, "option_empty", ["Option B"]),
    ("variation_selectors_only", "Q?", ["cat", "\ufe0f\ufe0e\U000e0100"], {}, "option_empty", ["Option B"]),
    ("grapheme_joiner_only", "Q?", ["cat", "\u034f\u200d\u2060"], {}, "option_empty", ["Option B"]),
    ("duplicate_with_filler", "Q?", ["red", "red\u3164"], {}, "option_duplicate", ["Options A and B"]),
    (
        "duplicate_after_cut",
        "Q?",
        ["x" * 400 + "1", "x" * 400 + "2"],
        {},
        "option_duplicate",
        ["Options A and B"],
    ),
]


@pytest.mark.parametrize(
    ("question", "options", "limits", "category", "fragments"),
    [r[1:] for r in REJECTED],
    ids=[r[0] for r in REJECTED],
)
def test_rejected_text_raises_its_category(question, options, limits, category, fragments):
    with pytest.raises(InputError) as caught:
        prepare_question(question, options, **limits)
    assert caught.value.category == category
    assert category in CATEGORIES
    for fragment in fragments:
        assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message


# (id, question in, expected question out, expected note fragments)
CLEANED_QUESTIONS = [
    ("rtl_arabic", "ما لون القطة؟", "ما لون القطة؟", []),
    ("rtl_hebrew_with_marks", "\u200fמה צבע החתול?", "\u200fמה צבע החתול?", []),
    ("emoji_zwj_skin_tone", "Who is 👩🏽‍💻 next to 🏳️‍🌈?", "Who is 👩🏽‍💻 next to 🏳️‍🌈?", []),
    ("nfd_to_nfc", "Is this a cafe\u0301?", "Is this a café?", []),
    ("crlf_and_tabs", "line one\r\nline\ttwo\rthree", "line one\nline two\nthree", []),
    ("surrounding_whitespace", "  \n What?  \n\n\n\n why? \t", "What?\n\n why?", []),
    (
        "ansi_escape",
        "\x1b[31mred\x1b[0m cat?",
        "[31mred[0m cat?",
        ["removed 2 control characters from the question"],
    ),
    ("nul_and_c1", "wh\x00at\x9b is\x07 it?", "what is it?", ["removed 3 control characters"]),
    ("lone_surrogate", "bad \ud800 text?", "bad  text?", ["removed 1 control character "]),
    ("special_tokens_kept", "<image><bos> What? <eos><pad>", "<image><bos> What? <eos><pad>", []),
]


@pytest.mark.parametrize(
    ("question", "expected", "note_parts"),
    [c[1:] for c in CLEANED_QUESTIONS],
    ids=[c[0] for c in CLEANED_QUESTIONS],
)
def test_question_cleaning_keeps_meaningful_text(question, expected, note_parts):
    prepared = prepare_question(question, OK_OPTIONS)
    assert isinstance(prepared, PreparedQuestion)
    assert prepared.question == expected
    for part in note_parts:
        assert any(part in note for note in prepared.notes), (part, prepared.notes)
    if not note_parts:
        assert prepared.notes == []
    prepared.question.encode("utf-8")  # nothing unencodable survives


def test_options_are_stripped_folded_and_kept_in_order():
    options = [" <image> ", "line\r\nbreak", "\tتمساح", "🐈‍⬛", "<eos>"]
    prepared = prepare_question("Which?", options)
    assert prepared.options == ["<image>", "line break", "تمساح", "🐈‍⬛", "<eos>"]
    assert prepared.notes == []


def test_long_question_is_cut_at_a_word_boundary_with_a_note():
    question = " ".join(["word"] * 1000) + "?"
    prepared = prepare_question(question, OK_OPTIONS)
    assert len(prepared.question) <= 2000
    assert len(prepared.question) >= 1900
    assert prepared.question.endswith("word")
    assert prepared.question.split() == ["word"] * len(prepared.question.split())
    assert prepared.notes == [
        f"question shortened to {len(prepared.question)} characters to end at a word boundary (limit 2000)"
    ]


def test_long_question_without_spaces_is_cut_hard():
    prepared = prepare_question("x" * 5000, OK_OPTIONS)
    assert prepared.question == "x" * 2000
    assert prepared.notes == ["question shortened to 2000 characters (limit 2000)"]


def test_hard_cut_does_not_split_an_emoji_sequence():
    family = "👨\u200d👩\u200d👧"
    prepared = prepare_question("x" * 18 + family, OK_OPTIONS, max_question_chars=20)
    assert prepared.question == "x" * 18
    # NFC makes "e" + cedilla one character; the acute accent stays a combining mark after it.
    accented = prepare_question("x" * 19 + "e\u0327\u0301", OK_OPTIONS, max_question_chars=20)
    assert accented.question == "x" * 19


def test_overlong_option_is_cut_with_a_note_naming_it():
    prepared = prepare_question("Which?", ["short", "long " * 100])
    assert len(prepared.options[1]) <= 300
    assert prepared.options[1].endswith("long")
    assert prepared.notes == [
        f"Option B shortened to {len(prepared.options[1])} characters to end at a word boundary (limit 300)"
    ]


def test_megabyte_question_is_handled_quickly():
    started = time.perf_counter()
    prepared = prepare_question("spam " * 200_000 + "\x00" * 100_000, OK_OPTIONS)
    assert time.perf_counter() - started < 1.0
    assert len(prepared.question) <= 2000
    assert any("shortened" in note for note in prepared.notes)


def test_a_string_as_options_is_a_caller_bug():
    with pytest.raises(TypeError):
        prepare_question("Which?", "ab")
