"""A checkpoint's chat template is rendered under a time budget at load (issue 21.8): a nested-loop
``chat_template.jinja`` is refused with a sentence within seconds on every chat-template family."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.hostile_files import write_tiny_base
from vqa_demo.config import BackboneConfig
from vqa_demo.evaluate import cli as evaluate_cli
from vqa_demo.model.backbone import load_backbone
from vqa_demo.model.base_checks import UnsafeBaseError
from vqa_demo.model.families.chat import ChatDecoderFamily
from vqa_demo.model.families.registry import FAMILIES
from vqa_demo.model.template_guard import TEMPLATE_SECONDS, render_within

CHAT_FAMILIES = [name for name, f in FAMILIES.items() if isinstance(f, ChatDecoderFamily)]
NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}x"
HOSTILE_TEMPLATES = {
    "nested-loops": (NESTED, "did not finish rendering within"),
    "nested-three-deep": (
        "{% for a in range(99999) %}{% for b in range(99999) %}{% for c in range(99999) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        "did not finish rendering within",
    ),
    "recursive-macro": (
        "{% macro f(n) %}{% for i in range(50) %}{{ f(n + 1) }}{% endfor %}{% endmacro %}{{ f(0) }}",
        "chat_template.jinja",
    ),
    "raises": ("{{ raise_exception('no') }}", "could not be rendered"),
}


@pytest.fixture(scope="module")
def saved_bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-bases")
    return {family: write_tiny_base(root / family, f"tiny:{family}") / "base" for family in CHAT_FAMILIES}


def with_template(base, folder, template: str):
    shutil.copytree(base, folder)
    (folder / "chat_template.jinja").write_text(template)
    return folder


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_a_nested_loop_template_is_refused_within_seconds(saved_bases, tmp_path, family):
    base = with_template(saved_bases[family], tmp_path / "base", NESTED)
    started = time.monotonic()
    with pytest.raises(UnsafeBaseError, match="did not finish rendering within 2 s"):
        load_backbone(BackboneConfig(source=str(base)))
    assert time.monotonic() - started < 30  # the load itself plus the 2 s budget, on a loaded 2-core box


@pytest.mark.parametrize("name", list(HOSTILE_TEMPLATES))
def test_hostile_templates_are_refused_with_a_sentence(saved_bases, tmp_path, name):
    template, message = HOSTILE_TEMPLATES[name]
    base = with_template(saved_bases["llava"], tmp_path / "base", template)
    with pytest.raises(UnsafeBaseError, match=message):
        load_backbone(BackboneConfig(source=str(base)))


def test_the_shipped_templates_still_load(saved_bases):
    for family, base in saved_bases.items():
        assert load_backbone(BackboneConfig(source=str(base))).family.name == family


def test_the_budget_stops_a_python_loop_where_it_is():
    def forever() -> str:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(UnsafeBaseError, match="within 0.3 s"):
        render_within(forever, seconds=0.3)
    assert 0.3 <= time.monotonic() - started < 0.3 + 2
    assert render_within(lambda: "fine") == "fine" and TEMPLATE_SECONDS == 2.0


def test_the_evaluate_cli_refuses_the_template_in_one_line(tmp_path, capsys):
    write_tiny_base(tmp_path, "tiny:llava", variant="multi_class-last_token")
    (tmp_path / "base" / "chat_template.jinja").write_text(NESTED)
    data = tmp_path / "data"
    from tests.test_evaluation import make_split

    data.mkdir()
    make_split(data, n=2)
    started = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        evaluate_cli(
            ["--checkpoints", str(tmp_path / "checkpoints"), "--base", str(tmp_path / "base")]
            + ["--data", str(data), "--out", str(tmp_path / "out")]
        )
    err = capsys.readouterr().err
    assert caught.value.code == 2 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: the chat template of")
    assert time.monotonic() - started < 120
