"""Imports point one way: data -> model -> evaluation -> explain -> ui, training beside ui.

Every module's imports (module level and inside functions alike) are read from its syntax tree and
checked against :data:`LAYERS`. A module may import its own layer and the layers below it, never one
above; ``ui`` and ``training`` sit side by side and import neither each other. Test support
(``vqa_demo/testing.py``) and the tests, benchmarks and tools sit on top: product code never
imports them. A module no layer names fails the test, so a new top-level module gets placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (layer, rank, module prefixes); a module belongs to the layer of its longest matching prefix.
LAYERS = [
    # settings and plain types every layer reads (no torch): the variants, paths, typed predictions
    (
        "foundation",
        0,
        ("vqa_demo", "vqa_demo.config", "vqa_demo.runtime", "vqa_demo.paths", "vqa_demo.settings"),
    ),
    (
        "foundation",
        0,
        (
            "vqa_demo.hub_errors",
            "vqa_demo.json_files",
            "vqa_demo.libc",
            "vqa_demo.prediction",
            "vqa_demo.run_folders",
        ),
    ),
    ("data", 1, ("vqa_demo.data", "vqa_demo.inputs")),
    # the network and the checks of the files it is built from
    ("model", 2, ("vqa_demo.model", "vqa_demo.checkpoint_checks")),
    # a variant and the predictor assembled from the model's parts and the checkpoint folders
    ("predictor", 3, ("vqa_demo.variant", "vqa_demo.predictor", "vqa_demo.checkpoints")),
    ("predictor", 3, ("vqa_demo.base_ref", "vqa_demo.loading")),
    ("evaluation", 4, ("vqa_demo.evaluation", "vqa_demo.evaluate", "vqa_demo.compare_runs")),
    ("evaluation", 4, ("vqa_demo.cli_errors",)),
    ("explain", 5, ("vqa_demo.explain",)),
    ("ui", 6, ("vqa_demo.ui", "app")),
    ("training", 6, ("training",)),
    ("testing", 7, ("vqa_demo.testing",)),
    ("top", 8, ("tests", "benchmarks", "tools")),
]
SOURCES = ("vqa_demo", "training", "app.py", "tests", "benchmarks", "tools")
PROJECT = ("vqa_demo", "training", "app", "tests", "benchmarks", "tools")
EXACT = {"vqa_demo", "app"}  # the package's __init__ and app.py: not prefixes of the modules below them

# Known upward imports another change removes; each names that change. Empty: none remain.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def layer_of(module: str) -> tuple[str, int] | None:
    """``(layer, rank)`` of a dotted module name by its longest matching prefix, None if unplaced."""
    best = None
    for name, rank, prefixes in LAYERS:
        for prefix in prefixes:
            inside = prefix not in EXACT and module.startswith(prefix + ".")
            if (module == prefix or inside) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, (name, rank))
    return best[1] if best else None


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, module)`` for each project module ``path`` imports (``from a import b``: ``a.b`` if a module)."""
    found = []
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub) else base))
    return [(line, name) for line, name in found if name.split(".")[0] in PROJECT]


def source_files() -> list[Path]:
    files = []
    for source in SOURCES:
        path = ROOT / source
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def upward_imports(files: list[Path] | None = None, root: Path = ROOT) -> list[str]:
    """Every import against the layers, as ``file:line: importer (layer) imports imported (layer)``."""
    problems = []
    for path in source_files() if files is None else files:
        importer = module_name(path, root)
        own = layer_of(importer)
        if own is None:
            problems.append(f"{path.relative_to(root)}:1: {importer} has no layer; add it to LAYERS")
            continue
        for line, imported in imports_of(path, root):
            theirs = layer_of(imported)
            if theirs is None or (importer, imported) in KNOWN_EXCEPTIONS:
                continue
            sideways = own[0] != theirs[0] and own[1] == theirs[1]
            if theirs[1] > own[1] or sideways:
                problems.append(
                    f"{path.relative_to(root)}:{line}: {importer} ({own[0]}) imports {imported} ({theirs[0]})"
                )
    return problems


def test_every_import_points_down():
    problems = upward_imports()
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_known_exceptions_still_exist():
    """An exception whose import is gone is removed from the list, so it cannot hide a new one."""
    present = {(module_name(path), imported) for path in source_files() for _, imported in imports_of(path)}
    assert present >= KNOWN_EXCEPTIONS, f"no longer imported, drop them: {KNOWN_EXCEPTIONS - present}"


def test_an_upward_import_is_caught(tmp_path):
    """The check can fail: upward and sideways imports are reported with file and line; down is fine."""
    probe = tmp_path / "vqa_demo" / "data" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import json\nfrom vqa_demo.config import VARIANTS\n\n\ndef f():\n    from vqa_demo import predictor\n"
    )
    ui = tmp_path / "vqa_demo" / "ui" / "probe.py"
    ui.parent.mkdir(parents=True)
    ui.write_text("import training.train\n")
    unplaced = tmp_path / "vqa_demo" / "probe.py"
    unplaced.write_text("")
    assert upward_imports([probe, ui, unplaced], root=tmp_path) == [
        "vqa_demo/data/probe.py:6: vqa_demo.data.probe (data) imports vqa_demo.predictor (predictor)",
        "vqa_demo/ui/probe.py:1: vqa_demo.ui.probe (ui) imports training.train (training)",
        "vqa_demo/probe.py:1: vqa_demo.probe has no layer; add it to LAYERS",
    ]


def test_layers_of_known_modules():
    assert layer_of("vqa_demo.model.family") == ("model", 2)
    assert layer_of("vqa_demo.testing") == ("testing", 7)
    assert layer_of("vqa_demo.ui.tabs.ask") == ("ui", 6)
    assert layer_of("training.train") == ("training", 6)
    assert layer_of("vqa_demo") == ("foundation", 0)
    assert layer_of("numpy") is None
