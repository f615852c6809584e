"""The notebooks are committed clean; CI executes them with ``pytest --nbmake notebooks/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"posteriors.ipynb", "simulation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_saved_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"  # the kernel nbmake starts
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            # Outputs would go stale against the code and bloat diffs; CI regenerates them.
            assert cell["outputs"] == [], f"{path.name}: clear outputs before committing"
            assert cell["execution_count"] is None
