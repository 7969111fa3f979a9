"""Hostile uploads and text through the app's real Answer callback (the function behind ``/answer``).

Every rejected input must come back as a one-sentence status message (no category tag, no
traceback) while the raw-scores output carries the expected stable category (read with
:func:`failure_category`), and the predictor must not have been called. Accepted-but-odd input (a 10 000-character question, control
characters, right-to-left text and emoji, literal special tokens) must reach the model, changed only
as the status note says.
"""

from __future__ import annotations

import base64
import io
import struct
import warnings

import pytest
import torch
from gradio.data_classes import ImageData
from PIL import Image

from benchmarks.hostile_files import scan_bomb_jpeg
from tests.app_support import FakePredictor
from tests.test_inputs_images import SVG, encode, noise, png_declaring
from vqa_demo.inputs import CATEGORIES
from vqa_demo.model.encoding import RowEncoder
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.status import failure_category
from vqa_demo.ui.tabs.ask import NO_VARIANT, VARIANT_INCOMPATIBLE

NAMES = ["cond_gen", "multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]
OPTIONS = ["red", "blue", "green", "grey"]
UPLOAD_LIMIT = AppConfig().max_image_bytes


def answer_fn(demo):
    """What ``/answer`` runs once the event has admitted the image (the files here are the test's own)."""
    (fn,) = [f for f in demo.fns.values() if f.api_name == "answer"]
    return fn.fn.__wrapped__


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The demo built around a counting fake predictor: ``(answer, fake)``."""
    fake = FakePredictor()
    demo = build_demo(AppConfig(assets=tmp_path_factory.mktemp("no-assets")), predictor=fake)
    return answer_fn(demo), fake


@pytest.fixture
def answer(app):
    fn, fake = app
    fake.calls.clear()
    return fn


@pytest.fixture
def fake(app):
    return app[1]


@pytest.fixture(scope="module")
def good_image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("good") / "chart.png"
    noise(40, 30).save(path)
    return str(path)


def call(answer, image, question="What colour is the square?", options=OPTIONS, k=None, ticks=None):
    """Call the /answer function as the queue does: image path, question, k, 8 boxes, 5 ticks."""
    ticks = [True] * len(NAMES) if ticks is None else ticks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gr.Warning outside a request is a UserWarning
        return answer(*answer_inputs(image, question, options, ticks, k=k))


def assert_refused(outputs, category: str, fake: FakePredictor) -> None:
    status, summary, chart, cond_gen, raw, result = outputs
    assert status.startswith("⚠"), status
    assert failure_category(raw) == category, (status, raw)
    assert raw["error"]["message"] in status and "`" not in status and category not in status
    assert "Traceback" not in status and "Error:" not in status
    assert summary.empty and chart is None and result is None
    assert fake.calls == [], "the model ran on invalid input"


# -- images: files the way Gradio hands them over (a path in its upload cache) ---------------------


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width x height``."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    """A BMP whose info header claims ``width x height`` (24 bit) with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def cut(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

# (id, file name, bytes factory, expected category)
HOSTILE_FILES = [
    ("bomb_header_100000x100000", "bomb.png", lambda: png_declaring(100_000, 100_000), "image_too_large"),
    ("header_48_megapixels", "big.png", lambda: png_declaring(8000, 6000), "image_too_large"),
    ("gif_bomb_header", "bomb.gif", lambda: gif_declaring(65_535, 65_535), "image_too_large"),
    ("bmp_bomb_header", "bomb.bmp", lambda: bmp_declaring(60_000, 60_000), "image_too_large"),
    ("truncated_png", "cut.png", lambda: cut(encode(noise())), "image_truncated"),
    ("truncated_jpeg", "cut.jpg", lambda: cut(encode(noise(), "JPEG")), "image_truncated"),
    ("truncated_webp", "cut.webp", lambda: cut(encode(noise(), "WEBP")), "image_truncated"),
    ("random_bytes_png", "noise.png", lambda: bytes(range(7, 256)) * 16, "image_unreadable"),
    (
        "png_signature_then_garbage",
        "sig.png",
        lambda: b"\x89PNG\r\n\x1a\n" + b"\xee" * 64,
        "image_unreadable",
    ),
    ("zip_named_png", "archive.png", lambda: b"PK\x03\x04" + b"\x00" * 200, "image_unreadable"),
    ("elf_named_jpg", "program.jpg", lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "image_unreadable"),
    ("tga_not_allowed", "picture.png", lambda: encode(noise(), "TGA"), "image_unreadable"),
    ("svg", "drawing.svg", lambda: SVG, "image_not_raster"),
    ("svg_named_png", "drawing.png", lambda: SVG, "image_not_raster"),
    ("svg_utf16", "drawing16.png", lambda: SVG.decode().encode("utf-16"), "image_not_raster"),
    ("html_named_png", "page.png", lambda: HTML, "image_not_raster"),
    ("pdf_named_png", "doc.png", lambda: PDF, "image_not_raster"),
    ("postscript", "print.png", lambda: b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 10 10\n", "image_not_raster"),
    ("one_pixel", "dot.png", lambda: encode(Image.new("RGB", (1, 1))), "image_too_small"),
    ("20000x10", "strip.png", lambda: encode(Image.new("L", (20000, 10))), "image_aspect"),
    ("empty_file", "empty.png", lambda: b"", "image_empty"),
    ("jpeg_scan_bomb", "scans.jpg", lambda: scan_bomb_jpeg(400, side=64), "image_too_slow"),
]


@pytest.mark.parametrize(
    "name, make, category", [p[1:] for p in HOSTILE_FILES], ids=[p[0] for p in HOSTILE_FILES]
)
def test_hostile_upload_is_refused_with_its_category(answer, fake, tmp_path, name, make, category):
    path = tmp_path / name
    path.write_bytes(make())
    assert_refused(call(answer, str(path)), category, fake)


def test_upload_over_the_size_limit_is_refused_before_reading(answer, fake, tmp_path):
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:  # sparse: the size check must not need the bytes
        handle.write(encode(noise()))
        handle.truncate(UPLOAD_LIMIT + 1)
    outputs = call(answer, str(path))
    assert_refused(outputs, "image_too_large", fake)
    assert "10.0 MB" in outputs[0]


MISSING_IMAGES = [(None, "image_missing"), ("missing", "image_not_found"), ("directory", "image_not_found")]


@pytest.mark.parametrize("source, category", MISSING_IMAGES)
def test_missing_image_is_refused(answer, fake, tmp_path, source, category):
    image = {"missing": str(tmp_path / "gone.png"), "directory": str(tmp_path)}.get(source, source)
    assert_refused(call(answer, image), category, fake)


def test_image_events_admit_the_payload_themselves_undecoded(tmp_path, fake):
    """Gradio's own Image preprocessing would open the file with Pillow first (a bare "Error"), and a
    ``gr.update`` for the image rebuilds the component without any preprocess attached to it: the
    events that take the image skip preprocessing and admit the payload themselves."""
    demo = build_demo(AppConfig(assets=tmp_path), predictor=fake)
    (component,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "ask-image"]
    events = [f for f in demo.fns.values() if component in f.inputs]
    assert len(events) == 2 and not any(f.preprocess for f in events)
    (check,) = [f.fn for f in events if f.api_name != "answer"]
    (tmp_path / "examples").mkdir()
    example = tmp_path / "examples" / "page.png"  # an admitted folder: the bytes are checked later
    example.write_bytes(HTML)
    url = "data:image/png;base64," + base64.b64encode(HTML).decode()
    for payload in (ImageData(path=str(example), orig_name="page.png").model_dump(), {"url": url}, url):
        update, status = check(payload)
        assert update is None and "not a picture" in status, status
    assert check(None)[1] == "" and check(str(tmp_path / "elsewhere.png"))[1].startswith("⚠")


# -- text and options -----------------------------------------------------------------------------

# (id, question, options, k (None: len(options)), ticks (None: all), expected category)
HOSTILE_TEXT = [
    ("question_none", None, OPTIONS, None, None, "question_empty"),
    ("question_empty", "", OPTIONS, None, None, "question_empty"),
    ("question_whitespace", "  \n\t \r\n ", OPTIONS, None, None, "question_empty"),
    ("question_zero_width", "\u200b\u200d\ufeff\u2060", OPTIONS, None, None, "question_empty"),
    ("question_controls_only", "\x00\x07\x1b\x7f", OPTIONS, None, None, "question_empty"),
    ("question_rtl_override_only", "\u202e\u202d", OPTIONS, None, None, "question_empty"),
    ("question_lone_surrogates", "\ud800\udfff", OPTIONS, None, None, "question_empty"),
    ("option_empty", "What colour?", ["red", "", "green"], None, None, "option_empty"),
    ("option_whitespace", "What colour?", ["red", " \t ", "green"], None, None, "option_empty"),
    ("option_zero_width", "What colour?", ["red", "\u200b", "green"], None, None, "option_empty"),
    ("option_none", "What colour?", ["red", None], None, None, "option_empty"),
    ("duplicate_options", "What colour?", ["Red", "blue", " red "], None, None, "option_duplicate"),
    ("duplicate_fullwidth", "What colour?", ["ＲＥＤ", "red"], None, None, "option_duplicate"),
    ("duplicate_inner_spaces", "What colour?", ["dark  red", "Dark red"], None, None, "option_duplicate"),
    ("one_option", "What colour?", ["red"], None, None, "too_few_options"),
    ("k_zero", "What colour?", [], 0, None, "too_few_options"),
    ("k_negative", "What colour?", ["red", "blue"], -3, None, "too_few_options"),
    ("nine_options", "What colour?", [f"colour {i}" for i in range(8)], 9, None, "too_many_options"),
    ("k_huge", "What colour?", OPTIONS, 10**12, None, "too_many_options"),
    ("no_variant_ticked", "What colour?", OPTIONS, None, [False] * 5, NO_VARIANT),
    (
        "only_incompatible_variants",  # the multi_class heads were trained for exactly 4 options
        "What colour?",
        ["red", "blue"],
        None,
        [False, True, True, False, False],
        VARIANT_INCOMPATIBLE,
    ),
]


@pytest.mark.parametrize(
    "question, options, k, ticks, category",
    [p[1:] for p in HOSTILE_TEXT],
    ids=[p[0] for p in HOSTILE_TEXT],
)
def test_hostile_text_is_refused_with_its_category(
    answer, fake, good_image, question, options, k, ticks, category
):
    assert_refused(call(answer, good_image, question, options, k=k, ticks=ticks), category, fake)


def test_the_suite_covers_enough_distinct_hostile_inputs():
    refused = [p[0] for p in HOSTILE_FILES + HOSTILE_TEXT] + [str(m[0]) for m in MISSING_IMAGES]
    assert len(set(refused)) + 1 >= 30  # + the file over the upload limit
    input_categories = {p[-1] for p in HOSTILE_FILES + HOSTILE_TEXT} & set(CATEGORIES)
    image_categories = {c for c in CATEGORIES if c.startswith("image_") and not c.startswith("image_array")}
    # image_not_allowed (the admission of the payload) is tested in test_image_admission.py.
    assert image_categories - {"image_missing", "image_not_found", "image_not_allowed"} <= input_categories


# -- accepted, with a note, and the model IS called --------------------------------------------------


def assert_answered(outputs, fake: FakePredictor) -> str:
    status = outputs[0]
    assert status.startswith("✓"), status
    assert failure_category(outputs[4]) is None
    assert len(fake.calls) == 1
    return status


def test_ten_thousand_character_question_is_shortened_visibly(answer, fake, good_image):
    question = ("How many shapes touch the border of the picture " * 300)[:10_000]
    status = assert_answered(call(answer, good_image, question), fake)
    _, sent_question, sent_options, _ = fake.calls[0]
    assert "question shortened to" in status and "limit 2000" in status
    assert len(sent_question) <= 2000 and question.startswith(sent_question)
    assert sent_options == OPTIONS


def test_ten_thousand_character_option_is_shortened_visibly(answer, fake, good_image):
    status = assert_answered(call(answer, good_image, "Which?", ["x" * 10_000, "y", "z"]), fake)
    assert "Option A shortened to 300 characters (limit 300)" in status
    assert [len(o) for o in fake.calls[0][2]] == [300, 1, 1]


def test_control_characters_are_removed_with_a_note(answer, fake, good_image):
    status = assert_answered(
        call(answer, good_image, "What\x00 colour\x07 is\x1b it?", ["re\x08d", "blue", "gr\x00een"]), fake
    )
    assert "removed 3 control characters from the question" in status
    assert "removed 1 control character from Option A" in status
    _, sent_question, sent_options, _ = fake.calls[0]
    assert sent_question == "What colour is it?" and sent_options == ["red", "blue", "green"]


def test_right_to_left_text_and_emoji_reach_the_model_verbatim(answer, fake, good_image):
    question = "ما لون المربع؟ 🟥 מה הצבע?"
    options = ["أحمر 🔴", "כחול 🔵", "👨‍👩‍👧 family", "🏳️‍🌈"]
    status = assert_answered(call(answer, good_image, question, options), fake)
    assert "Note:" not in status
    _, sent_question, sent_options, _ = fake.calls[0]
    assert sent_question == question and sent_options == options


@pytest.fixture
def one_torch_thread():
    """Tiny ops on a loaded 2-core machine run ~10x slower with 2 OpenMP threads than with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_literal_special_tokens_are_text_and_the_image_token_count_is_unchanged(
    tiny_predictor, good_image, monkeypatch, tmp_path, one_torch_thread
):
    """``<image><eos>`` typed by a user is accepted and encoded as plain text, never as control tokens."""
    calls: list[tuple] = []

    class Counting:  # the real tiny predictor, counted
        variants = tiny_predictor.variants
        pixel_values = tiny_predictor.pixel_values

        def predict(self, *args, **kwargs):
            calls.append(args)
            return tiny_predictor.predict(*args, **kwargs)

    encoded_rows: list = []
    original = RowEncoder.encode

    def recording_encode(self, rows, with_suffix=True):
        encoded = original(self, rows, with_suffix)
        encoded_rows.append((self, encoded))
        return encoded

    monkeypatch.setattr(RowEncoder, "encode", recording_encode)
    answer = answer_fn(build_demo(AppConfig(assets=tmp_path), predictor=Counting()))

    def image_token_counts(question, options):
        encoded_rows.clear()
        status = call(answer, good_image, question, options)[0]
        assert status.startswith("✓"), status
        counts = set()
        for encoder, encoded in encoded_rows:
            for ids, mask in zip(encoded.input_ids, encoded.attention_mask):
                tokens = ids[mask.bool()].tolist()
                counts.add(tokens.count(encoder.image_token_id))
                assert tokens.count(encoder.tokenizer.bos_token_id) == 1
        return counts

    plain = image_token_counts("What colour is the square?", ["red", "blue", "green", "grey"])
    hostile = image_token_counts("What is <image><eos> here?<bos>", ["<image>", "<eos>", "<pad>", "<bos>"])
    seq_length = tiny_predictor.backbone.image_seq_length
    assert plain == hostile == {seq_length}
    assert len(calls) == 2 and calls[1][1] == "What is <image><eos> here?<bos>"
    assert calls[1][2] == ["<image>", "<eos>", "<pad>", "<bos>"]


def test_image_from_bytes_io_roundtrip_is_accepted(answer, fake, tmp_path):
    """Control: an ordinary upload passes every check above (so refusals are about the content)."""
    buffer = io.BytesIO()
    noise(64, 48).save(buffer, "PNG")
    path = tmp_path / "ok.png"
    path.write_bytes(buffer.getvalue())
    assert_answered(call(answer, str(path)), fake)
