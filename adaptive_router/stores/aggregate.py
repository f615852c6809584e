"""Per-path window aggregation shared by the stores."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from adaptive_router.outcomes import ErrorKind, PathWindowStats


@dataclass(slots=True)
class _Acc:
    attempts: int = 0
    successes: int = 0
    timeouts: int = 0
    first_attempts: int = 0
    first_successes: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float = 0.0
    cost_known: bool = False
    score_sum: float = 0.0
    scored: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


Row = tuple[
    str,
    int,
    bool,
    "str | None",
    "float | None",
    "int | None",
    "int | None",
    "float | None",
    "float | None",
]


def aggregate(rows: Iterable[Row]) -> list[PathWindowStats]:
    """Rows of (path, attempt, success, kind, latency_ms, in_tok, out_tok, cost, score)."""
    accs: dict[str, _Acc] = {}
    for path, attempt, success, kind, latency, in_tok, out_tok, cost, score in rows:
        acc = accs.get(path)
        if acc is None:
            acc = accs[path] = _Acc()
        acc.attempts += 1
        if success:
            acc.successes += 1
        elif kind is not None:
            acc.errors[kind] = acc.errors.get(kind, 0) + 1
            if kind == ErrorKind.TIMEOUT.value:
                acc.timeouts += 1
        if attempt == 1:
            acc.first_attempts += 1
            if success:
                acc.first_successes += 1
        if latency is not None:
            acc.latencies.append(float(latency))
        # Unknown stays unknown: None until an attempt of the window reports its tokens.
        if in_tok is not None:
            acc.input_tokens = (acc.input_tokens or 0) + int(in_tok)
        if out_tok is not None:
            acc.output_tokens = (acc.output_tokens or 0) + int(out_tok)
        if cost is not None:
            acc.cost += float(cost)
            acc.cost_known = True
        if score is not None:
            acc.score_sum += float(score)
            acc.scored += 1
    out = []
    for path in sorted(accs):
        acc = accs[path]
        p50 = p95 = None
        if acc.latencies:
            p50, p95 = (float(x) for x in np.percentile(acc.latencies, [50, 95]))
        out.append(
            PathWindowStats(
                path=path,
                attempts=acc.attempts,
                successes=acc.successes,
                timeouts=acc.timeouts,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                input_tokens=acc.input_tokens,
                output_tokens=acc.output_tokens,
                cost_usd=acc.cost if acc.cost_known else None,
                first_attempts=acc.first_attempts,
                errors=acc.errors,
                mean_score=acc.score_sum / acc.scored if acc.scored else None,
                first_successes=acc.first_successes,
            )
        )
    return out
