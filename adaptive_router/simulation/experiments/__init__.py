"""Reproducible experiments on the offline simulator (:mod:`adaptive_router.simulation`).

Each experiment is a module with ``run(*, quick=False, seed=0, horizon=None, runs=None,
out=None, progress=None) -> Path`` that writes ``<name>.md`` (a table and its reading)
and ``<name>.png`` to ``out`` and returns the markdown path. Without ``out`` the files go
to ``simulations/results/`` under the current directory when that folder exists (a
checkout of the project), else to ``./results/`` (see :func:`._common.default_results_dir`).
``quick=True`` is a CI-sized run of a few seconds, written as ``<name>-quick.*`` so it
never overwrites the committed results. ``progress(stage, done, total)`` feeds a progress
bar. Each also runs alone: ``python -m adaptive_router.simulation.experiments.<name>
[--quick] [--out DIR]`` (from a checkout, results go to ``simulations/results``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMES = ("chapelle_li", "cost_aware", "degradation", "half_life_sweep", "peers")


def _runner(name: str) -> Callable[..., Path]:
    # Import on call: importing every experiment here would make `python -m
    # adaptive_router.simulation.experiments.<name>` load its module twice (runpy warns).
    def run(**kwargs: Any) -> Path:
        module = importlib.import_module(f"{__name__}.{name}")
        result: Path = module.run(**kwargs)
        return result

    run.__name__ = name
    run.__qualname__ = name
    run.__doc__ = f"Run ``{__name__}.{name}``; see its ``run`` for the keyword arguments."
    return run


#: name -> run function, for ``adaptive-router simulate <name>``.
EXPERIMENTS: dict[str, Callable[..., Path]] = {name: _runner(name) for name in NAMES}

__all__ = ["EXPERIMENTS", "NAMES"]
