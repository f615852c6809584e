"""What one routing decision used, as logged with its first attempt.

Off-policy evaluation needs, for every logged decision, the probability with which the
router made it (:mod:`adaptive_router.policies.propensity`). That probability costs tens of µs to
compute, more than routing a request, so the router logs the evidence instead — this
record — and propensities are computed later, in vectorised batches. The record is
stored in ``outcomes.decision`` in a compact fixed layout of float64s (:meth:`to_bytes`),
encoded on the request's thread once its first attempt is known, into a plain ``bytes``
on the outcome: the writer binds it as is, and the garbage collector never tracks it (a
Python object per buffered row doubled what the collector promotes and scans at high
request rates). :meth:`to_json` gives the same record as JSON, for people and exports.

No heavy imports (json and struct only): every store and the Outcome type depend on it.
"""

from __future__ import annotations

import abc
import functools
import json
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias

__all__ = [
    "DecisionDraft",
    "DecisionEncoder",
    "DecisionRecord",
    "Encoder",
    "LoggedDecision",
    "PricedDecisionEncoder",
]

#: Format version written in every JSON record (``"v"``); readers refuse unknown versions.
VERSION = 1
#: First byte of a binary record (:meth:`LoggedDecision.to_bytes`). A JSON record starts
#: with ``{``, so one column can hold both (rows that development builds wrote as JSON
#: stay readable).
BINARY_VERSION = 2
#: First byte of a Beta record under a spend target (ranking by θ − λ·c): version 2's
#: fields plus λ, the costs always present. A new version rather than a new flag, so that
#: a reader that predates it refuses such a row instead of misreading it.
PRICED_VERSION = 3
#: First byte of a contextual (Gaussian score) record
#: (:class:`~adaptive_router.policies.contextual_decision.GaussianDecision`).
GAUSSIAN_VERSION = 4
# Flag bits of a binary record's second byte.
_SKIPPED, _OBJECTIVE, _COSTS, _LATENCIES = 1, 2, 4, 8
_NO_FIRST = 0xFFFF
_LITTLE = sys.byteorder == "little"
_U16 = struct.Struct("<H")
_HEAD = struct.Struct("<BBH")
_F8 = struct.Struct("<d")
_F8X2 = struct.Struct("<dd")


def _names_bytes(paths: tuple[str, ...]) -> bytes:
    parts = []
    for name in paths:
        raw = name.encode()
        parts += [_U16.pack(len(raw)), raw]
    return b"".join(parts)


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


@functools.lru_cache(maxsize=256)
def _binary_head(
    paths: tuple[str, ...],
    flags: int,
    prior: tuple[float, float],
    explore: float,
    objective: tuple[float, float] | None,
    version: int = BINARY_VERSION,
) -> bytes:
    """A binary record's start, the same for every decision of one router: version,
    flags, k, each name (u16 length + UTF-8), then prior, explore [, objective]."""
    parts = [_HEAD.pack(version, flags, len(paths)), _names_bytes(paths)]
    head = [float(prior[0]), float(prior[1]), float(explore)]
    if objective is not None:
        head += [float(objective[0]), float(objective[1])]
    parts.append(struct.pack(f"<{len(head)}d", *head))
    return b"".join(parts)


def _f8(values: Any) -> bytes:
    """Little-endian float64s of ``values``: a float64 array's own bytes (no trip through
    Python floats: ~0.1 µs), else packed."""
    dt = getattr(values, "dtype", None)
    if dt is not None and _LITTLE and dt.char == "d" and dt.isnative:
        return values.tobytes()  # type: ignore[no-any-return]
    floats = _floats(values)
    return struct.pack(f"<{len(floats)}d", *floats)


class EncoderBase:
    """What every record encoder keeps for one router: its paths, ε, each path's position
    (the first, should a name repeat), the record heads built so far (one per flag set)
    and each first choice's packed index."""

    __slots__ = ("_firsts", "_heads", "explore", "index", "paths")

    def __init__(self, paths: tuple[str, ...], explore: float) -> None:
        self.paths = paths
        self.explore = explore
        #: Position of each path name (the first, should a name repeat, as ``index``).
        self.index: dict[str, int] = {}
        for i, name in enumerate(paths):
            self.index.setdefault(name, i)
        self._heads: dict[int, bytes] = {}
        self._firsts = [_U16.pack(i) for i in range(len(paths))]


class DecisionEncoder(EncoderBase):
    """Encodes the decisions of one router (fixed paths, prior, ε and objective) straight
    into :meth:`LoggedDecision.to_bytes`'s layout, without building a LoggedDecision: the
    request's thread pays ~0.5 µs a decision. The bytes are exactly ``to_bytes()``'s."""

    __slots__ = ("objective", "prior")

    def __init__(
        self,
        paths: tuple[str, ...],
        prior: tuple[float, float],
        explore: float,
        objective: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(paths, explore)
        self.prior = prior
        self.objective = objective

    def encode(
        self,
        successes: Any,
        failures: Any,
        first: int,
        skipped: tuple[bool, ...] | None = None,
        costs_usd: Any = None,
        latencies_ms: Any = None,
    ) -> bytes:
        """The record of a decision whose first attempt went to ``paths[first]``;
        ``skipped`` None (or all False) when nothing was skipped."""
        flags = 0 if skipped is None or not any(skipped) else _SKIPPED
        obj = self.objective
        if obj is not None:
            flags |= _OBJECTIVE
            if costs_usd is not None:
                flags |= _COSTS
            if latencies_ms is not None:
                flags |= _LATENCIES
        head = self._heads.get(flags)
        if head is None:
            head = self._heads[flags] = _binary_head(
                self.paths, flags, self.prior, self.explore, obj
            )
        if not flags:  # the common case, in one join
            return b"".join((head, _f8(successes), _f8(failures), self._firsts[first]))
        parts = [head, _f8(successes), _f8(failures)]
        if flags & _COSTS:
            parts.append(_f8(costs_usd))
        if flags & _LATENCIES:
            parts.append(_f8(latencies_ms))
        if flags & _SKIPPED:
            parts.append(bytes(skipped or ()))
        parts.append(self._firsts[first])
        return b"".join(parts)


class PricedDecisionEncoder(EncoderBase):
    """Encodes the decisions of a router with a spend target (Beta posteriors ranked by
    θ − λ·c) into :meth:`LoggedDecision.to_bytes`'s version-3 layout: :meth:`encode`
    takes the decision's successes, failures, first, skipped, the per-attempt costs the
    ranking charged and λ, in :class:`DecisionEncoder`'s argument order."""

    __slots__ = ("prior",)

    def __init__(self, paths: tuple[str, ...], prior: tuple[float, float], explore: float) -> None:
        super().__init__(paths, explore)
        self.prior = prior

    def encode(
        self,
        successes: Any,
        failures: Any,
        first: int,
        skipped: tuple[bool, ...] | None,
        costs_usd: Any,
        price: float,
    ) -> bytes:
        """The record of a decision whose first attempt went to ``paths[first]``."""
        flags = 0 if skipped is None or not any(skipped) else _SKIPPED
        head = self._heads.get(flags)
        if head is None:
            head = self._heads[flags] = _binary_head(
                self.paths, flags, self.prior, self.explore, None, PRICED_VERSION
            )
        parts = [head, _F8.pack(float(price)), _f8(successes), _f8(failures), _f8(costs_usd)]
        if flags:
            parts.append(bytes(skipped or ()))
        parts.append(self._firsts[first])
        return b"".join(parts)


class Encoder(Protocol):
    """What :func:`adaptive_router.router.decisions.attach` needs of an encoder."""

    paths: tuple[str, ...]
    index: dict[str, int]

    def encode(self, a: Any, b: Any, first: int, skipped: Any, c: Any, d: Any, /) -> bytes: ...


#: What the ranking keeps of a decision until its first attempt is known (a plain tuple,
#: ~0.1 µs to build): the router's encoder and four per-decision fields in the encoder's
#: :meth:`~DecisionEncoder.encode` order — successes, failures, per-attempt costs and
#: latencies (None unless the objective used them) for :class:`DecisionEncoder`;
#: successes, failures, costs and λ for :class:`PricedDecisionEncoder`; score means,
#: standard deviations, costs and λ for
#: :class:`~adaptive_router.policies.contextual_decision.GaussianDecisionEncoder` — and the paths
#: skipped at ranking time (None: none).
DecisionDraft: TypeAlias = tuple[Encoder, Any, Any, Any, Any, "tuple[bool, ...] | None"]


class DecisionRecord(abc.ABC):
    """What every logged decision record holds about its paths and their lookup: the
    learned paths in the router's order, which were skipped, the exploration floor and
    the path attempted first (:class:`LoggedDecision` and
    :class:`~adaptive_router.policies.contextual_decision.GaussianDecision` add the
    evidence of their kind). Equal when their :meth:`to_dict` are."""

    __slots__ = ("explore", "first", "paths", "skipped")

    paths: tuple[str, ...]
    skipped: tuple[bool, ...] | None
    explore: float
    first: str | None

    @property
    def k(self) -> int:
        """Number of learned paths."""
        return len(self.paths)

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

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DecisionRecord)
            and type(other) is type(self)
            and self.to_dict() == other.to_dict()
        )

    __hash__ = None  # type: ignore[assignment]  # mutable (first, skipped are set later)


class LoggedDecision(DecisionRecord):
    """The evidence a Thompson Sampling decision was made on.

    ``paths``: the learned paths in the router's order (the final fallback is not ranked).
    ``successes``/``failures``: the decayed evidence per path the policy sampled from
    (after context mixing); the Beta parameters are ``prior`` plus these (:attr:`alpha`,
    :attr:`beta`). ``explore``: the exploration floor ε. ``skipped``: per path, True when
    it would not have been attempted had it come first (breaker not available at ranking
    time, skipped at attempt time before the first attempt, or refused by the request's
    cost budget). ``objective``: ``(cost_weight, usd_per_second)`` when the order was by
    expected cost or time to a success, with the per-attempt ``costs_usd`` and
    ``latencies_ms`` it used; None when the order was by success. ``price``: under a
    spend target, λ, the order being by θ − λ·c with ``costs_usd`` the per-attempt costs
    c it charged (``objective`` is then None; binary version 3); None otherwise.
    ``first``: the path attempted first.
    """

    __slots__ = (
        "costs_usd",
        "failures",
        "latencies_ms",
        "objective",
        "price",
        "prior",
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
        price: float | None = None,
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
        self.price = price

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
        if self.price is not None:
            out["v"] = PRICED_VERSION
            out["price"] = self.price
            out["costs_usd"] = _floats(self.costs_usd)
        return out

    def to_json(self) -> str:
        """Compact JSON for ``outcomes.decision`` (what ``json.dumps(to_dict())`` gives).

        Formatted by hand: the writer thread serialises one per routed request, and
        ``json.dumps`` of the dict costs ~3x as much, taken from routing under the GIL.
        Floats are finite here (decayed sums, a probability, costs), so ``repr`` is JSON.
        """
        if (
            self.objective is not None
            or self.price is not None
            or (self.skipped is not None and any(self.skipped))
        ):
            return json.dumps(self.to_dict(), separators=(",", ":"))
        # A list of finite floats prints as a JSON array ("[1.0, 2.5]"), in C.
        first = "null" if self.first is None else _names_json((self.first,))[1:-1]
        return (
            f"{_prefix(self.paths)}{_floats(self.successes)!r},"
            f'"failures":{_floats(self.failures)!r}{_suffix(self.prior, self.explore)}{first}}}'
        )

    def to_bytes(self) -> bytes:
        """The compact binary record stored in ``outcomes.decision``.

        Layout (little-endian): u8 version (2), u8 flags (1 skipped, 2 objective, 4
        costs, 8 latencies), u16 k, each path name as u16 length + UTF-8; float64s: prior
        α, prior β, explore, [cost_weight, usd_per_second], successes[k], failures[k],
        [costs_usd[k]], [latencies_ms[k]]; [k bytes of skipped flags]; u16 index of the
        first path (0xFFFF: none). Floats are stored bit for bit, so a propensity
        recomputed from the record is the one computed at logging time. ~1 µs: it runs on
        the request's thread, once per routed request.

        Under a spend target (``price`` set), version 3: the same up to explore, then λ,
        successes[k], failures[k], costs_usd[k], [skipped], first (flags: 1 skipped only).
        """
        skipped = self.skipped
        if skipped is not None and not any(skipped):
            skipped = None
        if self.price is not None:
            enc = PricedDecisionEncoder(self.paths, self.prior, self.explore)
            return enc.encode(
                self.successes,
                self.failures,
                self._first_index(),
                skipped,
                self.costs_usd,
                self.price,
            )
        obj = self.objective
        flags = 0 if skipped is None else _SKIPPED
        if obj is not None:
            flags |= _OBJECTIVE
            if self.costs_usd is not None:
                flags |= _COSTS
            if self.latencies_ms is not None:
                flags |= _LATENCIES
        first = self._first_index()
        head = _binary_head(self.paths, flags, self.prior, self.explore, obj)
        if not flags:  # the common case, in one join
            return b"".join((head, _f8(self.successes), _f8(self.failures), _U16.pack(first)))
        parts = [head, _f8(self.successes), _f8(self.failures)]
        if flags & _COSTS:
            parts.append(_f8(self.costs_usd))
        if flags & _LATENCIES:
            parts.append(_f8(self.latencies_ms))
        if skipped is not None:
            parts.append(bytes(skipped))
        parts.append(_U16.pack(first))
        return b"".join(parts)

    def _first_index(self) -> int:
        if self.first is None:
            return _NO_FIRST
        i = self.index(self.first)
        if i is None:
            raise ValueError(f"decision: first {self.first!r} is not one of {self.paths}")
        return i

    @classmethod
    def from_bytes(cls, data: bytes | str) -> LoggedDecision:
        """Parse :meth:`to_bytes`'s output (or :meth:`to_json`'s, which development builds
        stored); ValueError naming the problem when malformed."""
        if isinstance(data, str):
            return cls.from_json(data)
        data = bytes(data)  # a driver may hand back a memoryview
        if data[:1] == b"{":
            return cls.from_json(data.decode())
        if data[:1] == bytes((PRICED_VERSION,)):
            return cls._from_priced(data)
        if data[:1] == bytes((GAUSSIAN_VERSION,)):
            raise ValueError(
                "decision: a contextual (Gaussian) record, not a Beta one: read it with "
                "adaptive_router.policies.contextual_decision.decode()"
            )
        if len(data) < _HEAD.size or data[0] != BINARY_VERSION:
            raise ValueError(
                f"decision: unknown format version {data[:1]!r} (this version reads "
                f"{BINARY_VERSION}, {PRICED_VERSION}, {GAUSSIAN_VERSION} and JSON); "
                "upgrade adaptive-router"
            )
        flags, names, vals, skipped, first = _read_frame(data, _v2_doubles)
        k = len(names)
        obj = bool(flags & _OBJECTIVE)
        per_path = 2 + bool(flags & _COSTS) + bool(flags & _LATENCIES)
        at = 5 if obj else 3
        arrays = [list(vals[at + j * k : at + (j + 1) * k]) for j in range(per_path)]
        costs = arrays[2] if flags & _COSTS else None
        lats = arrays[2 + bool(flags & _COSTS)] if flags & _LATENCIES else None
        return cls(
            tuple(names),
            arrays[0],
            arrays[1],
            (vals[0], vals[1]),
            vals[2],
            skipped=skipped,
            objective=(vals[3], vals[4]) if obj else None,
            costs_usd=costs,
            latencies_ms=lats,
            first=None if first == _NO_FIRST else names[first],
        )

    @classmethod
    def _from_priced(cls, data: bytes) -> LoggedDecision:
        """A version-3 record (see :meth:`to_bytes`)."""
        _, names, vals, skipped, first = _read_frame(data, lambda flags, k: 4 + 3 * k)
        k = len(names)
        return cls(
            tuple(names),
            list(vals[4 : 4 + k]),
            list(vals[4 + k : 4 + 2 * k]),
            (vals[0], vals[1]),
            vals[2],
            skipped=skipped,
            costs_usd=list(vals[4 + 2 * k : 4 + 3 * k]),
            first=None if first == _NO_FIRST else names[first],
            price=vals[3],
        )

    @classmethod
    def from_json(cls, text: str) -> LoggedDecision:
        """Parse :meth:`to_json`'s output; ValueError naming the field when malformed."""
        try:
            d = json.loads(text)
        except (TypeError, ValueError):
            raise ValueError("decision: not a JSON object (outcomes.decision)") from None
        if not isinstance(d, dict) or d.get("v") not in (VERSION, PRICED_VERSION):
            raise ValueError(
                f"decision: unknown format version {d.get('v') if isinstance(d, dict) else d!r}"
                f" (this version reads {VERSION} and {PRICED_VERSION}); upgrade adaptive-router"
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
            price = None if d["v"] == VERSION else float(d["price"])
            if price is not None and costs is None:
                raise ValueError("costs_usd is required with a price")
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
            price=price,
        )

    def __repr__(self) -> str:
        return f"LoggedDecision({self.to_json()})"


class _Frame(NamedTuple):
    """A binary record's fields in the layout every version shares: the flags, the path
    names, the float64s, the skipped flags (None: none) and the first path's index."""

    flags: int
    names: list[str]
    vals: tuple[float, ...]
    skipped: tuple[bool, ...] | None
    first: int


def _v2_doubles(flags: int, k: int) -> int:
    """A version-2 record's float64s: prior and ε, the objective's two weights when
    flagged, and per path the evidence plus the costs and latencies when flagged."""
    per_path = 2 + bool(flags & _COSTS) + bool(flags & _LATENCIES)
    return 3 + 2 * bool(flags & _OBJECTIVE) + k * per_path


def _read_frame(data: bytes, doubles: Callable[[int, int], int]) -> _Frame:
    """Parse the header (version, flags, k), k path names, ``doubles(flags, k)`` float64s,
    the skipped flags when ``flags`` has them and the u16 first-path index, which must end
    the record; ValueError naming the problem when it is malformed."""
    try:
        _, flags, k = _HEAD.unpack_from(data, 0)
        off = _HEAD.size
        names = []
        for _ in range(k):
            (n,) = _U16.unpack_from(data, off)
            if off + 2 + n > len(data):
                raise struct.error("path name runs past the record's end")
            names.append(data[off + 2 : off + 2 + n].decode())
            off += 2 + n
        count = doubles(flags, k)
        vals = struct.unpack_from(f"<{count}d", data, off)
        off += 8 * count
        skipped = None
        if flags & _SKIPPED:
            if off + k > len(data):
                raise struct.error("skipped flags run past the record's end")
            skipped = tuple(b != 0 for b in data[off : off + k])
            off += k
        (first,) = _U16.unpack_from(data, off)
        off += 2
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"decision: truncated or malformed binary record ({exc})") from None
    if off != len(data):
        raise ValueError(f"decision: binary record of {len(data)} bytes, expected {off}")
    if first != _NO_FIRST and first >= k:
        raise ValueError(f"decision: first path index {first} out of range for {k} paths")
    return _Frame(flags, names, vals, skipped, first)
