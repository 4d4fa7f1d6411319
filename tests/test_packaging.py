"""The project's setup files agree with each other and with the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        pins[name.lower()] = version
    return pins


def _conda_pins() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    return {m[0].lower(): m[1] for m in re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)$", text, flags=re.M)}


def test_every_dependency_is_pinned():
    for name, version in _pyproject_pins().items():
        assert version, f"{name} has no exact pin in pyproject.toml"


def test_conda_pins_match_pyproject():
    assert _conda_pins() == _pyproject_pins()


def _readme_commands(name: str) -> list[str]:
    text = (ROOT / name).read_text(encoding="utf-8")
    return re.findall(r"^```(?:bash|sh)\n(.+?)\n```", text, flags=re.M | re.S)


def test_readmes_give_the_same_two_commands():
    english = _readme_commands("README.md")
    chinese = _readme_commands("README.zh-TW.md")
    assert len(english) >= 2
    assert english[:2] == chinese[:2]


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands("README.md")[1].strip()
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci_script.splitlines()
