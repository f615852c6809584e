"""What one routing decision used, as logged with its first attempt.

Off-policy evaluation needs, for every logged decision, the probability with which the
router made it (:mod:`adaptive_router.propensity`). That probability costs tens of µs to
compute, more than routing a request, so the router logs the evidence instead — this
record — and propensities are computed later, in vectorised batches. The record is
stored as compact JSON in ``outcomes.decision``; the hot path only keeps references to
arrays it computed anyway, and the text is produced when the row is written.

No heavy imports (json only): every store and the Outcome type depend on it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["LoggedDecision"]

#: Format version written in every record (``"v"``); readers refuse unknown versions.
VERSION = 1


@functools.lru_cache(maxsize=256)
def _names_json(paths: tuple[str, ...]) -> str:
    return json.dumps(list(paths), separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _prefix(paths: tuple[str, ...]) -> str:
    return f'{{"v":{VERSION},"paths":{_names_json(paths)},"successes":'


@functools.lru_cache(maxsize=256)
def _suffix(prior: tuple[float, float], explore: float) -> str:
    return f',"prior":[{prior[0]!r},{prior[1]!r}],"explore":{explore!r},"first":'


def _floats(values: Any) -> list[float]:
    return values.tolist() if hasattr(values, "tolist") else [float(v) for v in values]


class LoggedDecision:
    """The evidence a Thompson Sampling decision was made on.

    ``paths``: the learned paths in the router's order (the final fallback is not ranked).
    ``successes``/``failures``: the decayed evidence per path the policy sampled from
    (after context mixing); the Beta parameters are ``prior`` plus these (:attr:`alpha`,
    :attr:`beta`). ``explore``: the exploration floor ε. ``skipped``: per path, True when
    it would not have been attempted had it come first (breaker not available at ranking
    time, skipped at attempt time before the first attempt, or refused by the request's
    cost budget). ``objective``: ``(cost_weight, usd_per_second)`` when the order was by
    expected cost or time to a success, with the per-attempt ``costs_usd`` and
    ``latencies_ms`` it used; None when the order was by success. ``first``: the path
    attempted first.
    """

    __slots__ = (
        "costs_usd",
        "explore",
        "failures",
        "first",
        "latencies_ms",
        "objective",
        "paths",
        "prior",
        "skipped",
        "successes",
    )

    def __init__(
        self,
        paths: tuple[str, ...],
        successes: Sequence[float] | Any,
        failures: Sequence[float] | Any,
        prior: tuple[float, float],
        explore: float,
        skipped: tuple[bool, ...] | None = None,
        objective: tuple[float, float] | None = None,
        costs_usd: Sequence[float] | Any | None = None,
        latencies_ms: Sequence[float] | Any | None = None,
        first: str | None = None,
    ) -> None:
        # No validation here: this runs once per request on the hot path, with values the
        # router computed itself. from_json validates what comes back from a database.
        self.paths = paths
        self.successes = successes
        self.failures = failures
        self.prior = prior
        self.explore = explore
        self.skipped = skipped
        self.objective = objective
        self.costs_usd = costs_usd
        self.latencies_ms = latencies_ms
        self.first = first

    @property
    def k(self) -> int:
        """Number of learned paths."""
        return len(self.paths)

    @property
    def alpha(self) -> tuple[float, ...]:
        """Beta α per path: the prior plus the decayed successes."""
        a0 = self.prior[0]
        return tuple(a0 + s for s in _floats(self.successes))

    @property
    def beta(self) -> tuple[float, ...]:
        """Beta β per path: the prior plus the decayed failures."""
        b0 = self.prior[1]
        return tuple(b0 + f for f in _floats(self.failures))

    @property
    def skipped_flags(self) -> tuple[bool, ...]:
        """``skipped`` with None read as nothing skipped."""
        return self.skipped if self.skipped is not None else (False,) * self.k

    def index(self, path: str) -> int | None:
        """Position of ``path`` among the learned paths (None: not one of them)."""
        try:
            return self.paths.index(path)
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types."""
        out: dict[str, Any] = {
            "v": VERSION,
            "paths": list(self.paths),
            "successes": _floats(self.successes),
            "failures": _floats(self.failures),
            "prior": list(self.prior),
            "explore": self.explore,
            "first": self.first,
        }
        if self.skipped is not None and any(self.skipped):
            out["skipped"] = [i for i, s in enumerate(self.skipped) if s]
        if self.objective is not None:
            out["objective"] = list(self.objective)
            out["costs_usd"] = None if self.costs_usd is None else _floats(self.costs_usd)
            out["latencies_ms"] = None if self.latencies_ms is None else _floats(self.latencies_ms)
        return out

    def to_json(self) -> str:
        """Compact JSON for ``outcomes.decision`` (what ``json.dumps(to_dict())`` gives).

        Formatted by hand: the writer thread serialises one per routed request, and
        ``json.dumps`` of the dict costs ~3x as much, taken from routing under the GIL.
        Floats are finite here (decayed sums, a probability, costs), so ``repr`` is JSON.
        """
        if self.objective is not None or (self.skipped is not None and any(self.skipped)):
            return json.dumps(self.to_dict(), separators=(",", ":"))
        # A list of finite floats prints as a JSON array ("[1.0, 2.5]"), in C.
        first = "null" if self.first is None else _names_json((self.first,))[1:-1]
        return (
            f"{_prefix(self.paths)}{_floats(self.successes)!r},"
            f'"failures":{_floats(self.failures)!r}{_suffix(self.prior, self.explore)}{first}}}'
        )

    @classmethod
    def from_json(cls, text: str) -> LoggedDecision:
        """Parse :meth:`to_json`'s output; ValueError naming the field when malformed."""
        try:
            d = json.loads(text)
        except (TypeError, ValueError):
            raise ValueError("decision: not a JSON object (outcomes.decision)") from None
        if not isinstance(d, dict) or d.get("v") != VERSION:
            raise ValueError(
                f"decision: unknown format version {d.get('v') if isinstance(d, dict) else d!r}"
                f" (this version reads {VERSION}); upgrade adaptive-router"
            )
        try:
            paths = tuple(str(p) for p in d["paths"])
            k = len(paths)
            s = [float(x) for x in d["successes"]]
            f = [float(x) for x in d["failures"]]
            prior = (float(d["prior"][0]), float(d["prior"][1]))
            explore = float(d["explore"])
            skipped_idx = [int(i) for i in d.get("skipped", [])]
            objective = d.get("objective")
            costs = d.get("costs_usd")
            lats = d.get("latencies_ms")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"decision: missing or malformed field ({exc})") from None
        if len(s) != k or len(f) != k or any(not 0 <= i < k for i in skipped_idx):
            raise ValueError(f"decision: successes, failures and skipped must match {k} paths")
        flags = tuple(i in skipped_idx for i in range(k)) if skipped_idx else None
        first = d.get("first")
        return cls(
            paths,
            s,
            f,
            prior,
            explore,
            skipped=flags,
            objective=None if objective is None else (float(objective[0]), float(objective[1])),
            costs_usd=None if costs is None else [float(x) for x in costs],
            latencies_ms=None if lats is None else [float(x) for x in lats],
            first=None if first is None else str(first),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoggedDecision) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable (first, skipped are set later)

    def __repr__(self) -> str:
        return f"LoggedDecision({self.to_json()})"
