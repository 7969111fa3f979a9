"""The declared dependency bounds are the tested ones: the installed versions satisfy them, and the
Space's requirements.txt declares the same bounds as pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# bitsandbytes (the gpu extra) does not install on the CPU test machine.
TESTED_EXTRAS = ("train", "app", "dev")


def declared() -> list[Requirement]:
    lines = PROJECT["dependencies"] + [
        r for extra in TESTED_EXTRAS for r in PROJECT["optional-dependencies"][extra]
    ]
    return [Requirement(line) for line in lines if not line.startswith("vqa-demo")]


def test_installed_versions_satisfy_every_declared_bound():
    outside = []
    for requirement in declared():
        assert requirement.specifier, f"{requirement.name} has no version bound"
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            outside.append(f"{requirement.name} is not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement.name} {installed} is outside {requirement.specifier}")
    assert not outside, outside


def test_requirements_txt_has_the_same_bounds_as_pyproject():
    project = {r.name.lower(): r.specifier for r in declared()}
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    for requirement in map(Requirement, lines):
        assert project[requirement.name.lower()] == requirement.specifier, requirement.name
