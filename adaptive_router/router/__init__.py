"""The router: the :class:`Router` facade and the collaborators it wires together.

``options`` (the option groups), ``settings`` (per-path resolution), ``ranking``
(evidence and order), ``attempts`` (the request core without I/O), ``judging``
(verdicts), ``check`` (``Router.check``) and ``recorder`` (the evidence cache and
write-behind). Only this module and the facade's
own module import the facade.
"""

from __future__ import annotations

from adaptive_router.feedback.reporter import MAX_METADATA_BYTES
from adaptive_router.router.attempts import new_request_id
from adaptive_router.router.budgets import Budget
from adaptive_router.router.check import SAMPLE_ARGS, SAMPLE_KWARGS, PathCheck, as_call
from adaptive_router.router.options import (
    Learning,
    Observability,
    Persistence,
    Resilience,
    default_breaker,
)
from adaptive_router.router.router import LOG_WINDOW_S, Router
from adaptive_router.router.settings import PathSettings
from adaptive_router.stores.evidence import posteriors_from_states, stored_half_life

__all__ = [
    "LOG_WINDOW_S",
    "MAX_METADATA_BYTES",
    "SAMPLE_ARGS",
    "SAMPLE_KWARGS",
    "Budget",
    "Learning",
    "Observability",
    "PathCheck",
    "PathSettings",
    "Persistence",
    "Resilience",
    "Router",
    "as_call",
    "default_breaker",
    "new_request_id",
    "posteriors_from_states",
    "stored_half_life",
]
