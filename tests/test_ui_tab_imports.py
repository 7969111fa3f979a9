"""The UI tabs do not import each other: what two tabs share lives in a shared ui module.

Modules are grouped by file name (so the check survives a move into sub-folders); a module of one
tab may import its own tab's modules and any shared module, never another tab's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vqa_demo

PACKAGE = Path(vqa_demo.__file__).resolve().parent
TABS = {
    "ask": {"ask", "ask_arguments", "variant_ticks", "explain_view"},
    "compare": {"compare"},
    "errors": {"errors", "errors_tab", "error_live", "error_explain", "error_data"},
}


def imported_module_names(path: Path) -> set[str]:
    """The last component of every ``vqa_demo...`` module ``path`` imports (``from x import y``: x and x.y)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqa_demo"):
            names.add(node.module.rsplit(".", 1)[-1])
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.rsplit(".", 1)[-1] for a in node.names if a.name.startswith("vqa_demo"))
    return names


def test_no_tab_module_imports_another_tab():
    files = {p.stem: p for p in PACKAGE.rglob("*.py")}
    crossings = []
    for tab, modules in TABS.items():
        others = set().union(*(m for t, m in TABS.items() if t != tab))
        for module in modules:
            assert module in files, f"{module}.py is not in the package: update TABS"
            crossings += [
                f"{module} imports {name}" for name in imported_module_names(files[module]) & others
            ]
    assert crossings == []


def test_the_check_sees_a_crossing(tmp_path):
    path = tmp_path / "errors.py"
    path.write_text("from vqa_demo.ui.ask import status_error\nfrom vqa_demo.ui import explain_view\n")
    assert {"ask", "explain_view"} <= imported_module_names(path)
