"""Repeated page loads are answered from memory, and only where the answer cannot differ.

Through the real server on loopback: the kept ``/config`` and ``/`` equal what Gradio builds for a
request it has not seen, a different public address (``Host``, ``X-Forwarded-*``) never gets another
address's config, the entries are bounded whatever headers a client varies, and an app with a login
keeps nothing. The page-load timing itself is ``python -m benchmarks.load_test --hostile``'s check 1.
"""

from __future__ import annotations

import json

import gradio as gr
import httpx
import pytest
from starlette.middleware import Middleware

from tests.app_support import FakePredictor, served
from vqa_demo.ui import AppConfig
from vqa_demo.ui.page_cache import PageCache, cache_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(app_assets):
    config = AppConfig(assets=app_assets.root, base=str(app_assets.root / "base"))
    yield from served(config, FakePredictor())


def page_cache(server) -> PageCache:
    """The PageCache instance in the running server's middleware stack."""
    layer = server["demo"].server_app.middleware_stack
    while not isinstance(layer, PageCache):
        layer = layer.app
    return layer


def test_a_kept_config_equals_a_freshly_built_one(server):
    cache = page_cache(server)
    first = httpx.get(f"{server['url']}/config")
    assert first.status_code == 200
    kept_before = len(cache.entries)
    again = httpx.get(f"{server['url']}/config")
    assert len(cache.entries) == kept_before  # served from the entry, not a new one
    built = httpx.get(f"{server['url']}/config?fresh=1")  # a key not seen yet: Gradio builds it
    assert again.content == first.content
    assert json.loads(again.content) == json.loads(built.content)
    assert again.headers["x-content-type-options"] == "nosniff"  # the limits layer still wraps it
    page, built_page = httpx.get(f"{server['url']}/"), httpx.get(f"{server['url']}/?fresh=1")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.content == httpx.get(f"{server['url']}/").content
    assert len(page.content) > 1000 and page.content == built_page.content


def test_another_public_address_gets_its_own_config(server):
    url = f"{server['url']}/config"
    here = json.loads(httpx.get(url).content)["root"]
    proxied = json.loads(
        httpx.get(url, headers={"X-Forwarded-Host": "vqa.example.org", "X-Forwarded-Proto": "https"}).content
    )["root"]
    assert here.startswith("http://127.0.0.1")
    assert proxied == "https://vqa.example.org"
    assert json.loads(httpx.get(url).content)["root"] == here


def test_varying_headers_cannot_grow_the_entries(server):
    cache = page_cache(server)
    for index in range(3 * cache.max_entries):
        response = httpx.get(f"{server['url']}/config", headers={"X-Forwarded-Host": f"h{index}.example.org"})
        assert response.status_code == 200
        assert json.loads(response.content)["root"] == f"http://h{index}.example.org"
    assert len(cache.entries) == cache.max_entries


def test_only_page_loads_without_a_login_are_kept():
    class App:
        auth = None
        auth_dependency = None

    def scope(path: str, method: str = "GET", app=App) -> dict:
        return {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": b"",
            "headers": [],
            "app": app,
        }

    assert cache_key(scope("/config")) is not None and cache_key(scope("/config/")) is not None
    assert cache_key(scope("/")) is not None
    assert cache_key(scope("/config", "POST")) is None
    assert cache_key(scope("/gradio_api/info")) is None
    assert cache_key(scope("/config", app=None)) is None  # not known to be a Gradio app: not kept

    class WithLogin(App):
        auth = {"user": "password"}

    assert cache_key(scope("/config", app=WithLogin)) is None


def test_a_login_page_is_never_replayed_to_a_logged_in_user(app_assets):
    """A real app with a login: every ``/config`` goes to Gradio, which answers 401 without the cookie."""
    with gr.Blocks() as demo:
        gr.Markdown("private")
    demo.launch(
        auth=("user", "secret"),
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        app_kwargs={"middleware": [Middleware(PageCache)]},
    )
    try:
        url = demo.local_url.rstrip("/")
        assert httpx.get(f"{url}/config").status_code == 401
        client = httpx.Client()
        assert client.post(f"{url}/login", data={"username": "user", "password": "secret"}).status_code == 200
        assert client.get(f"{url}/config").status_code == 200
        assert httpx.get(f"{url}/config").status_code == 401  # not the logged-in user's copy
    finally:
        demo.close()
