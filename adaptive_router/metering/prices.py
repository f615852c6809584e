"""Prices: the cost of a call from its token counts, with genai-prices' offline data.

``genai_prices.calc_price`` resolves the model, validates the price table and computes
in ``Decimal`` on every call (~100 µs). :class:`Pricer` does that work once per model
and *price window* — the span of time in which the same prices apply (prices with a
start date, off-peak hours) — and then prices a call with a few float operations.
The cached rates give the same dollars as ``calc_price`` (to 1e-12 relative); they are
checked against it each time they are built, and a price table they would get wrong is
priced by ``calc_price`` on every call instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price, data_snapshot, types
    from genai_prices.units import _get_registry

from adaptive_router import forks

logger = logging.getLogger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_NEVER = 2**63
_ALWAYS = -(2**63)

# The token prices the cached rates reproduce: genai-prices subtracts the cache tokens
# from the input tokens before pricing them at the input rate (its "leaf" values).
_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


_prices_loaded = False


def _load_prices() -> None:
    """Import genai-prices (~0.2 s with its price data and pydantic) when the first price
    is asked for: a program that never prices a call never pays for it. Binds the module
    names above (once), which the code below uses once a price has been looked up."""
    global PriceUsage, calc_price, data_snapshot, types, _get_registry, _prices_loaded
    if _prices_loaded:
        return
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price, data_snapshot, types
    from genai_prices.units import _get_registry

    _prices_loaded = True  # after the names are bound: another thread may be pricing


def _to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC, as genai-prices reads it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _utc_time_us(value: time_of_day) -> int:
    """A constraint's time of day as microseconds after UTC midnight (naive times are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = datetime.combine(date(1970, 1, 1), value).astimezone(UTC)
    return (utc - datetime.combine(utc.date(), time_of_day(), UTC)) // _US


def _window(prices: list[types.ConditionalPrice], now_us: int) -> tuple[int, int]:
    """``[start, end)`` around ``now_us`` in which every constraint's answer stays the same.

    A start date switches on at UTC midnight of that date and stays on; a time-of-day
    interval switches at its two times every UTC day.
    """
    start, end = _ALWAYS, _NEVER
    day = now_us - now_us % _DAY_US
    for conditional in prices:
        constraint = conditional.constraint
        if isinstance(constraint, types.StartDateConstraint):
            d = constraint.start_date
            boundary = _to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))
            if boundary <= now_us:
                start = max(start, boundary)
            else:
                end = min(end, boundary)
        elif isinstance(constraint, types.TimeOfDateConstraint):
            for t in (constraint.start_time, constraint.end_time):
                offset = _utc_time_us(t)
                for boundary in (day - _DAY_US + offset, day + offset, day + _DAY_US + offset):
                    if boundary <= now_us:
                        start = max(start, boundary)
                    else:
                        end = min(end, boundary)
    return start, end


@dataclass(frozen=True)
class _Rate:
    """One token price: the base rate and, highest first, (threshold, rate) tiers."""

    base: float
    tiers: tuple[tuple[int, float], ...]

    def at(self, input_tokens: int) -> float:
        for start, rate in self.tiers:
            if input_tokens > start:
                return rate
        return self.base


@dataclass(frozen=True)
class _Rates:
    """A model's prices in one window, per token (not per million), or None: no fast path."""

    snapshot: object
    start_us: int
    end_us: int
    input: _Rate | None
    output: _Rate | None
    cache_read: _Rate | None
    cache_write: _Rate | None
    per_request: float
    tiered: bool
    exact: bool  # False: price every call with calc_price
    # Without tiers: (input, output, cache-read, cache-write rates, whether cache reads and
    # writes come off the input tokens, whether input is priced), for one expression.
    flat: tuple[float, float, float, float, int, int, bool] | None = None

    def price(self, inp: int, out: int, cache_read: int, cache_write: int) -> float | None:
        """Dollars, or None when genai-prices would reject the counts (it says why)."""
        flat = self.flat
        if flat is not None:
            r_in, r_out, r_read, r_write, off_read, off_write, priced_input = flat
            leaf = inp - off_read * cache_read - off_write * cache_write
            if priced_input and leaf < 0:
                return None
            return (
                self.per_request
                + r_read * cache_read
                + r_write * cache_write
                + r_in * leaf
                + r_out * out
            )
        tier_tokens = inp if self.tiered else 0
        total = self.per_request
        leaf = inp
        if self.cache_read is not None:
            leaf -= cache_read
            total += self.cache_read.at(tier_tokens) * cache_read
        if self.cache_write is not None:
            leaf -= cache_write
            total += self.cache_write.at(tier_tokens) * cache_write
        if self.input is not None:
            if leaf < 0:
                return None
            total += self.input.at(tier_tokens) * leaf
        if self.output is not None:
            total += self.output.at(tier_tokens) * out
        return total


def _rate(value: Decimal | types.TieredPrices) -> _Rate:
    if isinstance(value, types.TieredPrices):
        tiers = sorted(((t.start, float(t.price) / 1e6) for t in value.tiers), reverse=True)
        return _Rate(float(value.base) / 1e6, tuple(tiers))
    return _Rate(float(value) / 1e6, ())


def _compile(snapshot: object, price: types.ModelPrice, start: int, end: int) -> _Rates:
    registry = _get_registry()
    token: dict[str, _Rate] = {}
    per_request = 0.0
    exact = type(price) is types.ModelPrice
    for key, value in price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        if key in _TOKEN_KEYS and isinstance(value, Decimal | types.TieredPrices):
            token[key] = _rate(value)
            continue
        try:
            unit = registry.unit_for_price_key(key)
        except KeyError:
            exact = False
            continue
        if unit.usage_key == "requests":
            if not isinstance(value, Decimal):
                exact = False
                continue
            per_request = float(value) / unit.per  # genai-prices counts one request per call
        # Any other unit (audio or image tokens, 1-hour cache writes, web searches, pages)
        # is one our usage never reports: genai-prices infers 0 of it, so it costs 0 and
        # takes nothing from the input tokens.
    tiered = any(isinstance(price.__dict__.get(key), types.TieredPrices) for key in token)
    rates = {key: token[key].base if key in token else 0.0 for key in _TOKEN_KEYS}
    return _Rates(
        snapshot=snapshot,
        start_us=start,
        end_us=end,
        input=token.get("input_mtok"),
        output=token.get("output_mtok"),
        cache_read=token.get("cache_read_mtok"),
        cache_write=token.get("cache_write_mtok"),
        per_request=per_request,
        tiered=tiered,
        exact=exact,
        flat=None
        if tiered
        else (
            rates["input_mtok"],
            rates["output_mtok"],
            rates["cache_read_mtok"],
            rates["cache_write_mtok"],
            int("cache_read_mtok" in token),
            int("cache_write_mtok" in token),
            "input_mtok" in token,
        ),
    )


def _list_price(model: str, inp: int, out: int, at: datetime | None) -> float | None:
    """genai-prices' price of a call of ``model`` at ``at`` (default: now), None if unknown."""
    _load_prices()
    usage = PriceUsage(input_tokens=inp, output_tokens=out)
    moment = datetime.now(UTC) if at is None else at
    try:
        price = calc_price(usage, model_ref=model, genai_request_timestamp=moment)
    except LookupError:
        return None
    return float(price.total_price)


#: resolve()'s cache miss (None is a cached answer: no price known).
_UNRESOLVED = object()


def _with_bare(name: str) -> tuple[str, ...]:
    """``name``, and for LiteLLM's ``"provider/model"`` the ``"model"`` part."""
    return (name, name.split("/", 1)[1]) if "/" in name else (name,)


class MeteredTokens(Protocol):
    """What one call or try used, as priced (an :class:`~adaptive_router.Usage`, a
    captured SDK call): the model it names and its token counts (None: unknown)."""

    @property
    def model(self) -> str | None: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cache_read_tokens(self) -> int | None: ...
    @property
    def cache_write_tokens(self) -> int | None: ...


class Pricer:
    """Turns (model, input tokens, output tokens, cached tokens) into US dollars.

    Prices come from ``genai-prices`` (data shipped with the package, no network).
    ``overrides`` maps a model name to ``(input_usd_per_million, output_usd_per_million)``
    for private or fine-tuned models. An unknown model costs ``None`` — never a silent
    0 — and is warned about once per model.
    """

    def __init__(self, overrides: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.overrides: dict[str, tuple[float, float]] = {}
        for model, pair in (overrides or {}).items():
            try:
                inp, out = (float(pair[0]), float(pair[1]))
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"prices[{model!r}] must be (input_usd_per_mtok, output_usd_per_mtok), "
                    f"got {pair!r}"
                ) from None
            if not (math.isfinite(inp) and math.isfinite(out) and inp >= 0 and out >= 0):
                raise ValueError(f"prices[{model!r}] must be two finite numbers >= 0")
            self.overrides[model] = (inp, out)
        self._unknown: set[str] = set()
        # names given to resolve() -> the name they are priced by (None: none known).
        self._resolved: dict[tuple[str | None, ...], str | None] = {}
        self._lock = threading.Lock()
        # model name -> its rates in the price window last asked about. Replaced whole
        # (one dict store), so readers on other threads never see half an entry.
        self._rates: dict[str, _Rates] = {}
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    def cost(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        at: datetime | None = None,
    ) -> float | None:
        """Dollars for one call, or None when the model or the token counts are unknown.

        ``input_tokens`` counts every prompt token; ``cache_read_tokens`` and
        ``cache_write_tokens`` say how many of them the provider's prompt cache served or
        stored, which genai-prices bills at the model's cache rates. An override has no
        cache rates, so its cached tokens cost the plain input price (an upper bound).
        ``at`` is when the call was made (default: now), for prices that change with time.
        """
        if model is None or (input_tokens is None and output_tokens is None):
            return None
        inp, out = input_tokens or 0, output_tokens or 0
        if model in self.overrides:
            p_in, p_out = self.overrides[model]
            return (inp * p_in + out * p_out) / 1_000_000
        if model in self._unknown:
            return None
        now_us = time.time_ns() // 1000 if at is None else _to_us(at)
        rates = self._rates.get(model)
        if (
            rates is None  # else _cost_and_cache built them, genai-prices loaded
            or not rates.start_us <= now_us < rates.end_us
            or rates.snapshot is not data_snapshot.get_snapshot()
        ):
            return self._cost_and_cache(
                model, inp, out, cache_read_tokens or 0, cache_write_tokens or 0, now_us
            )
        if rates.exact and type(inp) is int and type(out) is int:
            cost = rates.price(inp, out, cache_read_tokens or 0, cache_write_tokens or 0)
            if cost is not None:
                return cost
        return self._calc_price(model, inp, out, cache_read_tokens, cache_write_tokens, now_us)

    def call_cost(
        self,
        served: str | None,
        configured: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """:meth:`cost` of a call made: priced by the name :meth:`resolve` picks from the
        model the provider says it ``served`` and the path's ``configured`` one (the first
        that is given when neither has a known price, so :meth:`cost` warns about it)."""
        return self.cost(
            self.resolve(served, configured) or served or configured,
            input_tokens,
            output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
        )

    def usage_cost(self, used: MeteredTokens, configured: str | None) -> float | None:
        """:meth:`call_cost` of ``used``'s tokens, cache reads and writes included, served
        as the model it names (the path's ``configured`` one resolves a name it lacks)."""
        return self.call_cost(
            used.model,
            configured,
            used.input_tokens,
            used.output_tokens,
            cache_read_tokens=used.cache_read_tokens,
            cache_write_tokens=used.cache_write_tokens,
        )

    def resolve(self, *names: str | None) -> str | None:
        """The name to price a call by, given every name it goes by, most specific first
        (the model a response names, then the path's configured model): an override for
        any of them first (the user's price wins over the list price), else the first
        genai-prices knows; a LiteLLM ``"provider/model"`` is also tried as ``"model"``.
        None when no price is known for any (:meth:`cost` then warns about the first).
        The answer is cached per tuple of names (a dict lookup on the hot path)."""
        got = self._resolved.get(names, _UNRESOLVED)
        if got is not _UNRESOLVED:
            return got  # type: ignore[return-value]
        candidates: list[str] = []
        for name in names:
            if name:
                candidates.extend(n for n in _with_bare(name) if n not in candidates)
        found = next((n for n in candidates if n in self.overrides), None)
        if found is None:
            found = next((n for n in candidates if _list_price(n, 0, 0, None) is not None), None)
        self._resolved[names] = found
        return found

    def quote(
        self, model: str, input_tokens: int, output_tokens: int, *, at: datetime | None = None
    ) -> float | None:
        """Dollars for a call of ``model`` with these token counts (an estimate, not a
        call made), or None when no price is known; the override if there is one, else
        genai-prices' ``calc_price`` at ``at`` (default: now).

        Unlike :meth:`cost`, an unknown model is neither warned about nor remembered
        here: the caller says what the missing price means (a router warns that the path
        has no cost prior), and :meth:`cost` still warns when a call's cost is unknown.
        Not for the hot path: it runs ``calc_price`` every time.
        """
        if model in self.overrides:
            p_in, p_out = self.overrides[model]
            return (input_tokens * p_in + output_tokens * p_out) / 1_000_000
        return _list_price(model, input_tokens, output_tokens, at)

    def _calc_price(
        self,
        model: str,
        inp: int,
        out: int,
        cache_read: int | None,
        cache_write: int | None,
        now_us: int,
    ) -> float | None:
        _load_prices()
        usage = PriceUsage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
        )
        try:
            price = calc_price(usage, model_ref=model, genai_request_timestamp=_from_us(now_us))
        except LookupError:
            with self._lock:
                first = model not in self._unknown
                self._unknown.add(model)
            if first:
                logger.warning(
                    "no price known for model %r; its cost is recorded as unknown "
                    "(give Observability(prices={model: (input, output USD per million tokens)}))",
                    model,
                    extra={"model": model},
                )
            return None
        return float(price.total_price)

    def _cost_and_cache(
        self, model: str, inp: int, out: int, cache_read: int, cache_write: int, now_us: int
    ) -> float | None:
        """Price with calc_price and cache the model's rates for the window around now."""
        cost = self._calc_price(model, inp, out, cache_read, cache_write, now_us)
        if cost is None:
            return None
        snapshot = data_snapshot.get_snapshot()
        try:
            _, info = snapshot.find_provider_model(model, None, None, None)
            moment = _from_us(now_us)
            price = info.get_prices(moment)
        except Exception:  # calc_price found it; a layout we do not know: stay on calc_price
            return cost
        if isinstance(info.prices, types.ModelPrice):
            start, end = _ALWAYS, _NEVER
        else:
            start, end = _window(info.prices, now_us)
        rates = _compile(snapshot, price, start, end)
        if rates.exact:
            fast = rates.price(inp, out, cache_read, cache_write)
            if fast is None or not math.isclose(fast, cost, rel_tol=1e-12, abs_tol=1e-15):
                # A shape the cached rates get wrong: keep it on calc_price, and say so.
                logger.debug(
                    "cached rates disagree with genai-prices; pricing this model with calc_price",
                    extra={"model": model, "cached": fast, "calc_price": cost},
                )
                rates = _Rates(snapshot, start, end, None, None, None, None, 0.0, False, False)
        self._rates[model] = rates
        return cost
