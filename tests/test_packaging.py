"""`.ci/run` upgrades to the newest allowed releases, then runs the README's test command verbatim."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    app_command, test_command = blocks[0].strip(), blocks[1].strip()
    assert "app.py" in app_command
    assert test_command in (ROOT / ".ci" / "run").read_text()
    front_matter = readme.split("---")[1]
    assert "sdk: gradio" in front_matter and "app_file: app.py" in front_matter


def test_ci_upgrades_to_the_newest_allowed_releases_before_testing():
    script = (ROOT / ".ci" / "run").read_text()
    upgrade = script.index('pip install --upgrade --upgrade-strategy eager -e ".[dev]"')
    assert upgrade < script.index('pip install -e ".[dev]" && pytest')


def python_3_10() -> str | None:
    """A working Python 3.10 interpreter (pyenv's shims exist for versions that are not active)."""
    candidates = [
        shutil.which("python3.10"),
        *map(str, Path.home().glob(".pyenv/versions/3.10*/bin/python3.10")),
    ]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def test_python_3_10_is_refused_in_one_sentence():
    python310 = python_3_10()
    if python310 is None:
        pytest.skip("no Python 3.10 on this machine")
    result = subprocess.run([python310, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("vqa-demo needs Python 3.11 or newer") and "not 3.10" in result.stderr
