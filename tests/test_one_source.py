"""One source for each fact: the shared pieces behave as their callers relied on, and nothing bypasses them."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.app_support import FakePredictor
from vqa_demo.checkpoints import atomic_directory, load_variants
from vqa_demo.config import MAX_OPTIONS, TINY_SIZE, BackboneConfig
from vqa_demo.data.jsonl import JsonlError, append_jsonl, read_jsonl, write_jsonl
from vqa_demo.model.backbone import build_tiny_backbone, preprocess_images
from vqa_demo.model.families.paligemma.tiny import tiny_processor
from vqa_demo.ui.answer_api import answer_arguments, answer_inputs
from vqa_demo.ui.holder import check_variants

REPO = Path(__file__).resolve().parent.parent


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((REPO / folder).rglob("*.py"))]


def imports_of_tests(source: str) -> list[int]:
    """Line numbers of ``import tests...`` / ``from tests... import`` statements in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "tests" or name.startswith("tests.") for name in names):
            lines.append(node.lineno)
    return lines


def test_the_tests_import_check_finds_what_it_looks_for():
    found = imports_of_tests(
        "import os\nfrom tests.app_support import launch\n\ndef f():\n    import tests\n"
    )
    assert found == [2, 5]
    assert imports_of_tests("from testsuite import x\nimport tests_helper\nfrom . import tests\n") == []


def test_nothing_outside_tests_imports_tests():
    """Product code, training, benchmarks and tools never import the test suite (vqa_demo.testing is public)."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}"
        for path in python_files("vqa_demo", "training", "benchmarks", "tools") + [REPO / "app.py"]
        for line in imports_of_tests(path.read_text())
    ]
    assert offenders == []


def test_every_gradio_image_comes_from_the_factory():
    calls = []
    for path in python_files("vqa_demo"):
        for node in ast.walk(ast.parse(path.read_text())):
            func = node.func if isinstance(node, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "Image"
                and getattr(func.value, "id", "") == "gr"
            ):
                calls.append(str(path.relative_to(REPO)))
    assert calls == ["vqa_demo/ui/image_box.py"] * 3


# -- atomic directory writes ------------------------------------------------------------------------


def test_atomic_directory_replaces_the_whole_directory(tmp_path):
    target = tmp_path / "state"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as staging:
        assert staging.parent == tmp_path and staging != target
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # no staging or .old sibling left


def test_atomic_directory_keeps_the_previous_directory_when_writing_fails(tmp_path):
    target = tmp_path / "state"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_directory(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["old.txt"] and (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_atomic_directory_creates_a_missing_target_and_its_parent(tmp_path):
    target = tmp_path / "runs" / "x" / "best"
    with atomic_directory(target) as staging:
        (staging / "a").write_text("1")
    assert (target / "a").read_text() == "1"


# -- variant naming -------------------------------------------------------------------------------


def test_the_ui_names_variants_as_loading_does(app_assets, tmp_path):
    """Two checkpoints of one variant: the second is known by its folder name, in the UI and when loaded."""
    source = app_assets.root / "checkpoints" / "swag-attentive"
    shutil.copytree(source, tmp_path / "a-first")
    shutil.copytree(source, tmp_path / "b-second")
    infos, skipped = check_variants([tmp_path])
    assert skipped == [] and [i.name for i in infos] == ["swag-attentive", "b-second"]
    from vqa_demo.model.backbone import load_backbone

    backbone = load_backbone(BackboneConfig(source=str(app_assets.root / "base")))
    loaded = load_variants(backbone, [i.directory for i in infos])
    assert [v.name for v in loaded] == [i.name for i in infos]
    assert [v.adapter for v in loaded] == ["swag_attentive", "b_second"]


# -- model sizes, processor, pixels ---------------------------------------------------------------


def test_the_benchmarks_tiny_stand_in_is_the_tiny_model():
    from benchmarks.models import build_backbone

    assert build_backbone("tiny").fingerprint == build_tiny_backbone().fingerprint


def test_tiny_backbones_are_sized_by_tiny_size():
    for generation, kv_heads in ((1, 1), (2, TINY_SIZE.num_kv_heads)):
        text = build_tiny_backbone(generation=generation).core.config.text_config
        assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == (
            TINY_SIZE.hidden_size,
            TINY_SIZE.num_layers,
            kv_heads,
        )


def test_pretraining_defaults_use_the_shared_model_size():
    from training.pretrain import PretrainConfig

    config = PretrainConfig(out=Path("."))
    assert dataclasses.asdict(config.size) == dataclasses.asdict(type(TINY_SIZE)())
    assert config.shrink_for_smoke().size == TINY_SIZE


def test_one_image_preprocessing_matches_the_processor():
    """The shared preprocessing equals the image processor's own output, for every caller."""
    from training.pretrain_data import BatchMaker

    processor = tiny_processor()
    images = [Image.new("RGB", (31, 17), (250, 10, 90)), Image.new("L", (12, 40), 77)]
    reference = processor.image_processor([img.convert("RGB") for img in images], return_tensors="pt")
    expected = reference["pixel_values"]
    assert torch.equal(preprocess_images(processor, images), expected)
    assert torch.equal(BatchMaker(processor).pixel_values(images), expected)
    backbone = build_tiny_backbone()
    assert torch.equal(backbone.pixel_values(images), expected)


# -- JSON Lines -----------------------------------------------------------------------------------


def test_jsonl_round_trip_keeps_order_and_unicode(tmp_path):
    records = [{"question": "Quelle couleur ? \u2028 ligne", "n": 1}, {"options": ["红", "绿"], "x": 0.1}]
    path = write_jsonl(tmp_path / "a.jsonl", records)
    assert read_jsonl(path) == records
    # One object per line even for readers that split on every Unicode line break.
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    append_jsonl(path, {"n": 3})
    assert read_jsonl(path)[-1] == {"n": 3}


def test_jsonl_bad_lines_name_the_line_or_are_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n\n[1, 2]\n{"step": 2}\n{"step": 3, "lo', encoding="utf-8")
    with pytest.raises(JsonlError, match=r"metrics.jsonl: line 3 must be a JSON object"):
        read_jsonl(path)
    assert read_jsonl(path, skip_bad_lines=True) == [{"step": 1}, {"step": 2}]


def test_data_files_report_jsonl_errors_as_data_errors(tmp_path):
    from vqa_demo.data.splits import DataError, load_split

    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 is not valid JSON"):
        load_split(tmp_path)


# -- the /answer endpoint -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def answer_signature(tmp_path_factory):
    from vqa_demo.ui import AppConfig, build_demo

    demo = build_demo(AppConfig(assets=tmp_path_factory.mktemp("no-assets")), predictor=FakePredictor())
    (fn,) = [f for f in demo.fns.values() if f.api_name == "answer"]
    return inspect.signature(fn.fn)


def test_answer_arguments_name_the_endpoints_parameters(answer_signature):
    names = list(answer_signature.parameters)
    ticks = {"swag-attentive": False, "cond_gen": True}
    arguments = answer_arguments("img", "Which?", ["a", "b", "c"], ticks=ticks)
    assert list(arguments) == names[: 3 + MAX_OPTIONS] + ["use_swag_attentive", "use_cond_gen"]
    bound = answer_signature.bind(**arguments)
    bound.apply_defaults()
    assert list(bound.args) == answer_inputs(
        "img", "Which?", ["a", "b", "c"], [True, True, True, True, False]
    )


def test_answer_inputs_drop_options_past_the_form_but_keep_their_count():
    values = answer_inputs(None, "Q?", [str(i) for i in range(MAX_OPTIONS + 1)], [True])
    assert values[2] == MAX_OPTIONS + 1 and values[3 : 3 + MAX_OPTIONS] == [
        str(i) for i in range(MAX_OPTIONS)
    ]
    assert values[3 + MAX_OPTIONS :] == [True]
