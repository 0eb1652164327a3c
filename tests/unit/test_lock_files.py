"""The lock files pin, with hashes, exactly what pyproject.toml asks for.

A dependency added to pyproject.toml without `make lock` would be missing from the
locks, and `make venv` / the image would then fail (or, worse, run without it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{path.name}: {match.group(1)} has no hash"
            pins[_norm(match.group(1))] = match.group(2)
    return pins


def _wanted(extras: tuple[str, ...]) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    wanted = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        assert match, f"pyproject.toml pins every dependency exactly: {requirement!r}"
        wanted[_norm(match.group(1))] = match.group(2)
    return wanted


def test_runtime_lock_pins_every_runtime_dependency_with_its_version() -> None:
    locked = _locked(ROOT / "requirements/runtime.lock")
    for name, version in _wanted(()).items():
        assert locked.get(name) == version, f"{name}=={version} not in requirements/runtime.lock: run `make lock`"


def test_test_lock_pins_runtime_and_test_dependencies_and_agrees_with_runtime_lock() -> None:
    runtime = _locked(ROOT / "requirements/runtime.lock")
    test = _locked(ROOT / "requirements/test.lock")
    for name, version in _wanted(("test",)).items():
        assert test.get(name) == version, f"{name}=={version} not in requirements/test.lock: run `make lock`"
    for name, version in runtime.items():
        assert test.get(name) == version, f"{name}: the two locks disagree; run `make lock`"


def test_the_build_backend_is_locked_too() -> None:
    # `pip install --no-build-isolation` builds the project with the locked setuptools.
    assert "setuptools" in _locked(ROOT / "requirements/runtime.lock")
