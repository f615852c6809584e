"""Checkout shortcuts for the experiments, which live in the package:
:mod:`adaptive_router.simulation.experiments` (so that an installed wheel has them).

``python -m simulations.<name>`` runs ``adaptive_router.simulation.experiments.<name>``
and ``import simulations.<name>`` gives that module; results still go to
``simulations/results/`` when run from the checkout's root.
"""

from __future__ import annotations

from adaptive_router.simulation.experiments import EXPERIMENTS, NAMES

__all__ = ["EXPERIMENTS", "NAMES"]
