"""No path of the machine that trained the default ships in ``assets/`` (run configs, adapter configs, summaries)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from training.ship_default import portable, scrub_build_paths

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUILD_PATH = re.compile(r"^(/(tmp|home|root|work|mnt|var|Users)/|[A-Za-z]:\\)")


def strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_shipped_json_names_no_build_machine_path():
    found = {
        str(path.relative_to(ASSETS)): text
        for path in ASSETS.rglob("*.json")
        for text in strings(json.loads(path.read_text()))
        if BUILD_PATH.match(text)
    }
    assert found == {}


def test_scrub_rewrites_prefixes_and_leaves_tokens_alone(tmp_path):
    (tmp_path / "run_config.json").write_text(
        json.dumps({"metrics": {"split": "/tmp/r2/data/validation"}, "vocab": ["/", "~", "/tmp/r2x"]})
    )
    changed = scrub_build_paths(tmp_path, {"/tmp/r2/data": "data", "/tmp/r2": "runs"})
    assert changed == [tmp_path / "run_config.json"]
    data = json.loads((tmp_path / "run_config.json").read_text())
    assert data == {"metrics": {"split": "data/validation"}, "vocab": ["/", "~", "/tmp/r2x"]}
    assert portable("/tmp/r2", {"/tmp/r2/": "assets/base"}) == "assets/base"
