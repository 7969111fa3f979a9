"""The running app over loopback: gradio_client calls the Answer endpoint and gets per-variant scores.

The app is built exactly as ``app.py`` builds it (nothing injected), so this also covers the lazy
load of the base, the five checkpoints and the sentence model from an assets folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.app_support import launch
from vqa_demo.data.splits import load_split
from vqa_demo.ui import build_demo
from vqa_demo.ui.answer_api import answer_arguments, answer_inputs

pytestmark = pytest.mark.slow

NAMES = ["cond_gen", "multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]


@pytest.fixture(scope="module")
def client(app_assets):
    demo = build_demo(app_assets.config)
    assert not demo.vqa_holder.loaded
    url = launch(demo, app_assets.config)
    try:
        yield Client(url, verbose=False, download_files=False), demo
    finally:
        demo.close()


def test_answer_endpoint_returns_per_variant_scores(client, app_assets):
    client, demo = client
    api = client.view_api(return_format="dict", print_info=False)
    names = [p["parameter_name"] for p in api["named_endpoints"]["/answer"]["parameters"]]
    assert names[:4] == ["image", "question", "k", "option_a"] and names[-1] == "use_swag_attentive"
    example = load_split(app_assets.root / "validation")[0]
    status, summary, _chart, cond_gen, scores = client.predict(
        **answer_arguments(handle_file(str(example.image_path)), example.question, example.options),
        api_name="/answer",
    )
    assert status.startswith("✓") and demo.vqa_holder.loaded
    assert list(scores) == NAMES
    for score in scores.values():
        assert len(score["probabilities"]) == 4 and abs(sum(score["probabilities"]) - 1) < 1e-4
        assert score["answer"] == example.options[score["choice"]]
    assert "generated_text" in scores["cond_gen"] and "cosine" in scores["cond_gen"]
    assert [row[0] for row in summary["data"]] == NAMES and "cond_gen" in cond_gen


def test_positional_call_with_a_subset_of_variants(client, app_assets):
    client, _ = client
    example = load_split(app_assets.root / "validation")[1]
    ticks = [name.startswith("swag") for name in NAMES]
    ticks[NAMES.index("multi_class-attentive")] = True  # skipped at k = 3: a note
    status, *_, scores = client.predict(
        *answer_inputs(handle_file(str(example.image_path)), example.question, example.options[:3], ticks),
        api_name="/answer",
    )
    assert list(scores) == ["swag-last_token", "swag-attentive"]
    # Plain text for API callers: the note is a sentence, not HTML.
    assert "Note: multi_class-attentive skipped" in status and "<" not in status
    assert all(len(s["option_scores"]) == 3 for s in scores.values())


def test_invalid_input_over_the_api_is_a_message(client):
    client, _ = client
    status, *_ = client.predict(
        image=None, question="What is shown?", k=2, option_a="a", option_b="b", api_name="/answer"
    )
    assert status.startswith("⚠") and "No image" in status


def test_only_the_answer_endpoint_is_public(client):
    client, _ = client
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/answer"}


def test_only_example_and_validation_images_are_served(client, app_assets):
    import httpx

    client, _ = client
    root = app_assets.root
    repo_file = Path(__file__).resolve().parent.parent / "pyproject.toml"

    def status(path) -> int:
        return httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={path}").status_code

    assert status(next((root / "validation").glob("*.png"))) == 200
    assert status(repo_file) == 403
    assert status(root / "checkpoints" / "cond_gen" / "run_config.json") == 403
    assert status(root / "base" / "config.json") == 403
    assert status(root / "evaluation" / "predictions.jsonl") == 403


def _cached_copies(data: bytes) -> list[Path]:
    from gradio.utils import get_upload_folder

    return [p for p in Path(get_upload_folder()).rglob("*") if p.is_file() and p.read_bytes() == data]


def test_uploads_are_deleted_after_the_retention_time(app_assets, tmp_path):
    """An upload is fetchable by its hashed path while cached: ``upload_ttl`` bounds how long."""
    from dataclasses import replace

    # Long enough that a loaded machine still sees the upload before it expires.
    config = replace(app_assets.config, upload_ttl=6)
    demo = build_demo(config)
    url = launch(demo, config)
    try:
        example = load_split(app_assets.root / "validation")[0]
        image = tmp_path / "private.png"
        # A byte-unique upload, so copies left by other tests cannot be mistaken for it.
        image.write_bytes(Path(example.image_path).read_bytes() + b"\0private")
        client = Client(url, verbose=False, download_files=False)
        a, b, c, d = example.options
        status, *_ = client.predict(
            handle_file(str(image)), example.question, 4, a, b, c, d, api_name="/answer"
        )
        assert status.startswith("✓")
        assert _cached_copies(image.read_bytes()), "the upload should be in Gradio's cache at first"
        deadline = time.monotonic() + 30
        while _cached_copies(image.read_bytes()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _cached_copies(image.read_bytes())
    finally:
        demo.close()
