"""The UI tabs do not import each other: what two tabs share lives in a shared ui module.

A module of one tab (in ``vqa_demo/ui/tabs``) may import its own tab's modules and any shared module
of ``vqa_demo/ui``, never another tab's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vqa_demo

PACKAGE = Path(vqa_demo.__file__).resolve().parent
TABS = {
    "ask": {"ask", "ask_arguments", "ask_freshness", "variant_ticks", "option_buttons", "explain"},
    "compare": {"compare", "compare_backbones", "compare_selection"},
    "errors": {
        "errors",
        "error_browser",
        "error_live",
        "error_explain",
        "error_data",
        "error_links",
        "error_whatif",
        "error_pair",
    },  # fmt: skip
}
TAB_PACKAGE = "vqa_demo.ui.tabs"


def imported_modules(path: Path) -> set[str]:
    """Every ``vqa_demo...`` module ``path`` imports, dotted (``from x import y``: x and x.y)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vqa_demo"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("vqa_demo"))
    return names


def test_every_tab_module_is_listed():
    on_disk = {p.stem for p in (PACKAGE / "ui" / "tabs").glob("*.py")} - {"__init__"}
    assert on_disk == set().union(*TABS.values()), "update TABS"


def test_no_tab_module_imports_another_tab():
    crossings = []
    for tab, modules in TABS.items():
        others = {f"{TAB_PACKAGE}.{m}" for t, ms in TABS.items() if t != tab for m in ms}
        for module in modules:
            path = PACKAGE / "ui" / "tabs" / f"{module}.py"
            crossings += [f"{module} imports {name}" for name in imported_modules(path) & others]
    assert crossings == []


def test_the_check_sees_a_crossing(tmp_path):
    path = tmp_path / "errors.py"
    path.write_text("from vqa_demo.ui.tabs.ask import status_error\nfrom vqa_demo.ui.tabs import explain\n")
    assert {"vqa_demo.ui.tabs.ask", "vqa_demo.ui.tabs.explain"} <= imported_modules(path)
