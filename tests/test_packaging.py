"""`.ci/run` upgrades to the newest allowed releases, then runs the README's test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

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
