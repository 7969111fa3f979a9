"""Raw queue requests to a running Gradio app: join an event and read its stream, as a hostile client would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx


def event_id(demo, api_name: str | None = None, fn_name: str | None = None) -> int:
    """The ``fn_index`` of the (first) event with ``api_name`` or whose function is called ``fn_name``."""
    fn, *_ = [
        f
        for f in demo.fns.values()
        if (api_name is not None and f.api_name == api_name)
        or (fn_name is not None and getattr(f.fn, "__name__", None) == fn_name)
    ]
    return fn._id


def queue_call(
    url: str,
    fn_index: int,
    data: list,
    session: str | None = None,
    event_data: dict | None = None,
    raw_body: Callable[[str], bytes] | None = None,
) -> tuple[int, list[dict]]:
    """POST ``/gradio_api/queue/join`` and read the event's messages; returns (join status, messages).

    ``raw_body(session_hash)`` replaces the JSON body (for values JSON cannot carry, such as ``NaN``).
    """
    session = session or uuid.uuid4().hex[:12]
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": event_data}
    if raw_body is None:
        join = httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=30)
    else:
        join = httpx.post(
            f"{url}/gradio_api/queue/join",
            content=raw_body(session),
            headers={"content-type": "application/json"},
            timeout=30,
        )
    messages: list[dict] = []
    if join.status_code != 200:
        return join.status_code, messages
    with httpx.stream(
        "GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=30
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                messages.append(json.loads(line[5:]))
                if messages[-1].get("msg") in ("process_completed", "close_stream"):
                    break
    return join.status_code, messages


def completed_output(messages: list[dict]) -> dict:
    """The ``output`` of the ``process_completed`` message (asserting that there is one)."""
    completed = [m for m in messages if m.get("msg") == "process_completed"]
    assert completed, messages
    return completed[0]
