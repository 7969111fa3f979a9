"""An ASGI middleware that answers repeated page loads (``GET /`` and ``GET /config``) from memory.

Gradio builds both responses anew on every request: it deep-copies the whole app config (about
260 KB of JSON for this app) and encodes it, about 0.1 s of CPU under the GIL. Twenty page loads at
once therefore queued behind each other (``/config`` p95 1.4 s on 2 cores). Nothing in either
response depends on who asks when the app has no login: only on the path, the query (``page``,
``deep_link``) and the headers Gradio reads for the public address (``Host``, ``X-Forwarded-Host``,
``X-Forwarded-Proto``, ``X-Gradio-Server``) and the mount's ``root_path``. So a response is kept
under exactly those, for ``ttl_s`` seconds, in at most ``max_entries`` entries (a client varying
its headers evicts older entries, it cannot grow memory); concurrent misses for one key wait for a
single build.

Only a ``200`` without ``Set-Cookie`` is kept, and nothing is kept or replayed when the app requires
a login (``app.auth`` or ``app.auth_dependency``): then the response depends on the user.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

CACHED_PATHS = frozenset({"/", "/config"})
KEY_HEADERS = (b"host", b"x-forwarded-host", b"x-forwarded-proto", b"x-gradio-server")


@dataclass
class Recorded:
    """One whole response: its ``http.response.start`` message and its body."""

    start: dict = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    stored_at: float = 0.0

    def keepable(self) -> bool:
        headers = self.start.get("headers", [])
        return self.start.get("status") == 200 and not any(
            name.lower() == b"set-cookie" for name, _ in headers
        )

    async def replay(self, send) -> None:
        await send(self.start)
        await send({"type": "http.response.body", "body": bytes(self.body)})


def needs_login(scope: dict) -> bool:
    """Whether the Gradio app behind ``scope`` asks for a login (unknown apps count as asking)."""
    app = scope.get("app")
    if app is None or not hasattr(app, "auth"):
        return True
    return app.auth is not None or getattr(app, "auth_dependency", None) is not None


def cache_key(scope: dict) -> tuple | None:
    """What the response to ``scope`` depends on, or None when it is not a page load to keep."""
    if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
        return None
    path = scope.get("path", "")
    if (path.rstrip("/") or "/") not in CACHED_PATHS or needs_login(scope):
        return None
    headers = dict(scope.get("headers") or [])
    return (
        scope["method"],
        path,
        scope.get("query_string", b""),
        scope.get("root_path", ""),
        scope.get("scheme", "http"),
        *(headers.get(name, b"") for name in KEY_HEADERS),
    )


class PageCache:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: Any, ttl_s: float = 30.0, max_entries: int = 16):
        self.app = app
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple, Recorded] = OrderedDict()
        self.building: dict[tuple, asyncio.Lock] = {}

    async def __call__(self, scope: dict, receive, send) -> None:
        key = cache_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        entry = self.fresh(key)
        if entry is None:
            lock = self.building.setdefault(key, asyncio.Lock())
            async with lock:
                entry = self.fresh(key)
                if entry is None:
                    entry = await self.record(scope, receive)
                    if entry.keepable():
                        self.keep(key, entry)
            if not lock.locked():
                self.building.pop(key, None)
        await entry.replay(send)

    def fresh(self, key: tuple) -> Recorded | None:
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry.stored_at > self.ttl_s:
            return None
        self.entries.move_to_end(key)
        return entry

    def keep(self, key: tuple, entry: Recorded) -> None:
        entry.stored_at = time.monotonic()
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    async def record(self, scope: dict, receive) -> Recorded:
        recorded = Recorded()

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                recorded.start = message
            elif message["type"] == "http.response.body":
                recorded.body += message.get("body", b"")

        await self.app(scope, receive, capture)
        return recorded
