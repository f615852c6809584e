"""Reproducible experiments on the offline simulator (:mod:`adaptive_router.simulation`).

Each experiment is a module with ``run(*, quick=False, seed=0, horizon=None, runs=None,
out=None, progress=None) -> Path`` that writes ``<name>.md`` (a table and its reading)
and ``<name>.png`` to ``simulations/results/`` (or ``out``) and returns the markdown
path; ``quick=True`` is a CI-sized run of a few seconds, written as ``<name>-quick.*`` so
it never overwrites the committed results. ``progress(stage, done, total)`` feeds a
progress bar. Each also runs alone: ``python -m simulations.<name> [--quick]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMES = ("chapelle_li", "cost_aware", "degradation", "half_life_sweep", "peers")


def _runner(name: str) -> Callable[..., Path]:
    # Import on call: importing every experiment here would make `python -m
    # simulations.<name>` load its module twice (runpy warns about exactly that).
    def run(**kwargs: Any) -> Path:
        module = importlib.import_module(f"simulations.{name}")
        result: Path = module.run(**kwargs)
        return result

    run.__name__ = name
    run.__qualname__ = name
    run.__doc__ = f"Run ``simulations.{name}``; see its ``run`` for the keyword arguments."
    return run


#: name -> run function, for ``adaptive-router simulate <name>``.
EXPERIMENTS: dict[str, Callable[..., Path]] = {name: _runner(name) for name in NAMES}

__all__ = ["EXPERIMENTS", "NAMES"]
