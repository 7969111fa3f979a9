"""The declared dependency bounds are the tested ones, and requirements.txt is the Space's lock.

- the installed versions satisfy every bound of pyproject.toml;
- requirements.txt pins exactly (``==``) every core and ``app`` dependency, each pin inside its range;
- the Space's ``python_version`` satisfies ``requires-python``, and the binaries we ship are LFS-tracked.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tools.lock_requirements import app_requirements

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# bitsandbytes (the gpu extra) does not install on the CPU test machine.
TESTED_EXTRAS = ("train", "app", "dev")
# Binary files the Hub refuses without LFS/Xet tracking.
BINARY_SUFFIXES = (".safetensors", ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bin", ".gguf", ".parquet")


def declared() -> list[Requirement]:
    lines = PROJECT["dependencies"] + [
        r for extra in TESTED_EXTRAS for r in PROJECT["optional-dependencies"][extra]
    ]
    return [Requirement(line) for line in lines if not line.startswith("vqa-demo")]


def pins() -> dict[str, str]:
    """``{normalised name: pinned version}`` from requirements.txt; every line must be an exact pin."""
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line}"
        pinned[normalise(requirement.name)] = specs[0].version
    return pinned


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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


def test_requirements_txt_pins_every_app_dependency_inside_its_range():
    pinned = pins()
    needed = {normalise(r.name): r.specifier for r in app_requirements()}
    assert set(pinned) == set(needed), "requirements.txt must pin exactly the core and app dependencies"
    outside = [f"{n}=={v} not in {needed[n]}" for n, v in pinned.items() if not needed[n].contains(v)]
    assert not outside, outside


def test_a_pin_outside_its_range_is_caught():
    # the check above on a forged lock: one version below the range, one inside
    assert not SpecifierSet(">=5.24,<6").contains("5.23.0")
    assert SpecifierSet(">=5.24,<6").contains("5.25.0")


def front_matter() -> dict[str, str]:
    block = (ROOT / "README.md").read_text().split("---")[1]
    return dict(line.split(":", 1) for line in block.strip().splitlines())


def test_the_space_python_version_satisfies_requires_python():
    python_version = front_matter()["python_version"].strip().strip('"')
    assert SpecifierSet(PROJECT["requires-python"]).contains(python_version + ".0")
    # Spaces default to 3.10, which transformers >= 5.21 (and so this project) cannot use
    assert not SpecifierSet(PROJECT["requires-python"]).contains("3.10.13")


def lfs_patterns() -> list[str]:
    lines = (ROOT / ".gitattributes").read_text().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line and not line.startswith("#")]


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.stdout.splitlines()


def test_every_shipped_binary_is_tracked_for_the_hub():
    patterns = lfs_patterns()
    binaries = [path for path in tracked_files() if path.lower().endswith(BINARY_SUFFIXES)]
    assert binaries, "the shipped default has weights and images"
    untracked = [p for p in binaries if not any(fnmatch.fnmatch(Path(p).name, pat) for pat in patterns)]
    assert not untracked, f"add LFS patterns to .gitattributes for: {untracked[:5]}"
