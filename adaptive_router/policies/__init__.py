"""Decision math without I/O: contextual Thompson Sampling and spend pacing.

:mod:`~adaptive_router.policies.contextual` ranks paths by a Thompson draw of each path's
score under a Bayesian linear model of the request's hashed features;
:mod:`~adaptive_router.policies.gaussian` gives the exact probability of each first choice
(a one-dimensional integral) for off-policy evaluation; :mod:`~adaptive_router.policies.pacing`
keeps average spend per request at a target with a price per dollar. Every state here is a
set of additive, decayed sufficient statistics, so a store can persist them and many
processes can add to them in any order and still equal one replay.

Import-light: the package imports no submodule (the contextual policy needs scipy, which
a Router without features must not load); import from the submodules. The names below
still resolve here, each loading its submodule on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ContextualDecision",
    "ContextualThompsonSampling",
    "LinearModel",
    "LinearStats",
    "SpendPacer",
    "SpendStats",
    "check_target_usd_per_request",
    "first_choice_probabilities",
    "paced_costs",
    "with_bias",
]

_HOME = {
    "ContextualDecision": "contextual",
    "ContextualThompsonSampling": "contextual",
    "LinearModel": "contextual",
    "LinearStats": "contextual",
    "with_bias": "contextual",
    "first_choice_probabilities": "gaussian",
    "SpendPacer": "pacing",
    "SpendStats": "pacing",
    "check_target_usd_per_request": "pacing",
    "paced_costs": "pacing",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
