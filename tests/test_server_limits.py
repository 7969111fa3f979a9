"""The running app's limits over loopback: which files it serves, upload size, queue, direct API calls.

The server is built by ``app.py`` itself (settings from the environment, launched with
``config.launch_kwargs()`` as its ``__main__`` does) on a private copy of the tiny assets, into
whose example folder symlinks pointing outside have been planted. Paths are sent byte for byte
over a raw socket so that no client library normalises ``..`` away.
"""

from __future__ import annotations

import json
import runpy
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError

from tests.app_support import FakePredictor, launch
from tests.server_queue import queue_call
from vqa_demo.ui import AppConfig, build_demo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# Content (never names) of the files that must not leak: passwd, run configs, safetensors headers,
# adapter and model configs, app.py, pyproject.toml, predictions.
SECRET_MARKERS = (
    b"root:x:0:0",
    b'"backbone"',
    b'"dtype"',
    b'"peft_type"',
    b'"model_type"',
    b"from vqa_demo",
    b"[build-system]",
    b'"probabilities"',
)


@pytest.fixture(scope="module")
def server(app_assets, tmp_path_factory):
    """``(base_url, port, demo, assets_root)`` for app.py's demo on a copy of the tiny assets."""
    root = tmp_path_factory.mktemp("served") / "assets"
    shutil.copytree(app_assets.root, root)
    examples = root / "examples"
    (examples / "passwd.png").symlink_to("/etc/passwd")
    (examples / "run_config.png").symlink_to(root / "checkpoints" / "cond_gen" / "run_config.json")
    (examples / "app.png").symlink_to(REPO / "app.py")
    (examples / "ckpt").symlink_to(root / "checkpoints", target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VQA_ASSETS", str(root))
        patch.setenv("VQA_BASE", str(root / "base"))
        for name in ("VQA_CHECKPOINTS", "VQA_MAX_FILE_SIZE", "VQA_QUEUE_SIZE"):
            patch.delenv(name, raising=False)
        namespace = runpy.run_path(str(REPO / "app.py"), run_name="app_under_test")
    demo, config = namespace["demo"], namespace["config"]
    url = launch(demo, config)
    try:
        yield url.rstrip("/"), demo.server_port, demo, root
    finally:
        demo.close()


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no normalisation); returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def refused_targets(root: Path) -> dict[str, str]:
    """id -> request target for everything that must not be served."""
    examples = root / "examples"
    checkpoint = root / "checkpoints" / "cond_gen"
    up = "../" * 12
    escape = f"{examples}/../checkpoints/cond_gen/run_config.json"
    targets = {
        "etc_passwd": "/etc/passwd",
        "relative_traversal": f"{up}etc/passwd",
        "traversal_from_examples": escape,
        "traversal_to_etc": f"{examples}/{up}etc/passwd",
        "traversal_url_encoded": f"{examples}/%2e%2e/checkpoints/cond_gen/run_config.json",
        "traversal_slash_encoded": f"{examples}/..%2fcheckpoints%2fcond_gen%2frun_config.json",
        "traversal_all_encoded": f"{examples}%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "traversal_double_encoded": f"{examples}/%252e%252e/checkpoints/cond_gen/run_config.json",
        "traversal_double_encoded_etc": f"{examples}/{'%252e%252e%252f' * 12}etc/passwd",
        "traversal_backslash": f"{examples}/..\\..\\checkpoints\\cond_gen\\run_config.json".replace(
            "\\", "%5c"
        ),
        "checkpoint_run_config": f"{checkpoint}/run_config.json",
        "checkpoint_adapter": f"{checkpoint}/adapter_model.safetensors",
        "checkpoint_adapter_config": f"{checkpoint}/adapter_config.json",
        "checkpoint_head": f"{root}/checkpoints/swag-attentive/head.safetensors",
        "checkpoint_metrics": f"{checkpoint}/metrics.jsonl",
        "checkpoint_dir": str(checkpoint),
        "base_config": f"{root}/base/config.json",
        "base_weights": f"{root}/base/model.safetensors",
        "base_tokenizer": f"{root}/base/tokenizer.json",
        "evaluation_predictions": f"{root}/evaluation/predictions.jsonl",
        "comparison_json": f"{root}/comparison.json",
        "app_py": str(REPO / "app.py"),
        "app_py_relative": "app.py",
        "pyproject": str(REPO / "pyproject.toml"),
        "upper_case_etc": "/ETC/PASSWD",
        "upper_case_checkpoint": f"{root}/CHECKPOINTS/cond_gen/run_config.json",
        "upper_case_file": f"{checkpoint}/RUN_CONFIG.JSON",
        "upper_case_examples_escape": f"{root}/EXAMPLES/../checkpoints/cond_gen/run_config.json",
        "symlink_to_etc_passwd": f"{examples}/passwd.png",
        "symlink_to_checkpoint_file": f"{examples}/run_config.png",
        "symlink_to_app_py": f"{examples}/app.png",
        "symlinked_checkpoint_dir": f"{examples}/ckpt/cond_gen/run_config.json",
        "examples_dir_itself": str(examples),
        "http_url_to_self": "http://127.0.0.1:{port}/gradio_api/file=/etc/passwd",
        "file_scheme": "file:///etc/passwd",
    }
    return targets


REFUSED_IDS = list(refused_targets(Path("/x")))


@pytest.mark.parametrize("case", REFUSED_IDS)
def test_file_route_refuses(server, case):
    url, port, _, root = server
    target = refused_targets(root)[case].replace("{port}", str(port))
    status, body = raw_get(port, "/gradio_api/file=" + target)
    assert 400 <= status < 500, (case, status, body[:200])
    assert not any(marker in body for marker in SECRET_MARKERS), body[:200]


def test_file_route_serves_example_and_validation_images(server):
    url, port, _, root = server
    example = sorted((root / "examples").glob("validation_*.png"))[0]
    status, body = raw_get(port, f"/gradio_api/file={example}")
    assert status == 200 and body == example.read_bytes()
    image = sorted((root / "validation").glob("*.png"))[0]
    assert httpx.get(f"{url}/gradio_api/file={image}").status_code == 200


def test_symlinks_out_of_the_examples_folder_are_not_offered(server):
    """Planted symlinks never become gallery examples (whose files Gradio would copy into its cache)."""
    _, _, demo, root = server
    paths = [e.image_path for e in demo.vqa_assets.examples]
    assert paths and all(p.is_relative_to(root / "examples") and p.suffix == ".png" for p in paths)
    config_text = json.dumps(demo.config, default=str)
    assert "passwd" not in config_text and "run_config" not in config_text


def test_upload_over_the_size_limit_is_rejected(server):
    url, *_ = server
    small = httpx.post(f"{url}/gradio_api/upload", files={"files": ("ok.png", b"\x89PNG" + b"0" * 100)})
    assert small.status_code == 200, small.text
    over = 10 * 1024 * 1024 + 1  # the app's default max_file_size is 10mb
    response = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.png", b"\0" * over)}, timeout=60)
    assert response.status_code == 413, response.text[:200]


def test_queue_is_bounded_and_the_model_runs_one_at_a_time(server):
    _, _, demo, _ = server
    assert demo.config["enable_queue"] and demo._queue.max_size == AppConfig().queue_size == 16
    assert demo.config["max_file_size"] == 10 * 1024 * 1024
    (answer,) = [f for f in demo.fns.values() if f.api_name == "answer"]
    assert answer.queue and answer.concurrency_limit == 1 and answer.concurrency_id == "model"
    model_events = [f for f in demo.fns.values() if f.concurrency_id == "model"]
    assert {f.concurrency_limit for f in model_events} == {1} and len(model_events) >= 2
    # Events outside the model slot inherit the queue default, also one at a time.
    assert demo._queue.default_concurrency_limit == 1


@pytest.mark.parametrize("route", ["run/answer", "api/answer", "run/live", "run/pick_row"])
def test_direct_posts_that_would_skip_the_queue_are_refused(server, route):
    url, *_ = server
    body = {"data": [None, "What?", 2, "a", "b", *[""] * 6, *[True] * 5]}
    response = httpx.post(f"{url}/gradio_api/{route}", json=body)
    assert 400 <= response.status_code < 500, response.text[:200]


def test_a_forged_file_path_in_the_queue_is_refused_before_the_callback(server):
    """A client naming /etc/passwd as its 'uploaded' image: Gradio refuses, the model never loads."""
    url, _, demo, _ = server
    (answer,) = [f for f in demo.fns.values() if f.api_name == "answer"]
    forged = {"path": "/etc/passwd", "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}
    data = [forged, "What?", 2, "a", "b", *[""] * 6, *[True] * 5]
    status, messages = queue_call(url, answer._id, data, session="forged0001")
    if status != 200:
        assert 400 <= status < 500
    text = json.dumps(messages)
    assert "root:x:0:0" not in text
    completed = [m for m in messages if m.get("msg") == "process_completed"]
    assert status != 200 or (completed and completed[0]["success"] is False), messages
    assert not demo.vqa_holder.loaded


def test_invalid_upload_over_the_api_gets_the_validation_message(server, tmp_path):
    """Hostile bytes reach prepare_image (not Gradio's own Pillow call): a clean, tagged message."""
    url, _, demo, _ = server
    page = tmp_path / "page.png"
    page.write_bytes(b"<!DOCTYPE html><html><body>not a picture</body></html>")
    client = Client(url, verbose=False, download_files=False)
    status, *_, raw = client.predict(
        image=handle_file(str(page)), question="What?", k=2, option_a="a", option_b="b", api_name="/answer"
    )
    assert status.startswith("⚠") and raw["error"]["category"] == "image_not_raster"
    assert not demo.vqa_holder.loaded


class SlowPredictor(FakePredictor):
    def __init__(self, seconds: float):
        super().__init__()
        self.delay = seconds
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def predict(self, *args, **kwargs):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        return super().predict(*args, **kwargs)


def test_a_full_queue_rejects_cleanly_and_only_one_prediction_runs_at_a_time(app_assets):
    config = AppConfig(assets=app_assets.root, queue_size=2)
    slow = SlowPredictor(0.4)
    demo = build_demo(config, predictor=slow)
    url = launch(demo, config)
    image = str(sorted((app_assets.root / "examples").glob("*.png"))[0])
    outcomes: list[str] = []
    try:
        clients = [Client(url, verbose=False, download_files=False) for _ in range(7)]

        def ask(client):
            try:
                status, *_ = client.predict(
                    handle_file(image), "What colour?", 2, "red", "blue", api_name="/answer"
                )
                outcomes.append("answered" if status.startswith("✓") else status)
            except QueueError:
                outcomes.append("queue_full")
            except Exception as error:  # recorded, asserted on below
                outcomes.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        demo.close()
    assert len(outcomes) == 7 and set(outcomes) <= {"answered", "queue_full"}, outcomes
    assert outcomes.count("queue_full") >= 1 and outcomes.count("answered") >= 2
    assert slow.most_at_once == 1
