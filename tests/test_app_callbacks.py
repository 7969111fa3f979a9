"""UI callbacks against a fake predictor: no model, no server; invalid input never reaches the model."""

from __future__ import annotations

import json
import threading
import time
import warnings
from contextlib import contextmanager

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from tests.app_support import FakePredictor, click_events
from vqa_demo.explain.heatmaps import colormap
from vqa_demo.ui import AppConfig, build_demo
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.explain_render import chip_colour
from vqa_demo.ui.holder import ModelUnavailable, PredictorHolder
from vqa_demo.ui.tabs.ask import MAX_OPTIONS, AskCallbacks
from vqa_demo.ui.tabs.explain import ExplainCallbacks

NAMES = ["cond_gen", "multi_class-last_token", "multi_class-attentive", "swag-last_token", "swag-attentive"]


@pytest.fixture
def fake():
    return FakePredictor()


@pytest.fixture
def ask(fake, tmp_path):
    return AskCallbacks(PredictorHolder(predictor=fake), AppConfig(assets=tmp_path))


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "chart.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
    return str(path)


def form(options, ticks=None):
    """The answer() arguments after image and question: count, 8 option boxes, one tick per variant."""
    return answer_inputs(None, None, options, ticks if ticks is not None else [True] * len(NAMES))[2:]


def test_answer_returns_every_variant(ask, fake, image_file):
    status, table, chart, cond_gen, raw, result = ask.answer(
        image_file, "What colour?", *form(["red", "blue", "green", "grey"])
    )
    assert status.startswith("✓")
    assert list(table["variant"]) == NAMES
    assert set(raw) == set(NAMES)
    assert raw["swag-attentive"]["answer"] in ["red", "blue", "green", "grey"]
    assert len(raw["cond_gen"]["probabilities"]) == 4 and "attention" not in raw["swag-attentive"]
    assert "generated" in cond_gen and "cosine" in cond_gen
    assert [trace.name for trace in chart.data] == NAMES
    assert result.options == ["red", "blue", "green", "grey"] and len(fake.calls) == 1


@contextmanager
def no_toast():
    """Routine refusals are status text only: a gr.Warning (a UserWarning here) would pile up on screen."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


@pytest.mark.parametrize(
    "image, question, options, expected",
    [
        (None, "What colour?", ["red", "blue"], "No image"),
        ("IMAGE", "   ", ["red", "blue"], "question is empty"),
        ("IMAGE", "What colour?", ["red", ""], "Option B is empty"),
        ("IMAGE", "What colour?", ["Red", "red "], "Options A and B are the same"),
        ("IMAGE", "What colour?", ["red"], "Give at least 2 answer options"),  # refused, not clamped
    ],
)
def test_invalid_input_becomes_a_message_and_the_model_is_not_called(
    ask, fake, image_file, image, question, options, expected
):
    image = image_file if image == "IMAGE" else image
    with no_toast():
        status, table, chart, _, raw, result = ask.answer(image, question, *form(options))
    assert status.startswith("⚠") and expected in status
    assert "Traceback" not in status and result is None and table.empty and "`" not in status
    assert raw["error"]["message"] in status
    assert fake.calls == []


def test_unreadable_upload_is_a_message(ask, fake, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    with no_toast():
        status, *_ = ask.answer(str(bogus), "What colour?", *form(["red", "blue"]))
    assert status.startswith("⚠") and fake.calls == []


def test_an_upload_that_is_not_an_image_is_cleared_at_once(ask, fake, tmp_path, image_file):
    """No broken picture until Answer: the upload event refuses it and says why; a good one clears that."""
    renamed = tmp_path / "notes.png"
    renamed.write_text("shopping list: eggs, milk\n")
    update, status = ask.check_upload(str(renamed))
    assert update is None and status.startswith("⚠") and "image" in status.lower()
    update, status = ask.check_upload(image_file)
    assert "value" not in update and status == ""
    assert ask.check_upload(None)[1] == "" and fake.calls == []


def test_no_variant_ticked_is_a_message(ask, fake, image_file):
    with no_toast():
        status, *_ = ask.answer(image_file, "Q?", *form(["a", "b"], [False] * len(NAMES)))
    assert "Tick at least one variant" in status and fake.calls == []


def test_option_count_disables_multi_class_with_a_reason(ask):
    count, *updates = ask.change_count(4, +1)
    assert count == 5
    rows, ticks = updates[:MAX_OPTIONS], updates[MAX_OPTIONS:]
    assert [r["visible"] for r in rows] == [True] * 5 + [False] * 3
    disabled = {name: t for name, t in zip(NAMES, ticks) if t["interactive"] is False}
    assert set(disabled) == {"multi_class-last_token", "multi_class-attentive"}
    assert all(
        "trained for exactly 4 options" in t["info"] and t["value"] is False for t in disabled.values()
    )
    count, *updates = ask.change_count(5, -1)
    assert count == 4 and all(t["interactive"] for t in updates[MAX_OPTIONS:])
    assert ask.change_count(2, -1)[0] == 2 and ask.change_count(8, +1)[0] == 8


def test_option_buttons_are_answered_in_the_browser(ask, tmp_path):
    """+ and - send no request (one the server has not answered yet would drop or misorder clicks);
    the page runs change_count's outcomes, which depend on the count alone."""
    demo = build_demo(AppConfig(assets=tmp_path), holder=ask.holder)
    for button in ("add-option", "remove-option"):
        (event,) = click_events(demo, button)
        assert event["backend_fn"] is False and event["trigger_mode"] == "multiple"
        assert json.dumps(ask.change_count(3, +1 if button == "add-option" else -1))[1:-1] in event["js"]
    assert ask.change_count(5, +1) == ask.change_count(5.0, +1) and ask.change_count(None, -1)[0] == 3


def test_api_caller_ticking_an_incompatible_variant_gets_it_skipped(ask, fake, image_file):
    status, table, *_ = ask.answer(image_file, "Q?", *form(["a", "b", "c"]))
    assert status.startswith("✓") and "skipped" in status
    assert fake.calls[0][3] == ["cond_gen", "swag-last_token", "swag-attentive"]
    assert "skipped: multi_class-attentive was trained for exactly 4 options" in " ".join(table["note"])


def test_explain_paints_the_attentive_heatmap_and_tokens_on_one_scale(ask, image_file):
    *_, result = ask.answer(image_file, "What colour?", *form(["red", "blue", "green", "grey"]))
    explain = ExplainCallbacks(ask.holder)
    picker, heatmap, tokens, caption, attr_picker, *cleared = explain.refresh(result, 1.0, "Patch grid")
    assert picker["choices"] == [(n, n) for n in ["multi_class-attentive", "swag-attentive"]]
    assert picker["value"] == "multi_class-attentive" and cleared == [None, "", "", None]
    assert isinstance(heatmap, Image.Image) and heatmap.size == (384, 288)
    # The fake's grid peaks at 0.5 on patch (1, 2) of 4x4; the brightest token weighs 0.3. Separate
    # scales: the patch is the top colour, the 0.3 token the top chip, " What" (0.1) a third of the way;
    # the legend states both peaks. Patches of weight 0 show the picture as it is.
    pixels = np.asarray(heatmap)
    patch = pixels[72:144, 192:288]  # rows 1, columns 2 of a 4x4 grid over 384x288
    assert (patch == colormap(np.array([1.0]))[0]).all()  # crisp: every pixel of the patch alike
    enlarged = Image.open(image_file).convert("RGB").resize((384, 288), Image.Resampling.LANCZOS)
    assert np.array_equal(pixels[:72], np.asarray(enlarged)[:72])
    for weight, chip in ((1.0, "> colour<"), (0.1 / 0.3, ">What<")):
        (r, g, b), _ = chip_colour(weight, signed=False)
        assert f"background:rgb({r},{g},{b});color:#" in tokens and chip in tokens
    assert "<span>0.5</span>" in caption and "<span>0.3</span>" in caption and "50%" in caption
    assert attr_picker["choices"] == [(n, n) for n in NAMES]
    faint, _, _ = explain.render_attention(result, "swag-attentive", 0.0)
    enlarged = Image.open(image_file).convert("RGB").resize((384, 288), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(faint), np.asarray(enlarged))
    smooth, _, _ = explain.render_attention(result, "swag-attentive", 1.0, "Smooth")
    assert len(np.unique(np.asarray(smooth)[72:144, 192:288].reshape(-1, 3), axis=0)) > 1
    none, _, message = explain.render_attention(result, "cond_gen", 0.5)
    assert none is None and "No attentive variant" in message


def test_explain_before_answering_is_a_message(ask):
    explain = ExplainCallbacks(ask.holder)
    with no_toast():
        image, tokens, caption, stored = explain.attribute(None, None, "Integrated gradients", 8, 0.5)
    assert image is None and stored is None and "Answer a question first" in caption


def test_holder_loads_once_lazily_and_reports_failures(fake):
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.05)
        return fake

    holder = PredictorHolder(loader=loader)
    assert calls == [] and not holder.loaded
    threads = [threading.Thread(target=holder.get) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and holder.get() is fake

    def broken():
        raise FileNotFoundError("assets/base has no config.json")

    with pytest.raises(ModelUnavailable, match="could not be loaded: assets/base has no config.json"):
        PredictorHolder(loader=broken).get()


def test_missing_checkpoints_make_a_message_not_a_crash(tmp_path, image_file):
    config = AppConfig(assets=tmp_path)
    holder = PredictorHolder.from_config(config)
    assert holder.infos == [] and "no variant checkpoints" in holder.problem
    with pytest.raises(ModelUnavailable):
        holder.get()
    demo = build_demo(config)  # builds, shows the problem instead of variant boxes
    assert isinstance(demo, gr.Blocks)


def test_build_demo_does_not_load_the_model(app_assets):
    loads = []
    holder = PredictorHolder(loader=lambda: loads.append(1), checkpoints=app_assets.config.checkpoints)
    demo = build_demo(app_assets.config, holder=holder)
    assert loads == [] and holder.names == NAMES
    api = {d.api_name for d in demo.fns.values()}
    assert "answer" in api


def test_config_from_env_and_flags(tmp_path):
    env = {"VQA_ASSETS": str(tmp_path), "VQA_CHECKPOINTS": f"{tmp_path}/a,{tmp_path}/b", "VQA_BASE": "tiny"}
    config = AppConfig.from_env(env)
    assert (
        config.assets == tmp_path
        and config.checkpoints == [tmp_path / "a", tmp_path / "b"]
        and config.base == "tiny"
    )
    assert AppConfig.from_env({"VQA_ASSETS": str(tmp_path)}).checkpoints == [tmp_path / "checkpoints"]
    flags = AppConfig.from_args(["--assets", str(tmp_path / "x"), "--device", "cpu", "--unknown"], environ={})
    assert flags.checkpoints == [tmp_path / "x" / "checkpoints"] and flags.device == "cpu"
    assert AppConfig(assets=tmp_path).delete_cache == (3600, 3600)
    assert AppConfig.from_env({"VQA_UPLOAD_TTL": "0"}).delete_cache is None
    assert AppConfig.from_args(["--upload-ttl", "60"], environ={}).delete_cache == (60, 60)
    launch = AppConfig(assets=tmp_path).launch_kwargs()
    assert launch["max_file_size"] == 10 * 1024 * 1024 and str(tmp_path) not in launch["allowed_paths"]
