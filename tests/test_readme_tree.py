"""The README's "How it works" tree names every module of the package and the training scripts."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_tree() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How it works", 1)[1]
    return section.split("```", 2)[1]


def listed_names(tree: str) -> set[str]:
    """Every ``name.py`` or ``pattern*.py`` written in the tree."""
    return set(re.findall(r"[\w*]+\.py", tree))


def test_every_module_is_in_the_tree():
    names = listed_names(readme_tree())
    missing = []
    for root in ("vqa_demo", "training"):
        for path in sorted((ROOT / root).rglob("*.py")):
            if path.name == "__init__.py" and path.parent.name != "inputs":
                continue
            if not any(fnmatch.fnmatch(path.name, name) for name in names):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"README 'How it works' does not list: {missing}"


def test_every_folder_is_in_the_tree():
    tree = readme_tree()
    folders = {p.parent.name for p in (ROOT / "vqa_demo").rglob("*.py")} - {"vqa_demo"}
    assert sorted(f for f in folders if f"{f}/" not in tree) == []


def test_the_check_sees_a_missing_module():
    assert not any(fnmatch.fnmatch("new_module.py", n) for n in listed_names("  a.py  b*.py\n"))
