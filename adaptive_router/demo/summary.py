"""What the demo reports: progress snapshots for the live table and the run's summary."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from adaptive_router.demo.scenario import (
    DEGRADED,
    SHIFT_THRESHOLD,
    SHIFT_WINDOW,
)
from adaptive_router.outcomes import Posterior

# -- progress and summary --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathProgress:
    """One row of the live table (figures over the trailing window)."""

    name: str
    #: The fake's per-call success rate for this model now (None: fallback, or --live).
    true_rate: float | None
    first_attempt_share: float
    attempts: int
    success_rate: float | None
    retries: int
    breaker: str
    posterior_mean: float


@dataclass(frozen=True, slots=True)
class DemoProgress:
    """A snapshot of the run for the live table: trailing-window figures, posteriors, totals."""

    done: int
    total: int
    drop_at: int
    window: int
    success_rate: float
    paths: tuple[PathProgress, ...]
    attempts: int = 0
    retries: int = 0
    http_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    live: bool = False


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """Requests ``start`` to ``end - 1`` (0-based): who got the first attempt, what succeeded."""

    label: str
    start: int
    end: int
    first_attempts: dict[str, int]
    succeeded: int

    @property
    def requests(self) -> int:
        """Requests in the phase."""
        return self.end - self.start

    def share(self, path: str) -> float:
        """The path's share of the phase's first attempts."""
        return self.first_attempts.get(path, 0) / self.requests if self.requests else math.nan

    @property
    def success_rate(self) -> float:
        """Share of the phase's requests that got a valid order."""
        return self.succeeded / self.requests if self.requests else math.nan


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run did; every number but the timings is reproducible from ``seed``."""

    requests: int
    drop_at: int
    seed: int
    paths: tuple[str, ...]
    half_life_s: float
    succeeded: int
    #: Path attempts (an attempt's retries included in it), over all requests.
    attempts: int
    phases: tuple[PhaseSummary, ...]
    #: Requests after the drop until the degraded path got under ``SHIFT_THRESHOLD`` of the
    #: first attempts over the next ``SHIFT_WINDOW`` requests; None if it never did.
    requests_to_shift: int | None
    posteriors: tuple[Posterior, ...]
    db_path: str | None
    elapsed_s: float
    retries: int = 0
    #: Calls that reached a model provider (every retry is one), per path.
    http_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Attempt outcomes per path and kind ("ok" for successes).
    kinds: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: How often each path's circuit breaker opened.
    breaker_opened: dict[str, int] = dataclasses.field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    live: bool = False

    @property
    def success_rate(self) -> float:
        """Share of all requests that got a valid order (any path, fallback included)."""
        return self.succeeded / self.requests

    @property
    def attempts_per_request(self) -> float:
        """Average number of paths tried per request."""
        return self.attempts / self.requests

    def phase(self, label: str) -> PhaseSummary:
        """The phase with this label (``"healthy"``, ``"adapting"``, ``"settled"``)."""
        for p in self.phases:
            if p.label == label:
                return p
        raise KeyError(label)


def requests_to_shift(firsts_after_drop: list[str], path: str = DEGRADED) -> int | None:
    """First k such that ``path`` had < SHIFT_THRESHOLD of requests k..k+SHIFT_WINDOW-1."""
    hits = np.array([1 if p == path else 0 for p in firsts_after_drop], dtype=np.int64)
    if len(hits) < SHIFT_WINDOW:
        return None
    sums = np.convolve(hits, np.ones(SHIFT_WINDOW, dtype=np.int64), mode="valid")
    below = np.flatnonzero(sums < SHIFT_THRESHOLD * SHIFT_WINDOW)
    return int(below[0]) if below.size else None
