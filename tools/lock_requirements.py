"""Write requirements.txt, the Space's lock: the installed (tested) version of every package the app needs.

The app needs the core dependencies and the ``app`` extra of pyproject.toml; each is pinned with ``==`` to
the version installed here. Run it after the whole suite passed on the newest versions the ranges allow
(which is what ``.ci/run`` installs)::

    python -m tools.lock_requirements            # rewrite requirements.txt
    python -m tools.lock_requirements --check    # exit 1 if requirements.txt differs
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# The Space's lock: exact versions of everything the app imports, the ones the whole test suite last
# passed with. pyproject.toml keeps the ranges; tests/test_dependency_bounds.py checks that each pin lies
# inside them. A Space copies only this file before installing, then imports the package from the
# repository root. Refresh after a green run: python -m tools.lock_requirements
"""


def app_requirements() -> list[Requirement]:
    """The core dependencies and the ``app`` extra, as declared in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["app"]]


def lock_text() -> str:
    return HEADER + "".join(f"{r.name}=={version(r.name)}\n" for r in app_requirements())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare (exit 1 when out of date)")
    args = parser.parse_args(argv)
    target = ROOT / "requirements.txt"
    if args.check:
        same = target.read_text() == lock_text()
        print(
            "requirements.txt is up to date"
            if same
            else "requirements.txt differs from the installed versions"
        )
        return 0 if same else 1
    target.write_text(lock_text())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
