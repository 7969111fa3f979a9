"""The Space's requirements.txt covers what the package and the app need; .ci/run runs the README command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def names(requirements):
    return {re.split(r"[<>=\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements if r.strip()}


def test_requirements_cover_core_and_app_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = names(project["dependencies"]) | names(project["optional-dependencies"]["app"])
    lines = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert needed <= names(lines)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    app_command, test_command = blocks[0].strip(), blocks[1].strip()
    assert "app.py" in app_command
    assert test_command in (ROOT / ".ci" / "run").read_text()
    front_matter = readme.split("---")[1]
    assert "sdk: gradio" in front_matter and "app_file: app.py" in front_matter
