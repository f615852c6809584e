"""What routing will cost, before launch: expected spend per 1,000 requests from each
path's price, success rate and token counts, for a given fallback order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from adaptive_router.metering.prices import Pricer

__all__ = ["CostEstimate", "PathEstimate", "PathSpec", "estimate_cost_per_1000"]


class PathSpec(NamedTuple):
    """A path as the estimate sees it.

    ``price`` is a model name priced by ``genai-prices`` (through :class:`Pricer`, so
    ``prices`` overrides apply) or ``(input_usd_per_million, output_usd_per_million)``;
    ``(0, 0)`` for a free local path such as a regex.
    """

    name: str
    price: str | tuple[float, float]
    success_rate: float
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class PathEstimate:
    """One path's expected share of the traffic and cost."""

    path: str
    cost_per_call: float
    reach_probability: float
    """Probability that a request gets as far as this path (every earlier one failed)."""
    success_rate: float

    @property
    def attempts_per_1000(self) -> float:
        return 1000.0 * self.reach_probability

    @property
    def cost_per_1000(self) -> float:
        return 1000.0 * self.reach_probability * self.cost_per_call

    @property
    def successes_per_1000(self) -> float:
        return 1000.0 * self.reach_probability * self.success_rate


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Expected cost of trying the paths in ``order`` until one succeeds."""

    order: tuple[str, ...]
    paths: tuple[PathEstimate, ...]

    @property
    def cost_per_request(self) -> float:
        return math.fsum(p.reach_probability * p.cost_per_call for p in self.paths)

    @property
    def cost_per_1000_requests(self) -> float:
        return 1000.0 * self.cost_per_request

    @property
    def attempts_per_request(self) -> float:
        return math.fsum(p.reach_probability for p in self.paths)

    @property
    def success_rate(self) -> float:
        """Probability that some path succeeds (1 minus the chance all of them fail)."""
        return 1.0 - math.prod(1.0 - p.success_rate for p in self.paths)


def _spec(item: PathSpec | Sequence[Any]) -> PathSpec:
    if isinstance(item, PathSpec):
        spec = item
    else:
        try:
            spec = PathSpec(*item)
        except TypeError:
            raise ValueError(
                "each path must be (name, model or (input_per_mtok, output_per_mtok), "
                f"success_rate, input_tokens, output_tokens), got {item!r}"
            ) from None
    rate = spec.success_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"path {spec.name!r}: success_rate must be in [0, 1], got {rate!r}")
    for label, n in (("input_tokens", spec.input_tokens), ("output_tokens", spec.output_tokens)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"path {spec.name!r}: {label} must be an int >= 0, got {n!r}")
    return spec


def _call_cost(spec: PathSpec, pricer: Pricer) -> float:
    price = spec.price
    if isinstance(price, str):
        cost = pricer.cost(price, spec.input_tokens, spec.output_tokens)
        if cost is None:
            raise ValueError(
                f"path {spec.name!r}: no price known for model {price!r}; pass its price as "
                "(input_usd_per_million, output_usd_per_million) or in prices={...}"
            )
        return cost
    # A pair is priced exactly as a Pricer override would price it.
    pair = Pricer({spec.name: price}).overrides[spec.name]
    return (spec.input_tokens * pair[0] + spec.output_tokens * pair[1]) / 1_000_000


def estimate_cost_per_1000(
    paths: Sequence[PathSpec | Sequence[Any]],
    order: Sequence[str] | str | None = None,
    *,
    fallback: PathSpec | Sequence[Any] | None = None,
    prices: Mapping[str, tuple[float, float]] | Pricer | None = None,
) -> CostEstimate:
    """Expected cost per 1,000 requests before launch, fallback attempts included.

    Each request tries the paths in ``order`` until one succeeds, so path *i* is called
    with probability ``prod(1 - success_rate_j for j < i)`` and the expected cost of a
    request is the sum of those probabilities times each path's cost per call. A failed
    attempt is assumed to cost as much as a successful one (a rejected answer is billed in
    full); where failures are errors billed at nothing, the estimate is an upper bound.

    ``order``: ``None`` keeps the given order; a list of names sets it (each path once);
    ``"best_first"`` sorts by success rate, highest first, the order Thompson Sampling
    converges to. ``fallback`` is always tried last, as the Router's final path is.
    ``paths`` items are :class:`PathSpec` or plain tuples in its field order.
    """
    specs = [_spec(p) for p in paths]
    if not specs:
        raise ValueError("paths is empty; give at least one path to estimate")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate path names in {names}")
    by_name = {s.name: s for s in specs}
    if order is None:
        ranked = specs
    elif isinstance(order, str):
        if order != "best_first":
            raise ValueError(f"order must be None, 'best_first' or a list of names, got {order!r}")
        ranked = sorted(specs, key=lambda s: -s.success_rate)  # stable: ties keep given order
    else:
        if sorted(order) != sorted(names):
            raise ValueError(f"order {list(order)} must name each of {names} exactly once")
        ranked = [by_name[n] for n in order]
    if fallback is not None:
        fb = _spec(fallback)
        if fb.name in by_name:
            raise ValueError(f"fallback {fb.name!r} is also in paths")
        ranked = [*ranked, fb]
    pricer = prices if isinstance(prices, Pricer) else Pricer(prices)
    reach = 1.0
    out = []
    for spec in ranked:
        out.append(PathEstimate(spec.name, _call_cost(spec, pricer), reach, spec.success_rate))
        reach *= 1.0 - spec.success_rate
    return CostEstimate(order=tuple(s.name for s in ranked), paths=tuple(out))
