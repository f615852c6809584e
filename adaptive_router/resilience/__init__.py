"""Resilience components: error classification, retries, timeouts, breakers and rate limits.

Each piece is a small object that works on its own (and is tested alone); the
router composes them per path as breaker -> rate limit -> timeout -> retry -> call.
All of them are thread-safe, none blocks an event loop (waits are ``asleep``, and a
rate limit's async methods reach Redis with its asyncio client), and each takes an
injectable ``clock`` (monotonic seconds) and, where it draws random numbers, a seedable
:class:`random.Random`, so tests are exact.

One module per mechanism: :mod:`~adaptive_router.resilience.classify` (error kinds),
:mod:`~adaptive_router.resilience.retry`, :mod:`~adaptive_router.resilience.timeouts`,
:mod:`~adaptive_router.resilience.breaker`, :mod:`~adaptive_router.resilience.ratelimit` and
:mod:`~adaptive_router.resilience.credentials` (refused or missing credentials).
Everything public is importable from this package as well.
"""

from adaptive_router.resilience.breaker import (
    BreakerListener as BreakerListener,
)
from adaptive_router.resilience.breaker import (
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
)
from adaptive_router.resilience.classify import RETRYABLE, classify, retry_after
from adaptive_router.resilience.credentials import MissingCredentialsError, auth_advice
from adaptive_router.resilience.ratelimit import RateLimit, RateLimitExceeded, redact_url
from adaptive_router.resilience.retry import FullJitter, RetryPolicy, RetryState
from adaptive_router.resilience.timeouts import (
    CallTimeoutError,
    abandoned_calls,
    acall_with_timeout,
    call_with_timeout,
    to_daemon_thread,
)

__all__ = [
    "RETRYABLE",
    "BreakerOpenError",
    "BreakerState",
    "CallTimeoutError",
    "CircuitBreaker",
    "FullJitter",
    "MissingCredentialsError",
    "RateLimit",
    "RateLimitExceeded",
    "RetryPolicy",
    "RetryState",
    "abandoned_calls",
    "acall_with_timeout",
    "auth_advice",
    "call_with_timeout",
    "classify",
    "redact_url",
    "retry_after",
    "to_daemon_thread",
]
