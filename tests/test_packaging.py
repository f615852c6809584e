"""The Python the project claims is the Python its dependencies and tools are set for."""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys
import tomllib

from packaging.specifiers import SpecifierSet
from packaging.version import Version

PYPROJECT = tomllib.loads(
    (pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
)


def _floor(spec: str) -> Version:
    (lower,) = [s for s in SpecifierSet(spec) if s.operator == ">="]
    return Version(lower.version)


def test_claimed_python_floor_is_what_dependencies_need_and_tools_check() -> None:
    floor = _floor(PYPROJECT["project"]["requires-python"])
    # genai-prices carries the price data; a Python it does not support would get an old one.
    needs = importlib.metadata.metadata("genai-prices")["Requires-Python"]
    assert floor >= _floor(needs), f"requires-python {floor} < genai-prices' {needs}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{floor.major}{floor.minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"{floor.major}.{floor.minor}"
    assert sys.version_info[:2] >= (floor.major, floor.minor)
