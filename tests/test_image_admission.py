"""Issue 12, section 1: no image reaches the model unless it was uploaded here, is an example, or is inline.

A running app (on loopback, with a counting fake predictor) is sent image payloads in every shape a
client can forge, through raw queue requests and through gradio_client. A private photo outside the
served folders (a valid PNG, so that a hole would answer about it) must never reach the model, every
refusal must read the same whether or not the path exists, and no other event (the heatmap redraw,
the example gallery, the Errors tab) may hand back pixels of an image that was not admitted.
"""

from __future__ import annotations

import base64
import io
import shutil
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from PIL import Image

from tests.app_support import FakePredictor, launch
from tests.server_queue import completed_output, event_id, queue_call
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.image_source import NOT_ADMITTED, ImageAdmission

pytestmark = pytest.mark.slow

OPTIONS = ["red", "blue", "green", "grey"]
TICKS = [True] * 5


def png(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(app_assets, tmp_path_factory):
    """A launched app on a copy of the tiny assets, with a private photo outside every served folder."""
    top = tmp_path_factory.mktemp("admission")
    root = top / "assets"
    shutil.copytree(app_assets.root, root)
    private = top / "private"
    private.mkdir()
    (private / "photo.png").write_bytes(png(1))
    (root / "checkpoints" / "cond_gen" / "inside.png").write_bytes(png(2))
    (root / "examples" / "link.png").symlink_to(private / "photo.png")
    stray = Path(get_upload_folder()) / f"not-from-this-app-{uuid.uuid4().hex}"
    stray.mkdir(parents=True)
    (stray / "stray.png").write_bytes(png(3))
    config = AppConfig(assets=root, base=str(root / "base"))
    fake = FakePredictor()
    demo = build_demo(config, predictor=fake)
    url = launch(demo, config).rstrip("/")
    try:
        yield {"url": url, "demo": demo, "fake": fake, "root": root, "private": private, "stray": stray}
    finally:
        demo.close()
        shutil.rmtree(stray, ignore_errors=True)


def answer_raw(server, image, session: str | None = None) -> tuple[list, list[dict]]:
    """/answer through the raw queue: (outputs, all stream messages)."""
    fn = event_id(server["demo"], api_name="answer")
    data = answer_inputs(image, "What colour is it?", OPTIONS, TICKS)
    status, messages = queue_call(server["url"], fn, data, session=session)
    assert status == 200
    done = completed_output(messages)
    assert done["success"], done
    return done["output"]["data"], messages


def forged_payloads(server) -> dict[str, object]:
    """id -> an image payload naming a file that must not be read."""
    root, private = server["root"], server["private"]
    photo = str(private / "photo.png")
    examples = root / "examples"
    return {
        "dict_without_marker": {"path": photo, "orig_name": "photo.png"},
        "dict_path_and_data_url": {"path": photo, "url": "data:image/png;base64,AAAA"},
        "url_field_is_a_path": {"url": photo},
        "url_field_file_scheme": {"url": "file://" + photo},
        "url_field_own_file_route": {"url": f"{server['url']}/gradio_api/file={photo}"},
        "bare_string": photo,
        "list_of_one": [{"path": photo}],
        "dot_dot_from_examples": {"path": f"{examples}/../../private/photo.png"},
        "relative_dot_dot": {"path": "../" * 12 + photo.lstrip("/")},
        "symlink_in_examples": {"path": str(examples / "link.png")},
        "inside_checkpoints": {"path": str(root / "checkpoints" / "cond_gen" / "inside.png")},
        "cache_file_not_from_this_app": {"path": str(server["stray"] / "stray.png")},
        "etc_shadow": {"path": "/etc/shadow"},
        "missing_file": {"path": str(private / "no-such-file.png")},
        "directory": {"path": str(private)},
        "path_is_a_number": {"path": 12345},
        "nul_in_path": {"path": photo + "\x00.png"},
    }


FORGED = list(forged_payloads({"root": Path("/r"), "private": Path("/p"), "stray": Path("/s"), "url": ""}))


@pytest.mark.parametrize("case", FORGED)
def test_forged_image_payload_is_refused_without_calling_the_model(server, case):
    server["fake"].calls.clear()
    outputs, messages = answer_raw(server, forged_payloads(server)[case])
    status, raw = outputs[0], outputs[4]
    assert status.startswith("⚠") and raw["error"]["category"] == "image_not_allowed", outputs
    expected = NOT_ADMITTED if case != "list_of_one" else "Send one image, not a list of 1"
    assert expected in status
    assert server["fake"].calls == []


def test_refusals_read_the_same_whether_or_not_the_file_exists(server):
    """No probing: an existing image, an unreadable system file, a folder and a missing path look alike."""
    payloads = forged_payloads(server)
    texts = {
        case: answer_raw(server, payloads[case])[0][0]
        for case in ("dict_without_marker", "etc_shadow", "missing_file", "directory", "inside_checkpoints")
    }
    assert len(set(texts.values())) == 1, texts
    assert "photo" not in next(iter(texts.values()))


def test_uploads_examples_and_data_urls_are_admitted(server):
    """The three legitimate sources reach the model; an upload also without Gradio's meta marker."""
    url, fake = server["url"], server["fake"]
    upload = httpx.post(f"{url}/gradio_api/upload", files={"files": ("mine.png", png(4))})
    (cached,) = upload.json()
    example = sorted((server["root"] / "examples").glob("validation_*.png"))[0]
    inline = "data:image/png;base64," + base64.b64encode(png(5)).decode()
    meta = {"_type": "gradio.FileData"}
    for payload in (
        {"path": cached, "meta": meta},
        {"path": cached},
        cached,
        {"path": str(example)},
        {"url": inline},
        inline,
    ):
        fake.calls.clear()
        outputs, _ = answer_raw(server, payload)
        assert outputs[0].startswith("✓"), (payload if len(str(payload)) < 300 else "data url", outputs[0])
        assert len(fake.calls) == 1


def test_the_heatmap_redraw_never_returns_pixels_of_a_refused_image(server):
    """After a refused answer the session has no image; after an upload it redraws that upload."""
    demo, url = server["demo"], server["url"]
    refresh, redraw = event_id(demo, fn_name="refresh"), event_id(demo, fn_name="render_attention")
    session = uuid.uuid4().hex[:12]
    answer_raw(server, {"path": str(server["private"] / "photo.png")}, session=session)
    _, messages = queue_call(url, refresh, [None, 0.0, "Smooth"], session=session)
    _, heatmap, _, caption, *_ = completed_output(messages)["output"]["data"]
    assert heatmap is None and "Answer a question first" in caption
    _, messages = queue_call(url, redraw, [None, None, 0.0, "Smooth"], session=session)
    heatmap, _, caption = completed_output(messages)["output"]["data"]
    assert heatmap is None and "Answer a question first" in caption

    uploaded = httpx.post(f"{url}/gradio_api/upload", files={"files": ("ok.png", png(6))}).json()[0]
    answer_raw(server, {"path": uploaded}, session=session)
    queue_call(url, refresh, [None, 0.0, "Smooth"], session=session)
    _, messages = queue_call(url, redraw, [None, "swag-attentive", 0.0, "Smooth"], session=session)
    heatmap, _, _ = completed_output(messages)["output"]["data"]
    drawn = Image.open(io.BytesIO(httpx.get(f"{url}/gradio_api/file={heatmap['path']}").content))
    # Opacity 0: the admitted upload itself, enlarged for display (the route works, for it only).
    expected = Image.open(io.BytesIO(png(6))).convert("RGB").resize(drawn.size, Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(drawn.convert("RGB"), float) - np.asarray(expected, float)).mean() < 2


@pytest.mark.parametrize("index", [10**9, -1, "0", None, [99, 0], True])
def test_a_crafted_gallery_select_changes_nothing_and_errs_nowhere(server, index):
    demo = server["demo"]
    select = event_id(demo, fn_name="on_example_select")
    _, messages = queue_call(server["url"], select, [4], event_data={"index": index, "value": None})
    done = completed_output(messages)
    assert done["success"], done
    image = done["output"]["data"][0]
    assert image is None or image == {"__type__": "update"}


@pytest.mark.parametrize(
    "row_value", [["abc", "zz", 2, 3, "x"], {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, "abcdef"]
)
def test_a_crafted_errors_table_select_is_a_message(server, row_value):
    select = event_id(server["demo"], fn_name="pick_row")
    _, messages = queue_call(
        server["url"], select, [[]], event_data={"index": [10**6, 0], "value": "x", "row_value": row_value}
    )
    done = completed_output(messages)
    assert done["success"], done
    sample, image, details, *_ = done["output"]["data"]
    assert sample is None and image is None and "Pick an example" in details


def test_gradio_client_cannot_name_a_server_file_but_can_upload_one(server):
    client = Client(server["url"], verbose=False, download_files=False)
    fake, photo = server["fake"], str(server["private"] / "photo.png")
    # (A dict with Gradio's meta marker would make the client upload its own copy: legitimate.)
    for image in ({"path": photo}, photo, {"url": photo}, [{"path": photo}]):
        fake.calls.clear()
        status, *_, raw = client.predict(image, "What?", 2, "a", "b", api_name="/answer")
        assert raw["error"]["category"] == "image_not_allowed" and status.startswith("⚠"), status
        assert fake.calls == []
    status, *_ = client.predict(handle_file(photo), "What?", 2, "a", "b", api_name="/answer")
    assert status.startswith("✓") and len(fake.calls) == 1  # the client's own file, uploaded


def test_admission_resolves_before_checking(tmp_path):
    """Unit level: a path that only looks inside an admitted folder is refused after resolving."""
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "a.png").write_bytes(b"x")
    admission = ImageAdmission([examples], max_bytes=100)
    assert admission.admit(str(examples / "a.png")) == str((examples / "a.png").resolve())
    assert admission.admit(f"{examples}/sub/../a.png") == str((examples / "a.png").resolve())
    for path in (f"{examples}/../outside.png", f"{examples}x/a.png", str(tmp_path)):
        with pytest.raises(ValueError, match="not uploaded to this app"):
            admission.admit(path)
    assert admission.admit(b"\x89PNG") == b"\x89PNG"
    assert admission.admit(None) is None and admission.admit({"path": None, "url": None}) is None
