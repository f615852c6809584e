"""Decision math without I/O: contextual Thompson Sampling and spend pacing.

:mod:`~adaptive_router.policies.contextual` ranks paths by a Thompson draw of each path's
score under a Bayesian linear model of the request's hashed features;
:mod:`~adaptive_router.policies.gaussian` gives the exact probability of each first choice
(a one-dimensional integral) for off-policy evaluation; :mod:`~adaptive_router.policies.pacing`
keeps average spend per request at a target with a price per dollar. Every state here is a
set of additive, decayed sufficient statistics, so a store can persist them and many
processes can add to them in any order and still equal one replay.
"""

from __future__ import annotations

from adaptive_router.policies.contextual import (
    ContextualDecision,
    ContextualThompsonSampling,
    LinearModel,
    LinearStats,
    with_bias,
)
from adaptive_router.policies.gaussian import first_choice_probabilities
from adaptive_router.policies.pacing import (
    SpendPacer,
    SpendStats,
    check_target_usd_per_request,
    paced_costs,
)

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
