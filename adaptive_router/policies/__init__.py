"""Decision math without I/O, one module per mechanism.

- :mod:`~adaptive_router.policies.thompson`: Thompson Sampling over per-path Beta
  posteriors, the decayed evidence it learns from (``fold``) and the ``Policy`` interface.
- :mod:`~adaptive_router.policies.objectives`: cost and latency objectives over the
  drawn success probabilities of each position.
- :mod:`~adaptive_router.policies.propensity`: the exact probability of each first choice
  of the Beta policies (what off-policy evaluation weighs by).
- :mod:`~adaptive_router.policies.contextual`: contextual Thompson Sampling, a Bayesian
  linear model of success on the request's hashed features per path;
  :mod:`~adaptive_router.policies.gaussian` gives its exact first-choice probabilities.
- :mod:`~adaptive_router.policies.pacing`: a spend target kept by a price per dollar.

The public names below are imported on first use (PEP 562), so that importing one policy
does not load the others: the contextual policy needs scipy's linear algebra, the
router's default policy does not.
"""

from typing import TYPE_CHECKING

from adaptive_router._imports import lazy_names

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import (
        ContextualDecision,
        ContextualThompsonSampling,
        LinearModel,
        LinearStats,
        with_bias,
    )
    from adaptive_router.policies.gaussian import first_choice_probabilities
    from adaptive_router.policies.objectives import Objective, ObjectiveThompsonSampling
    from adaptive_router.policies.pacing import (
        SpendPacer,
        SpendStats,
        SpendStatus,
        check_target_usd_per_request,
        paced_costs,
    )
    from adaptive_router.policies.thompson import Policy, ThompsonSampling

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "adaptive_router.policies.contextual": (
            "ContextualDecision",
            "ContextualThompsonSampling",
            "LinearModel",
            "LinearStats",
            "with_bias",
        ),
        "adaptive_router.policies.gaussian": ("first_choice_probabilities",),
        "adaptive_router.policies.objectives": ("Objective", "ObjectiveThompsonSampling"),
        "adaptive_router.policies.pacing": (
            "SpendPacer",
            "SpendStats",
            "SpendStatus",
            "check_target_usd_per_request",
            "paced_costs",
        ),
        "adaptive_router.policies.thompson": ("Policy", "ThompsonSampling"),
    },
)

__all__ = [
    "ContextualDecision",
    "ContextualThompsonSampling",
    "LinearModel",
    "LinearStats",
    "Objective",
    "ObjectiveThompsonSampling",
    "Policy",
    "SpendPacer",
    "SpendStats",
    "SpendStatus",
    "ThompsonSampling",
    "check_target_usd_per_request",
    "first_choice_probabilities",
    "paced_costs",
    "with_bias",
]
