"""Every third-party package our code imports is declared where that code is installed from.

The code is split by what installs it: the core package (pyproject ``dependencies``), the app and its
explanations (``app`` extra), training (``train`` extra) and tests/benchmarks/tools (``dev``, which pulls
in everything). Imports are read from the source (function-level ones included), so a lazy import that
a user reaches only through one CLI flag is checked too. The Space installs only requirements.txt, so
everything the core and the app import must be pinned there as well.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions as scan_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OURS = {"vqa_demo", "training", "benchmarks", "tests", "tools", "app"}
# Imported only where present, each behind its own guard: not a dependency of any extra we test.
OPTIONAL = {"bitsandbytes": "the gpu extra (CUDA only)", "spaces": "preinstalled on Hugging Face Spaces"}


@cache
def packages_distributions() -> dict[str, list[str]]:
    """``{import name: [distribution names]}`` for this environment (a scan of every installed package)."""
    return scan_distributions()


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*groups: str) -> set[str]:
    """Distribution names declared by the core dependencies plus the named extras."""
    lines = list(PROJECT["dependencies"])
    for group in groups:
        lines += PROJECT["optional-dependencies"][group]
    return {normalise(Requirement(line).name) for line in lines if not line.startswith("vqa-demo")}


def area_of(path: Path) -> str:
    """Which install brings this file's code: core, app, train or dev."""
    parts = path.relative_to(ROOT).parts
    if parts[0] in ("tests", "benchmarks", "tools"):
        return "dev"
    if parts[0] == "training":
        return "train"
    if parts[0] == "app.py" or parts[:2] in (("vqa_demo", "ui"), ("vqa_demo", "explain")):
        return "app"
    return "core"


AREA_GROUPS = {"core": (), "app": ("app",), "train": ("train",), "dev": ("dev", "train", "app")}


@cache
def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file (stdlib and our own packages excluded)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in OURS and n != "__future__"}


def source_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for folder in ("vqa_demo", "training", "benchmarks", "tests", "tools"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def undeclared_imports(files, distributions_of, groups_of) -> list[str]:
    """``file: module (distribution)`` for each import its area does not declare."""
    missing = []
    for path in files:
        allowed = groups_of(path)
        for module in sorted(imported_modules(path)):
            if module in OPTIONAL:
                continue
            dists = {normalise(d) for d in distributions_of.get(module, [])}
            if not dists & allowed:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                missing.append(f"{where}: {module} ({', '.join(sorted(dists)) or 'not installed'})")
    return missing


def test_every_import_is_declared_by_the_install_that_brings_its_code():
    distributions = packages_distributions()
    missing = undeclared_imports(
        source_files(), distributions, lambda path: declared(*AREA_GROUPS[area_of(path)])
    )
    assert not missing, "declare these in pyproject.toml:\n" + "\n".join(missing)


def test_everything_the_core_and_app_import_is_pinned_for_the_space():
    pinned = {
        normalise(Requirement(line).name)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    app_files = [path for path in source_files() if area_of(path) in ("core", "app")]
    missing = undeclared_imports(app_files, packages_distributions(), lambda path: pinned)
    assert not missing, "pin these in requirements.txt:\n" + "\n".join(missing)


def test_an_undeclared_import_is_caught(tmp_path):
    forged = tmp_path / "forged.py"
    forged.write_text("import numpy\n\ndef f():\n    from gradio import Blocks\n")
    assert imported_modules(forged) == {"numpy", "gradio"}
    distributions = {"numpy": ["numpy"], "gradio": ["gradio"]}
    as_core = undeclared_imports([forged], distributions, lambda path: declared(*AREA_GROUPS["core"]))
    assert as_core == [f"{forged}: gradio (gradio)"]
    as_app = undeclared_imports([forged], distributions, lambda path: declared(*AREA_GROUPS["app"]))
    assert as_app == []
