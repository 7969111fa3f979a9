"""Serving the app on this machine's loopback: a free port, and a launch that returns once it listens.

For the screenshot tool, the tests and the benchmarks; ``app.py`` launches as a user asks it to.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vqa_demo.ui.server_settings import AppConfig


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_on_loopback(demo, config: AppConfig) -> str:
    """Launch ``demo`` (a ``gr.Blocks``) with ``config``'s limits on a free loopback port without
    blocking; returns its URL once the port accepts connections (about 5 s at most)."""
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        **config.launch_kwargs(),
    )
    for _ in range(50):
        try:
            with socket.create_connection(("127.0.0.1", demo.server_port), timeout=0.2):
                return url
        except OSError:
            time.sleep(0.1)
    return url
