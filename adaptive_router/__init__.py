"""adaptive-router: outcome-based adaptive routing for LLM and tool calls.

Importing the package is cheap: the vocabulary (errors, outcomes) is imported here, the
rest (``Router`` and numpy with it, the stores, the policies) on first use.
"""

from typing import TYPE_CHECKING

from adaptive_router._imports import lazy_names
from adaptive_router.errors import (
    AllPathsFailed,
    ConfigurationError,
    OutcomesRejected,
    StoreUnavailableError,
    UnknownRequestError,
)
from adaptive_router.outcomes import (
    Decision,
    ErrorKind,
    Outcome,
    PathWindowStats,
    PositionPosterior,
    Posterior,
    Result,
    Usage,
)
from adaptive_router.version import __version__

if TYPE_CHECKING:
    from adaptive_router.feedback.reporter import Reporter
    from adaptive_router.ope.evaluation import evaluate
    from adaptive_router.paths import Path
    from adaptive_router.policies.objectives import Objective, ObjectiveThompsonSampling
    from adaptive_router.policies.thompson import Policy, ThompsonSampling
    from adaptive_router.router import Router
    from adaptive_router.router.budgets import Budget
    from adaptive_router.router.options import Learning, Observability, Persistence, Resilience
    from adaptive_router.stores import MemoryStore, SQLStore, Store

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "adaptive_router.policies.objectives": ("Objective", "ObjectiveThompsonSampling"),
        "adaptive_router.ope.evaluation": ("evaluate",),
        "adaptive_router.paths": ("Path",),
        "adaptive_router.policies.thompson": ("Policy", "ThompsonSampling"),
        "adaptive_router.feedback.reporter": ("Reporter",),
        "adaptive_router.router": ("Router",),
        "adaptive_router.router.budgets": ("Budget",),
        "adaptive_router.router.options": (
            "Learning",
            "Observability",
            "Persistence",
            "Resilience",
        ),
        "adaptive_router.stores": ("MemoryStore", "SQLStore", "Store"),
    },
)

__all__ = [
    "AllPathsFailed",
    "Budget",
    "ConfigurationError",
    "Decision",
    "ErrorKind",
    "Learning",
    "MemoryStore",
    "Objective",
    "ObjectiveThompsonSampling",
    "Observability",
    "Outcome",
    "OutcomesRejected",
    "Path",
    "PathWindowStats",
    "Persistence",
    "Policy",
    "PositionPosterior",
    "Posterior",
    "Reporter",
    "Resilience",
    "Result",
    "Router",
    "SQLStore",
    "Store",
    "StoreUnavailableError",
    "ThompsonSampling",
    "UnknownRequestError",
    "Usage",
    "__version__",
    "evaluate",
]
