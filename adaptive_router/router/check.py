"""``Router.check``: every path on sample inputs, without routing or recording."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptive_router._checks import error_text, short
from adaptive_router.outcomes import Result
from adaptive_router.paths import Path
from adaptive_router.resilience import classify
from adaptive_router.router.attempts import call_path
from adaptive_router.router.judging import Judge
from adaptive_router.router.settings import PathSettings

__all__ = ["SAMPLE_ARGS", "SAMPLE_KWARGS", "PathCheck", "as_call", "check_paths"]


def check_paths(
    paths: Iterable[Path],
    settings: Mapping[str, PathSettings],
    judge: Judge,
    samples: Iterable[Any],
) -> list[PathCheck]:
    """Run each path on each sample (see :meth:`Router.check`): timeouts, retries and the
    judge apply; breakers and rate limits are bypassed and nothing is recorded."""
    calls = [as_call(x) for x in samples]
    if not calls:
        raise ValueError("samples is empty; give at least one input to check the paths on")
    report: list[PathCheck] = []
    for path in paths:
        st = settings[path.name or ""]
        timeout = None if path.enforces_timeout else st.timeout
        latencies: list[float] = []
        errors: dict[str, int] = {}
        examples: dict[str, str] = {}
        ok = 0
        for args, kwargs in calls:
            started = time.perf_counter()
            try:
                raw = (
                    st.retry.call(call_path, path, timeout, args, kwargs)
                    if st.retry is not None
                    else call_path(path, timeout, args, kwargs)
                )
            except Exception as exc:
                kind: str | None = classify(exc).value
                why: str | None = error_text(exc)
            else:
                value = raw.value if isinstance(raw, Result) else raw
                kind, why, _ = judge("check", path, value)
                if kind is not None and why is None:
                    why = f"{judge.name} rejected the result {value!r:.80}"
            latencies.append((time.perf_counter() - started) * 1000.0)
            if kind is None:
                ok += 1
            else:
                errors[kind] = errors.get(kind, 0) + 1
                examples.setdefault(kind, short(why or kind, 200))
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
