"""adaptive-router: outcome-based adaptive routing for LLM and tool calls."""

from adaptive_router.errors import (
    AllPathsFailed,
    ConfigurationError,
    StoreUnavailableError,
    UnknownRequestError,
)
from adaptive_router.objectives import Objective, ObjectiveThompsonSampling
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
from adaptive_router.paths import Path
from adaptive_router.policy import Policy, ThompsonSampling
from adaptive_router.reporting import Reporter
from adaptive_router.router import Router
from adaptive_router.stores import MemoryStore, SQLStore, Store
from adaptive_router.version import __version__

__all__ = [
    "AllPathsFailed",
    "ConfigurationError",
    "Decision",
    "ErrorKind",
    "MemoryStore",
    "Objective",
    "ObjectiveThompsonSampling",
    "Outcome",
    "Path",
    "PathWindowStats",
    "Policy",
    "PositionPosterior",
    "Posterior",
    "Reporter",
    "Result",
    "Router",
    "SQLStore",
    "Store",
    "StoreUnavailableError",
    "ThompsonSampling",
    "UnknownRequestError",
    "Usage",
    "__version__",
]
