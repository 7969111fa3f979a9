"""Issue 21 (items 1, 2, 3, 7, 9) and issue 25 (defect 1) on a running server over loopback.

- Page loads copy the app config: nothing in it may reach a predictor or a callback object.
- Raw input values Gradio keeps per session are bounded in bytes whatever the client sends.
- A JPEG of thousands of scans is refused from its header; a slow decode is cut off by its budget;
  an upload is decoded once, at Answer.
- ``k`` is parsed by one strict rule (ASCII digits, bounded length).
- Every response carries ``X-Content-Type-Options: nosniff``.
- The image admission still runs after any sequence of uploads, refusals and clears (a
  ``gr.update`` rebuilds the component for its session).
"""

from __future__ import annotations

import copy
import io
import json
import random
import time
import types
import uuid

import httpx
import numpy as np
import pytest
from PIL import Image

from benchmarks.hostile_files import scan_bomb_jpeg
from tests.app_support import FakePredictor, served
from tests.server_queue import completed_output, event_id, queue_call
from tests.test_inputs_images import png_declaring
from vqa_demo.inputs import InputError
from vqa_demo.inputs.decode_worker import DecodeWorker
from vqa_demo.inputs.image import MAX_JPEG_SCANS
from vqa_demo.ui import AppConfig
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.server_settings import MAX_EVENT_BYTES, MAX_INPUT_BYTES
from vqa_demo.ui.tabs.ask_arguments import BadArgument, requested_count

pytestmark = pytest.mark.slow

OPTIONS = ["red", "blue", "green", "grey"]
NOSNIFF = "nosniff"


class TripwirePredictor(FakePredictor):
    """A predictor that fails any test that copies or pickles it."""

    def __deepcopy__(self, memo):
        raise AssertionError("the app config reached the predictor")

    def __reduce_ex__(self, protocol):
        raise AssertionError("the app config reached the predictor")


@pytest.fixture(scope="module")
def server(app_assets):
    config = AppConfig(assets=app_assets.root, base=str(app_assets.root / "base"))
    yield from served(config, TripwirePredictor())


def png_bytes(width: int = 48, height: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(server, name: str, data: bytes) -> dict:
    """POST the file to ``/gradio_api/upload``; returns the payload the browser then sends."""
    response = httpx.post(f"{server['url']}/gradio_api/upload", files={"files": (name, data)}, timeout=60)
    assert response.status_code == 200, response.text
    path = response.json()[0]
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def call(server, fn: str, data: list, session: str) -> list:
    """One event in ``session`` through the raw queue; its outputs (never a bare "Error")."""
    api = {"api_name": "answer"} if fn == "answer" else {"fn_name": fn}
    status, messages = queue_call(server["url"], event_id(server["demo"], **api), data, session=session)
    assert status == 200, status
    done = completed_output(messages)
    assert done["success"], done
    return done["output"]["data"]


def ask(server, image, session: str, k=4, question="What colour?") -> list:
    return call(server, "answer", answer_inputs(image, question, OPTIONS, [True] * 5, k=k), session)


def category(outputs: list) -> str | None:
    raw = outputs[4]
    return raw.get("error", {}).get("category") if isinstance(raw, dict) else None


# -- item 1: page loads never copy the model -------------------------------------------------------


def reachable_objects(root) -> list:
    """Every object ``copy.deepcopy(root)`` would visit (functions and classes are copied as they are)."""
    seen, found, stack = set(), [], [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, dict):
            stack += [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
    return found


def test_the_app_config_holds_plain_data_and_copying_it_never_touches_a_predictor(server):
    config = server["demo"].config
    plain = (str, int, float, bool, type(None), dict, list, tuple)
    others = [o for o in reachable_objects(config) if not isinstance(o, plain)]
    # Module-level functions (Gradio's own default delete callback, ours) are copied by reference.
    assert all(isinstance(o, types.FunctionType) and "." not in o.__qualname__ for o in others), others
    started = time.perf_counter()
    copy.deepcopy(config)  # TripwirePredictor raises if reached
    assert time.perf_counter() - started < 2.0


def test_page_loads_after_an_answer_are_fast_and_never_copy_the_predictor(server):
    example = str(next(server["config"].examples_dir.glob("*.png")))
    assert ask(server, {"path": example}, "pageload1")[0].startswith("✓")
    seconds = []
    for path in ("/config", "/", "/config"):
        started = time.perf_counter()
        response = httpx.get(server["url"] + path, timeout=30)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:300]
    assert max(seconds) < 2.0, seconds


# -- item 9: nosniff on every response ----------------------------------------------------------------


def test_an_html_upload_named_png_is_served_with_nosniff(server):
    payload = upload(server, "page.png", b"<!DOCTYPE html><script>alert(1)</script>")
    response = httpx.get(f"{server['url']}/gradio_api/file={payload['path']}", timeout=30)
    assert response.status_code == 200 and response.headers["x-content-type-options"] == NOSNIFF


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/", None),
        ("GET", "/config", None),
        ("GET", "/gradio_api/info", None),
        ("GET", "/no/such/page", None),
        ("GET", "/gradio_api/file=/etc/passwd", None),
        ("POST", "/gradio_api/queue/join", b"x" * (MAX_EVENT_BYTES + 1)),
        ("POST", "/gradio_api/upload", b"not multipart"),
    ],
)
def test_every_response_carries_nosniff(server, method, path, body):
    response = httpx.request(method, server["url"] + path, content=body, timeout=30)
    assert response.headers.get("x-content-type-options") == NOSNIFF, (response.status_code, path)


def test_a_served_example_carries_nosniff(server):
    example = next(server["config"].examples_dir.glob("*.png"))
    response = httpx.get(f"{server['url']}/gradio_api/file={example}", timeout=30)
    assert response.status_code == 200 and response.headers["x-content-type-options"] == NOSNIFF


# -- item 7: strict k -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k",
    ["+-3", "--4", "²", "①", "1" * 5000, "٣", "４", "0x4", "1e1", "4 4", "\u00a04", "4\n", "0004", "3.5"],
    ids=lambda k: repr(k)[:12],
)
def test_a_hostile_k_string_is_one_clear_message(server, k):
    example = {"path": str(next(server["config"].examples_dir.glob("*.png")))}
    outputs = ask(server, example, "k" + uuid.uuid4().hex[:10], k=k)
    assert category(outputs) == "invalid_k" and "k must be a whole number" in outputs[0]


def test_k_parsing_fuzzed_never_raises_anything_but_a_clear_refusal():
    rng = random.Random(21)
    alphabet = "0123456789+- \t\n.e²³①٣４\u00a0x_" + "".join(chr(c) for c in range(0x660, 0x66A))
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        try:
            value = requested_count(text)
        except BadArgument as error:
            assert error.category == "invalid_k"
            continue
        stripped = text.strip(" \t")
        assert text == "" or (stripped.lstrip("+-").isascii() and int(stripped) == value), text
    assert requested_count(" +4 ") == 4 and requested_count("-3") == -3 and requested_count(4.0) == 4


# -- item 3: scan bombs, the decode budget, one decode per upload ----------------------------------------


def test_a_scan_bomb_is_refused_from_its_header_within_two_seconds(server):
    bomb = scan_bomb_jpeg(2000, side=1000)
    payload = upload(server, "scans.jpg", bomb)
    started = time.perf_counter()
    update, status = call(server, "check_upload", [payload], "bomb1")
    assert "scans" in status and str(MAX_JPEG_SCANS) in status and update is None
    server["fake"].calls.clear()
    outputs = ask(server, payload, "bomb1")
    assert category(outputs) == "image_too_slow" and time.perf_counter() - started < 2.0
    assert server["fake"].calls == []


def test_a_decode_over_its_budget_is_cut_off_and_the_next_one_works(tmp_path):
    worker = DecodeWorker(seconds=30)
    data = png_bytes(2000, 1500)
    assert worker.prepare(data, max_bytes=10**8).image.size == (2000, 1500)
    worker.seconds = 0.001
    with pytest.raises(InputError) as refused:
        worker.prepare(data, max_bytes=10**8)
    assert refused.value.category == "image_too_slow" and "longer than" in refused.value.message
    worker.seconds = 30
    assert worker.prepare(png_bytes(), max_bytes=10**8).image.size == (48, 32)
    worker.stop()


def test_an_upload_is_decoded_once_at_answer_not_at_upload(server):
    decoder = server["demo"].vqa_decoder
    payload = upload(server, "good.png", png_bytes(seed=3))
    before = decoder.decodes
    assert call(server, "check_upload", [payload], "once1")[1] == ""
    assert decoder.decodes == before
    assert ask(server, payload, "once1")[0].startswith("✓")
    assert decoder.decodes == before + 1


# -- issue 25 defect 1: admission after any sequence of uploads and clears --------------------------------

GOOD, NOT_IMAGE, HUGE_HEADER, CLEAR = "good", "not_image", "huge_header", "clear"
FILES = {
    GOOD: ("good.png", lambda: png_bytes(seed=1), None),
    NOT_IMAGE: ("notes.png", lambda: b"shopping list: eggs, milk\n", "image_unreadable"),
    HUGE_HEADER: ("huge.png", lambda: png_declaring(8000, 6000), "image_too_large"),
}


@pytest.mark.parametrize(
    "sequence",
    [
        [GOOD, NOT_IMAGE],
        [GOOD, GOOD, HUGE_HEADER],
        [GOOD, CLEAR, NOT_IMAGE],
        [NOT_IMAGE, GOOD],
        [GOOD, NOT_IMAGE, CLEAR, GOOD, HUGE_HEADER],
    ],
    ids="-".join,
)
def test_the_checks_run_after_any_sequence_of_uploads_and_clears(server, sequence):
    session = "seq" + uuid.uuid4().hex[:10]
    payload = None
    for step in sequence:
        if step == CLEAR:
            payload = None
            assert call(server, "check_upload", [None], session)[1] == ""
            continue
        name, make, refusal = FILES[step]
        payload = upload(server, name, make())
        update, status = call(server, "check_upload", [payload], session)
        assert (status == "") == (refusal is None), (step, status)  # a message, never a bare "Error"
    outputs = ask(server, payload, session)
    expected = "image_missing" if payload is None else FILES[sequence[-1]][2]
    assert category(outputs) == expected, outputs[0]
    assert outputs[0].startswith("✓" if expected is None else "⚠")


def test_after_an_update_a_path_that_was_not_uploaded_is_still_refused(server, tmp_path):
    session = "path" + uuid.uuid4().hex[:10]
    assert call(server, "check_upload", [upload(server, "good.png", png_bytes())], session)[1] == ""
    stray = tmp_path / "stray.png"
    stray.write_bytes(png_bytes(seed=5))
    server["fake"].calls.clear()
    for payload in ({"path": str(stray)}, {"url": f"file://{stray}"}, {"path": "/etc/passwd"}):
        assert category(ask(server, payload, session)) == "image_not_allowed", payload
    assert server["fake"].calls == []


# -- item 2: raw inputs per session, bounded in bytes --------------------------------------------------


def session_input_bytes(demo, sessions: list[str]) -> list[int]:
    """JSON bytes of the input values Gradio keeps in each of ``sessions``' state."""
    held = demo.state_holder.session_data
    return [
        sum(
            len(json.dumps(c.get("props", {}).get("value"), default=str))
            for c in held[s].config_values.values()
        )
        for s in sessions
        if s in held
    ]


@pytest.mark.parametrize(
    "field, size",
    [("question", MAX_INPUT_BYTES + 1), ("option_a", 12 * 1024 * 1024), ("image", MAX_INPUT_BYTES + 10)],
)
def test_an_oversized_input_is_refused_before_gradio_keeps_it(server, field, size):
    session = "big" + uuid.uuid4().hex[:10]
    data = answer_inputs({"path": "x"}, "What colour?", OPTIONS, [True] * 5)
    index = {"image": 0, "question": 1, "option_a": 3}[field]
    data[index] = "data:image/png;base64," + "A" * size if field == "image" else "q" * size
    status, _ = queue_call(server["url"], event_id(server["demo"], api_name="answer"), data, session=session)
    assert status == 413
    assert session not in server["demo"].state_holder.session_data


def test_a_body_without_content_type_is_checked_too(server):
    fn = event_id(server["demo"], api_name="answer")
    body = json.dumps({"data": ["q" * (MAX_INPUT_BYTES + 1)], "fn_index": fn, "session_hash": "noctype1"})
    response = httpx.post(f"{server['url']}/gradio_api/queue/join", content=body.encode(), timeout=30)
    assert response.status_code == 413 and "Input 1" in response.text


def test_sessions_at_the_input_limits_hold_at_most_one_event_body_more(server):
    """40 sessions, each sending three inputs of just under the per-value limit (refused: bad k)."""
    fn = event_id(server["demo"], api_name="answer")
    near = "q" * (MAX_INPUT_BYTES - 64)
    baseline = "membase" + uuid.uuid4().hex[:8]
    assert (
        queue_call(
            server["url"], fn, answer_inputs({"path": "x"}, "?", OPTIONS, [True] * 5, k="x"), baseline
        )[0]
        == 200
    )
    sessions = ["mem" + uuid.uuid4().hex[:10] for _ in range(40)]
    for session in sessions:
        data = answer_inputs({"path": "x"}, near, [near, near, "c", "d"], [True] * 5, k="x")
        assert queue_call(server["url"], fn, data, session=session)[0] == 200
    base = session_input_bytes(server["demo"], [baseline])[0]
    held = [h - base for h in session_input_bytes(server["demo"], sessions)]
    assert len(held) == 40 and 3 * (MAX_INPUT_BYTES - 64) - 200 <= max(held) <= MAX_EVENT_BYTES, max(held)
