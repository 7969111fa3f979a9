"""Over loopback: many fresh sessions answering on a large image hold no more than the set bounds.

Held state is measured by walking the objects Gradio keeps per session (not by resident memory,
which the allocator blurs): the pixels they reference, the sessions, and the answer memory's count.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from tests.app_support import FakePredictor, launch
from vqa_demo.explain.heatmaps import OVERLAY_MAX_SIDE
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.answer_state import AskResult, forget_answer

pytestmark = pytest.mark.slow

OPTIONS = ["red", "blue", "green", "grey"]
TTL = 6
BUDGET = "1.2mb"  # two answers' copies (512 x 341 display + 8 x 8 model input each), not three
MAX_SESSIONS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    config = AppConfig(assets=root, session_ttl=TTL, session_memory=BUDGET, max_sessions=MAX_SESSIONS)
    demo = build_demo(config, predictor=FakePredictor())
    url = launch(demo, config)
    gradient = np.linspace(0, 255, 3000, dtype=np.uint8)
    big = root / "big.png"  # 6 MP, ~10 KB on disk
    Image.fromarray(np.stack([np.tile(gradient, (2000, 1))] * 3, axis=-1)).save(big)
    try:
        yield url.rstrip("/"), demo, big
    finally:
        demo.close()


def held_pixels(demo) -> tuple[int, list[tuple[int, int]], int]:
    """(bytes of images/arrays/tensors in all sessions' state, PIL sizes found, answers held)."""
    seen: set[int] = set()
    stack = [s.state_data for s in list(demo.state_holder.session_data.values())]
    total, sizes, answers = 0, [], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, Image.Image):
            total += obj.width * obj.height * len(obj.getbands())
            sizes.append(obj.size)
        elif isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            answers += isinstance(obj, AskResult)
            stack.append(vars(obj))
    return total, sizes, answers


def raw_answer(url: str, demo, image_path) -> str:
    """Upload, join the queue under a new session and read the event stream; returns the status."""
    with open(image_path, "rb") as handle:
        uploaded = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.png", handle)}, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    (answer,) = [f for f in demo.fns.values() if f.api_name == "answer"]
    image = {"path": uploaded.json()[0], "orig_name": "big.png", "meta": {"_type": "gradio.FileData"}}
    session = uuid.uuid4().hex
    body = {
        "data": [image, "What colour?", 4, *OPTIONS, *[""] * 4, *[True] * 5],
        "fn_index": answer._id,
        "session_hash": session,
        "event_data": None,
    }
    assert httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=30).status_code == 200
    params = {"session_hash": session}
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params=params, timeout=60) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                assert message["success"], message
                return message["output"]["data"][0]
    raise AssertionError("the event stream ended without a result")


def test_fresh_sessions_hold_no_more_than_the_bounds_and_let_go_after_the_ttl(server):
    url, demo, big = server
    memory = demo.vqa_memory
    statuses = [raw_answer(url, demo, big) for _ in range(6)]
    for _ in range(6):  # gradio_client: every Client is a new session
        client = Client(url, verbose=False, download_files=False)
        status, *_ = client.predict(handle_file(str(big)), "What colour?", 4, *OPTIONS, api_name="/answer")
        statuses.append(status)
        client.close()
    assert all(s.startswith("✓") for s in statuses), statuses
    held, sizes, answers = held_pixels(demo)
    assert len(demo.state_holder.session_data) <= MAX_SESSIONS
    assert sizes and all(max(size) <= OVERLAY_MAX_SIDE for size in sizes), sizes
    # Everything the sessions hold fits the budget: 2 answers' copies, never a 6 MP (18 MB) image.
    assert 0 < held <= memory.max_bytes and memory.held_bytes <= memory.max_bytes
    assert len(memory) <= 2 and answers <= MAX_SESSIONS
    deadline = time.monotonic() + TTL + 10
    while time.monotonic() < deadline and (len(memory) or held_pixels(demo)[2]):
        time.sleep(0.5)
    held, _, answers = held_pixels(demo)
    assert len(memory) == 0 and memory.held_bytes == 0, "gradio's state sweep did not release the copies"
    assert held == 0 and answers == 0


def test_the_session_bound_reaches_gradio(server):
    _, demo, _ = server
    assert demo.state_session_capacity == MAX_SESSIONS
    (state,) = [
        b for b in demo.blocks.values() if type(b).__name__ == "State" and b.delete_callback is forget_answer
    ]
    # A module-level function: Gradio deep-copies the config (delete callbacks included) on page loads.
    assert state.time_to_live == TTL
