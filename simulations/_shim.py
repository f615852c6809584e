"""Make ``simulations.<name>`` the packaged experiment: run it as ``__main__`` or alias it."""

from __future__ import annotations

import importlib
import runpy
import sys

PACKAGE = "adaptive_router.simulation.experiments"


def forward(module_name: str, name: str) -> None:
    """Run ``PACKAGE.<name>`` as the program when ``module_name`` is ``__main__``; otherwise
    put that module in ``sys.modules[module_name]`` so imports get one module, not a copy."""
    target = f"{PACKAGE}.{name}"
    if module_name == "__main__":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.modules[module_name] = importlib.import_module(target)
