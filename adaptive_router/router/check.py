"""``Router.check``: every path on sample inputs, without routing or recording.

Each sample's attempt is walked by the request core (:class:`Attempts`) with ``run``'s
own loop (:func:`walk`), so timeouts, retries and judging are the ones ``run`` applies,
decided in one place. Breakers and rate limits are left out of the core's settings, and
its outcomes go nowhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptive_router._checks import short
from adaptive_router.observe.observers import Observers
from adaptive_router.outcomes import Result
from adaptive_router.paths import Path
from adaptive_router.router.attempts import AttemptContext, Attempts, walk

__all__ = ["SAMPLE_ARGS", "SAMPLE_KWARGS", "PathCheck", "as_call", "check_paths"]

#: The request id a check's attempts (and its judge's log lines) carry.
CHECK_ID = "check"


def check_paths(
    paths: Iterable[Path], core: AttemptContext, samples: Iterable[Any]
) -> list[PathCheck]:
    """Run each path on each sample (see :meth:`Router.check`) through the request core of
    ``core`` (the router's): timeouts, retries and the judge apply; breakers and rate
    limits are bypassed, nothing is metered, observed or recorded."""
    calls = [as_call(x) for x in samples]
    if not calls:
        raise ValueError("samples is empty; give at least one input to check the paths on")
    bypass = dataclasses.replace(
        core,
        settings={
            name: dataclasses.replace(st, breaker=None, rate_limit=None)
            for name, st in core.settings.items()
        },
        observers=Observers(()),
        capture=False,
        rebill=None,
    )
    report: list[PathCheck] = []
    for path in paths:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        examples: dict[str, str] = {}
        ok = 0
        for args, kwargs in calls:
            req = Attempts(bypass, CHECK_ID, "", [path], args, kwargs)
            raw = walk(req, args, kwargs)  # what it returned last (for a rejection's message)
            value = raw.value if isinstance(raw, Result) else raw
            (outcome,) = req.attempts
            latencies.append(outcome.latency_ms or 0.0)
            kind = outcome.kind
            if kind is None:
                ok += 1
                continue
            errors[kind] = errors.get(kind, 0) + 1
            why = outcome.error
            if why is None:
                why = f"{core.judge.name} rejected the result {value!r:.80}"
            examples.setdefault(kind, short(why, 200))
        p50, p95 = (float(x) for x in np.percentile(latencies, [50, 95]))
        report.append(
            PathCheck(
                path=path.name or "",
                runs=len(calls),
                successes=ok,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                errors=errors,
                examples=examples,
            )
        )
    return report


@dataclass(frozen=True, slots=True)
class PathCheck:
    """One path's results from :meth:`Router.check`."""

    path: str
    runs: int
    successes: int
    latency_p50_ms: float
    latency_p95_ms: float
    errors: dict[str, int]
    examples: dict[str, str] = field(default_factory=dict)
    """The first failure's message for each kind in ``errors`` (its first line, cut)."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else math.nan


#: Keys of a sample that spells out positional and keyword arguments (JSON has no tuples).
#: No Python parameter can be called ``$args``, so they never clash with keyword names.
SAMPLE_ARGS, SAMPLE_KWARGS = "$args", "$kwargs"


def as_call(sample: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for one :meth:`Router.check` sample (see there); ValueError when a
    ``$args``/``$kwargs`` sample is malformed."""
    if isinstance(sample, dict):
        if SAMPLE_ARGS not in sample and SAMPLE_KWARGS not in sample:
            return (), dict(sample)
        extra = sorted(str(k) for k in sample if k not in (SAMPLE_ARGS, SAMPLE_KWARGS))
        if extra:
            raise ValueError(
                f"a sample with {SAMPLE_ARGS!r}/{SAMPLE_KWARGS!r} takes no other keys; move "
                f"{', '.join(extra)} into {SAMPLE_KWARGS!r}"
            )
        args = sample.get(SAMPLE_ARGS, [])
        kwargs = sample.get(SAMPLE_KWARGS, {})
        if not isinstance(args, (list, tuple)):
            raise ValueError(
                f"{SAMPLE_ARGS!r} must be a list of positional arguments, got {args!r}"
            )
        if not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
            raise ValueError(
                f"{SAMPLE_KWARGS!r} must be a mapping of keyword arguments, got {kwargs!r}"
            )
        return tuple(args), dict(kwargs)
    if isinstance(sample, tuple):
        return sample, {}
    return (sample,), {}
