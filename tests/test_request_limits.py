"""Issue 12, sections 3 and 6 on a running server: one size limit everywhere, API arguments, messages.

A server started with ``max_file_size="1mb"`` must apply that one setting to uploads, to a data URL's
decoded bytes and to the queue's request body; uploads per request are bounded and a malformed upload
is a 400 with a reason (an upload part without a file name was a 500). ``k``, the ticks and the
options are sent as a hostile client would (raw queue requests and gradio_client): each gets a
one-sentence message naming the form's fields, the category in the raw-scores JSON, no bare "Error",
no toast, and the model is not called.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.app_support import FakePredictor, served
from tests.server_queue import completed_output, event_id, queue_call
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.holder import PredictorHolder
from vqa_demo.ui.server_settings import MAX_EVENT_BYTES, MAX_INPUT_BYTES, MAX_UPLOAD_FILES
from vqa_demo.ui.tabs.ask import AskCallbacks

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
OPTIONS = ["red", "blue", "green", "grey"]


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(app_assets):
    config = AppConfig(assets=app_assets.root, base=str(app_assets.root / "base"), max_file_size="1mb")
    yield from served(config, FakePredictor())


def answer(server, image, k=4, options=OPTIONS, ticks=None, question="What colour?", raw_body=None):
    """/answer through the raw queue; returns (outputs, messages)."""
    fn = event_id(server["demo"], api_name="answer")
    data = answer_inputs(image, question, options, [True] * 5 if ticks is None else ticks, k=k)
    server["fake"].calls.clear()
    body = None if raw_body is None else (lambda session: raw_body(fn, data, session))
    status, messages = queue_call(server["url"], fn, data, raw_body=body)
    assert status == 200, status
    done = completed_output(messages)
    assert done["success"], done  # never a bare "Error"
    assert not [m for m in messages if m.get("msg") == "log"], messages  # no toast
    return done["output"]["data"], messages


def assert_refused(outputs, server, category: str, *fragments: str) -> None:
    status, raw = outputs[0], outputs[4]
    assert status.startswith("⚠") and raw["error"]["category"] == category, outputs[:5]
    assert status.count(".") + status.count(":") >= 1 and "`" not in status and category not in status
    for fragment in fragments:
        assert fragment in status, status
    assert server["fake"].calls == []


def upload(url: str, files) -> httpx.Response:
    return httpx.post(f"{url}/gradio_api/upload", files=files, timeout=60)


# -- section 3: one size limit --------------------------------------------------------------------


def test_the_one_setting_derives_every_limit():
    config = AppConfig(max_file_size="50mb")
    assert config.max_image_bytes == 50 * MIB
    assert config.launch_kwargs()["max_file_size"] == 50 * MIB
    # Event bodies do not grow with the file limit: images come as uploads (issue 21, item 2).
    assert config.max_request_bytes == MAX_EVENT_BYTES
    with pytest.raises(ValueError, match="max-file-size"):
        AppConfig(max_file_size="lots")


def test_a_15_mb_image_passes_a_50_mb_server(tmp_path):
    """It was refused as over a hard-coded "10.0 MB" after the upload had been accepted."""
    path = tmp_path / "big.png"
    path.write_bytes(noise_png(2400, 2200))
    assert path.stat().st_size > 15 * MIB
    fake = FakePredictor()
    ask = AskCallbacks(PredictorHolder(predictor=fake), AppConfig(assets=tmp_path, max_file_size="50mb"))
    status, *_ = ask.answer(str(path), "Which?", 2, "a", "b", *[""] * 6, *[True] * 5)
    assert status.startswith("✓") and len(fake.calls) == 1


def test_upload_over_the_limit_is_413_and_under_it_200(server):
    assert upload(server["url"], {"files": ("big.png", b"\0" * (MIB + 1))}).status_code == 413
    assert upload(server["url"], {"files": ("ok.png", b"\0" * (MIB - 1000))}).status_code == 200


def test_a_data_url_over_the_input_limit_is_413_and_a_small_one_answers(server):
    """Inline images are refused before Gradio stores them in the session; small ones still work."""
    fn = event_id(server["demo"], api_name="answer")
    inline = "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_INPUT_BYTES + 3000)).decode()
    data = answer_inputs({"url": inline}, "What colour?", OPTIONS, [True] * 5)
    status, _ = queue_call(server["url"], fn, data)
    assert status == 413
    small = "data:image/png;base64," + base64.b64encode(noise_png(40, 30)).decode()
    outputs, _ = answer(server, small)
    assert outputs[0].startswith("✓") and len(server["fake"].calls) == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_queue_body_over_the_limit_is_413(server, chunked):
    fn = event_id(server["demo"], api_name="answer")
    body = json.dumps(
        {"data": [None, "x" * (2 * MIB), 2, "a", "b"], "fn_index": fn, "session_hash": "big00001"}
    ).encode()
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    response = httpx.post(
        f"{server['url']}/gradio_api/queue/join",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and "limit" in response.text


def test_uploads_per_request_are_bounded(server):
    files = [("files", (f"{i}.png", b"\x89PNG" + bytes([i]))) for i in range(MAX_UPLOAD_FILES + 1)]
    response = upload(server["url"], files)
    assert response.status_code == 400 and f"At most {MAX_UPLOAD_FILES} files" in response.text
    assert upload(server["url"], files[:MAX_UPLOAD_FILES]).status_code == 200


@pytest.mark.parametrize(
    "part",
    [
        b'Content-Disposition: form-data; name="files"\r\n\r\nabc',  # what httpx sends for filename ""
        b'Content-Disposition: form-data; name="other"; filename="a.png"\r\n\r\nabc',
        b"Content-Type: image/png\r\n\r\nabc",
    ],
    ids=["no_filename", "wrong_field", "no_disposition"],
)
def test_malformed_upload_parts_are_400_not_500(server, part):
    body = b"--XX\r\n" + part + b"\r\n--XX--\r\n"
    response = httpx.post(
        f"{server['url']}/gradio_api/upload",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=XX"},
    )
    assert response.status_code == 400 and "file" in response.text, response.text
    assert upload(server["url"], {"files": ("", b"\x89PNG")}).status_code == 400


def test_an_empty_file_name_is_fine_when_the_part_is_a_file(server):
    body = b'--XX\r\nContent-Disposition: form-data; name="files"; filename=""\r\n\r\nabc\r\n--XX--\r\n'
    response = httpx.post(
        f"{server['url']}/gradio_api/upload",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=XX"},
    )
    assert response.status_code == 200 and len(response.json()) == 1


# -- section 6: API arguments and text ------------------------------------------------------------


def with_raw_k(text: str):
    """A raw JSON body whose ``k`` is ``text`` verbatim (NaN and Infinity are not JSON)."""

    def body(fn, data, session):
        encoded = json.dumps({"data": data, "fn_index": fn, "session_hash": session, "event_data": None})
        return encoded.replace('"What colour?", 4,', f'"What colour?", {text},').encode()

    return body


@pytest.mark.parametrize("k", ['"abc"', "NaN", "Infinity", "-Infinity", "2.5", "true", "[4]", '{"k": 4}'])
def test_a_malformed_k_is_a_clear_message(server, k):
    image = str(next((server["config"].examples_dir).glob("*.png")))
    outputs, _ = answer(server, {"path": image}, raw_body=with_raw_k(k))
    assert_refused(outputs, server, "invalid_k", "k must be a whole number of options from 2 to 8")


def test_k_as_a_numeric_string_or_whole_float_is_accepted(server):
    image = {"path": str(next(server["config"].examples_dir.glob("*.png")))}
    for k in ('"4"', "4.0"):
        outputs, _ = answer(server, image, raw_body=with_raw_k(k))
        assert outputs[0].startswith("✓") and len(server["fake"].calls[0][2]) == 4


@pytest.mark.parametrize("tick", ["false", "true", 0, 1, [], {}])
def test_a_tick_that_is_not_a_boolean_is_a_clear_message(server, tick):
    image = {"path": str(next(server["config"].examples_dir.glob("*.png")))}
    outputs, _ = answer(server, image, ticks=[True, tick, True, True, True])
    assert_refused(outputs, server, "invalid_tick", "use_multi_class_last_token must be true or false")


INVISIBLE = {
    "braille_blank": "\u2800",
    "hangul_filler": "\u3164",
    "combining_marks": "\u0301\u0308",
    "variation_selectors": "\ufe0f\ufe0e",
    "zero_width": "\u200b\u2060",
}


@pytest.mark.parametrize("case", list(INVISIBLE))
def test_an_invisible_only_option_is_empty_and_named_by_letter(server, case):
    image = {"path": str(next(server["config"].examples_dir.glob("*.png")))}
    options = ["red", "blue", INVISIBLE[case], "grey"]
    outputs, _ = answer(server, image, options=options)
    assert_refused(outputs, server, "option_empty", "Option C is empty")


def test_gradio_client_gets_the_same_messages(server, tmp_path):
    client = Client(server["url"], verbose=False, download_files=False)
    server["fake"].calls.clear()
    image = tmp_path / "ok.png"
    image.write_bytes(noise_png(40, 30))
    status, *_, raw = client.predict(handle_file(str(image)), "Q?", "abc", "a", "b", api_name="/answer")
    assert raw["error"]["category"] == "invalid_k" and "k must be a whole number" in status
    status, *_, raw = client.predict(handle_file(str(image)), "Q?", 2, "a", "\u3164", api_name="/answer")
    assert raw["error"]["category"] == "option_empty" and "Option B is empty" in status
    status, *_, raw = client.predict(
        handle_file(str(image)), "Q?", 2, "a", "b", "", "", "", "", "", "", "false", api_name="/answer"
    )
    assert raw["error"]["category"] == "invalid_tick" and "use_cond_gen" in status
    assert server["fake"].calls == []
    # Fixed input: the status box and the raw JSON carry no trace of the earlier refusal.
    status, *_, raw = client.predict(handle_file(str(image)), "Q?", 2, "a", "b", api_name="/answer")
    assert status.startswith("✓") and "error" not in raw and "⚠" not in status
