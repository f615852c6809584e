"""What a feature router's decision used, as logged with its first attempt (version 4).

A feature router (``Router(features=...)``) ranks by Gaussian scores, one per path, drawn
for the request (:mod:`adaptive_router.policies.contextual`); its decisions are logged as
:class:`GaussianDecision` records in ``outcomes.decision`` beside the Beta ones of
:mod:`adaptive_router.policies.logged_decision`, and :func:`decode` reads either kind.
No heavy imports (json and struct only), like the Beta record's module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeAlias

from adaptive_router.policies.logged_decision import (
    _COSTS,
    _F8X2,
    _HEAD,
    _NO_FIRST,
    _SKIPPED,
    _U16,
    GAUSSIAN_VERSION,
    DecisionRecord,
    EncoderBase,
    LoggedDecision,
    _f8,
    _floats,
    _names_bytes,
    _read_frame,
)

__all__ = ["AnyDecision", "GaussianDecision", "GaussianDecisionEncoder", "decode"]


class GaussianDecisionEncoder(EncoderBase):
    """Encodes a feature router's decisions (:class:`GaussianDecision`'s layout):
    :meth:`encode` takes each path's score mean and standard deviation, first, skipped,
    the spend target's per-attempt costs (None without one) and λ, in
    :class:`~adaptive_router.policies.logged_decision.DecisionEncoder`'s argument order."""

    __slots__ = ()

    def encode(
        self,
        means: Any,
        sds: Any,
        first: int,
        skipped: tuple[bool, ...] | None,
        costs_usd: Any,
        price: float,
    ) -> bytes:
        """The record of a decision whose first attempt went to ``paths[first]``."""
        flags = 0 if skipped is None or not any(skipped) else _SKIPPED
        if costs_usd is not None:
            flags |= _COSTS
        head = self._heads.get(flags)
        if head is None:
            head = self._heads[flags] = _HEAD.pack(
                GAUSSIAN_VERSION, flags, len(self.paths)
            ) + _names_bytes(self.paths)
        parts = [head, _F8X2.pack(self.explore, float(price)), _f8(means), _f8(sds)]
        if costs_usd is not None:
            parts.append(_f8(costs_usd))
        if flags & _SKIPPED:
            parts.append(bytes(skipped or ()))
        parts.append(self._firsts[first])
        return b"".join(parts)


class GaussianDecision(DecisionRecord):
    """The evidence a feature router's (contextual Thompson Sampling) decision was made on.

    ``paths``: the learned paths in the router's order. ``means``/``sds``: each path's
    score distribution for the request, ``N(xᵀμ_k, v · xᵀΣ_k x)`` (the standard deviation
    with the policy's variance scale v applied), from which the policy drew the scores.
    ``costs_usd``/``price``: under a spend target, the per-attempt costs c_k it charged
    and λ, the order being by score − λ·c_k (None and 0.0 without one). ``explore``: the
    exploration floor ε. ``skipped`` and ``first`` as in
    :class:`~adaptive_router.policies.logged_decision.LoggedDecision`.

    Binary layout (little-endian): u8 version (4), u8 flags (1 skipped, 4 costs), u16 k,
    each path name as u16 length + UTF-8; float64s: explore, price, means[k], sds[k],
    [costs_usd[k]]; [k bytes of skipped flags]; u16 index of the first path (0xFFFF:
    none). Its propensities are
    :func:`adaptive_router.policies.gaussian.first_choice_probabilities` of these fields.
    """

    __slots__ = ("costs_usd", "means", "price", "sds")

    def __init__(
        self,
        paths: tuple[str, ...],
        means: Sequence[float] | Any,
        sds: Sequence[float] | Any,
        explore: float,
        skipped: tuple[bool, ...] | None = None,
        costs_usd: Sequence[float] | Any | None = None,
        price: float = 0.0,
        first: str | None = None,
    ) -> None:
        self.paths = paths
        self.means = means
        self.sds = sds
        self.explore = explore
        self.skipped = skipped
        self.costs_usd = costs_usd
        self.price = price
        self.first = first

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types."""
        out: dict[str, Any] = {
            "v": GAUSSIAN_VERSION,
            "paths": list(self.paths),
            "means": _floats(self.means),
            "sds": _floats(self.sds),
            "explore": self.explore,
            "price": self.price,
            "costs_usd": None if self.costs_usd is None else _floats(self.costs_usd),
            "first": self.first,
        }
        if self.skipped is not None and any(self.skipped):
            out["skipped"] = [i for i, s in enumerate(self.skipped) if s]
        return out

    def to_json(self) -> str:
        """The record as compact JSON (for people and exports)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_bytes(self) -> bytes:
        """The binary record stored in ``outcomes.decision`` (see the class docstring)."""
        if self.first is None:
            first = _NO_FIRST
        else:
            i = self.index(self.first)
            if i is None:
                raise ValueError(f"decision: first {self.first!r} is not one of {self.paths}")
            first = i
        skipped = self.skipped if self.skipped is not None and any(self.skipped) else None
        flags = (_SKIPPED if skipped is not None else 0) | (
            _COSTS if self.costs_usd is not None else 0
        )
        parts = [
            _HEAD.pack(GAUSSIAN_VERSION, flags, self.k),
            _names_bytes(self.paths),
            _F8X2.pack(float(self.explore), float(self.price)),
            _f8(self.means),
            _f8(self.sds),
        ]
        if self.costs_usd is not None:
            parts.append(_f8(self.costs_usd))
        if skipped is not None:
            parts.append(bytes(skipped))
        parts.append(_U16.pack(first))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> GaussianDecision:
        """Parse :meth:`to_bytes`'s output; ValueError naming the problem when malformed."""
        data = bytes(data)
        if len(data) < _HEAD.size or data[0] != GAUSSIAN_VERSION:
            raise ValueError(
                f"decision: not a contextual record (version {data[:1]!r}, expected "
                f"{GAUSSIAN_VERSION})"
            )
        flags, names, vals, skipped, first = _read_frame(
            data, lambda flags, k: 2 + k * (2 + bool(flags & _COSTS))
        )
        k, costs = len(names), bool(flags & _COSTS)
        return cls(
            tuple(names),
            list(vals[2 : 2 + k]),
            list(vals[2 + k : 2 + 2 * k]),
            vals[0],
            skipped=skipped,
            costs_usd=list(vals[2 + 2 * k : 2 + 3 * k]) if costs else None,
            price=vals[1],
            first=None if first == _NO_FIRST else names[first],
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GaussianDecision:
        """Parse :meth:`to_dict`'s output; ValueError naming the field when malformed."""
        try:
            paths = tuple(str(p) for p in d["paths"])
            k = len(paths)
            means = [float(x) for x in d["means"]]
            sds = [float(x) for x in d["sds"]]
            explore = float(d["explore"])
            price = float(d.get("price", 0.0))
            costs = d.get("costs_usd")
            costs = None if costs is None else [float(x) for x in costs]
            skipped_idx = [int(i) for i in d.get("skipped", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"decision: missing or malformed field ({exc})") from None
        if (
            len(means) != k
            or len(sds) != k
            or (costs is not None and len(costs) != k)
            or any(not 0 <= i < k for i in skipped_idx)
        ):
            raise ValueError(f"decision: means, sds, costs and skipped must match {k} paths")
        first = d.get("first")
        return cls(
            paths,
            means,
            sds,
            explore,
            skipped=tuple(i in skipped_idx for i in range(k)) if skipped_idx else None,
            costs_usd=costs,
            price=price,
            first=None if first is None else str(first),
        )

    def __repr__(self) -> str:
        return f"GaussianDecision({self.to_json()})"


#: A logged decision of either kind.
AnyDecision: TypeAlias = LoggedDecision | GaussianDecision


def decode(data: bytes | str) -> AnyDecision:
    """Any record ``outcomes.decision`` holds: Beta (JSON, versions 2 and 3) as
    :class:`LoggedDecision`, contextual (version 4, or its JSON) as
    :class:`GaussianDecision`; ValueError naming the problem when malformed."""
    if isinstance(data, str):
        try:
            d = json.loads(data)
        except (TypeError, ValueError):
            raise ValueError("decision: not a JSON object (outcomes.decision)") from None
        if isinstance(d, dict) and d.get("v") == GAUSSIAN_VERSION:
            return GaussianDecision.from_dict(d)
        return LoggedDecision.from_json(data)
    data = bytes(data)
    if data[:1] == bytes((GAUSSIAN_VERSION,)):
        return GaussianDecision.from_bytes(data)
    if data[:1] == b"{":
        return decode(data.decode())
    return LoggedDecision.from_bytes(data)
