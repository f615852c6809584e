"""Pricer's cached rates against genai-prices' calc_price: every model, every price shape.

The cached path must give calc_price's dollars (to 1e-12) for tiers (around each
threshold), cache-read and cache-write rates, and prices that change with time: at,
just before and just after each start date and each time-of-day boundary.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from genai_prices import Usage, calc_price, data_snapshot, types

from adaptive_router.metering import prices as costs
from adaptive_router.metering.prices import Pricer

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _models() -> list[types.ModelInfo]:
    return [m for p in data_snapshot.get_snapshot().providers for m in p.models]


def _model_refs() -> list[str]:
    """Each model id once: priced as calc_price(model_ref=id) resolves it."""
    return sorted({m.id for m in _models()})


def _expected(model: str, inp: int, out: int, cr: int, cw: int, at: datetime) -> float | None:
    usage = Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cr or None,
        cache_write_tokens=cw or None,
    )
    try:
        return float(calc_price(usage, model_ref=model, genai_request_timestamp=at).total_price)
    except LookupError:
        return None


def _thresholds(model: str) -> list[int]:
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    except LookupError:
        return []
    prices = (
        [info.prices]
        if isinstance(info.prices, types.ModelPrice)
        else [c.prices for c in info.prices]
    )
    starts: set[int] = set()
    for price in prices:
        for value in price.__dict__.values():
            if isinstance(value, types.TieredPrices):
                starts.update(t.start for t in value.tiers)
    return sorted(starts)


def _usages(model: str, rng: random.Random) -> Iterator[tuple[int, int, int, int]]:
    yield 0, 0, 0, 0
    yield 1, 1, 0, 0
    yield 1_000_000, 1_000_000, 0, 0
    yield 10, 5, 20, 0  # more cache reads than input tokens: genai-prices rejects it
    yield 10, 5, 6, 6
    for _ in range(4):
        inp = rng.randrange(0, 400_000)
        cr = rng.randrange(0, inp + 1) if rng.random() < 0.6 else 0
        cw = rng.randrange(0, inp - cr + 1) if rng.random() < 0.5 else 0
        yield inp, rng.randrange(0, 50_000), cr, cw
    for start in _thresholds(model):
        for inp in (start - 1, start, start + 1, start + 2, 2 * start + 7):
            if inp >= 0:
                cr = rng.randrange(0, inp + 1)
                cw = rng.randrange(0, inp - cr + 1)
                yield inp, rng.randrange(0, 9_000), cr, cw
                yield inp, 17, 0, 0


def _same(got: float | None, want: float | None) -> bool:
    if want is None or got is None:
        return got is want
    return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15)


def test_cached_prices_equal_calc_price_for_every_model() -> None:
    rng = random.Random(14)
    pricer = Pricer()
    checked = fast = 0
    for model in _model_refs():
        for inp, out, cr, cw in _usages(model, rng):
            # Twice: the first call fills the cache, the second is priced from it.
            for _ in range(2):
                try:
                    want = _expected(model, inp, out, cr, cw, NOW)
                except ValueError:  # genai-prices rejects these counts; so must we
                    with pytest.raises(ValueError):
                        pricer.cost(
                            model, inp, out, cache_read_tokens=cr, cache_write_tokens=cw, at=NOW
                        )
                    continue
                got = pricer.cost(
                    model, inp, out, cache_read_tokens=cr, cache_write_tokens=cw, at=NOW
                )
                assert _same(got, want), (model, inp, out, cr, cw, got, want)
                checked += 1
        rates = pricer._rates.get(model)
        fast += rates is not None and rates.exact
    assert checked > 20_000
    known = sum(model in pricer._rates for model in _model_refs())
    assert known > 400
    assert fast == known  # every model calc_price resolves by name is priced from the cache


def _all_times(info: types.ModelInfo) -> list[datetime]:
    return [NOW] + [b + k * _US for b in _boundaries(info) for k in (-1, 0)]


def test_cached_rates_equal_calc_price_for_every_model_of_every_provider() -> None:
    """Models reached only through a provider (bedrock, azure...) have their own shapes:
    the rates built for each of them, in each of its price windows, equal calc_price."""
    rng = random.Random(3)
    snapshot = data_snapshot.get_snapshot()
    checked = exact = total = 0
    for provider in snapshot.providers:
        for info in provider.models:
            total += 1
            for at in _all_times(info):
                now_us = costs._to_us(at)
                if isinstance(info.prices, types.ModelPrice):
                    start, end = costs._ALWAYS, costs._NEVER
                else:
                    start, end = costs._window(info.prices, now_us)
                    assert start <= now_us < end
                    # The window's first and last microsecond have the prices of now.
                    for edge in (start, end - 1):
                        if costs._ALWAYS < edge < costs._NEVER - 1:
                            assert info.get_prices(costs._from_us(edge)) == info.get_prices(at)
                rates = costs._compile(snapshot, info.get_prices(at), start, end)
                exact += rates.exact and at is NOW
                if not rates.exact:
                    continue
                for inp, out, cr, cw in _usages(info.id, rng):
                    usage = Usage(
                        input_tokens=inp,
                        output_tokens=out,
                        cache_read_tokens=cr or None,
                        cache_write_tokens=cw or None,
                    )
                    try:
                        want = float(
                            info.calc_price(usage, provider, genai_request_timestamp=at).total_price
                        )
                    except ValueError:
                        assert rates.price(inp, out, cr, cw) is None, (info.id, inp, cr, cw)
                        continue
                    got = rates.price(inp, out, cr, cw)
                    assert _same(got, want), (provider.id, info.id, at, inp, out, cr, cw)
                    checked += 1
    assert total > 2_000
    assert exact == total
    assert checked > 20_000


def _boundaries(info: types.ModelInfo) -> list[datetime]:
    out: list[datetime] = []
    if isinstance(info.prices, types.ModelPrice):
        return out
    for conditional in info.prices:
        c = conditional.constraint
        if isinstance(c, types.StartDateConstraint):
            out.append(datetime.combine(c.start_date, datetime.min.time(), UTC))
        elif isinstance(c, types.TimeOfDateConstraint):
            for t in (c.start_time, c.end_time):
                for day in (date(2025, 3, 1), date(2026, 11, 30)):
                    moment = datetime.combine(day, t)
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=UTC)
                    out.append(moment.astimezone(UTC))
    return sorted(set(out))


def _timed_refs() -> list[tuple[str, list[datetime]]]:
    snapshot = data_snapshot.get_snapshot()
    refs = []
    for model in _model_refs():
        try:
            _, info = snapshot.find_provider_model(model, None, None, None)
        except LookupError:  # an id calc_price cannot resolve without a provider
            continue
        if times := _boundaries(info):
            refs.append((model, times))
    return refs


def test_time_windows_have_both_shapes() -> None:
    shapes = {
        type(c.constraint).__name__
        for m in _models()
        if not isinstance(m.prices, types.ModelPrice)
        for c in m.prices
    }
    assert {"StartDateConstraint", "TimeOfDateConstraint"} <= shapes
    assert len(_timed_refs()) > 40


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_cached_prices_switch_exactly_at_each_price_boundary(direction: str) -> None:
    rng = random.Random(7)
    checked = 0
    for model, boundaries in _timed_refs():
        pricer = Pricer()  # one per model: its window walks across every boundary
        times = [b + k * _US for b in boundaries for k in (-1, 0, 1)]
        times += [b + timedelta(hours=h) for b in boundaries for h in (-25, 12)]
        times.sort(reverse=direction == "backward")
        usages = [(1_000, 200, 300, 100), (250_000, 1_000, 0, 0), (5, 5, 0, 0)]
        for at in times:
            inp, out, cr, cw = rng.choice(usages)
            want = _expected(model, inp, out, cr, cw, at)
            got = pricer.cost(model, inp, out, cache_read_tokens=cr, cache_write_tokens=cw, at=at)
            assert _same(got, want), (model, at, got, want)
            checked += 1
    assert checked > 500


def test_price_changes_at_a_start_date_are_seen_by_a_cached_entry() -> None:
    """A window ends exactly at the next start date: the entry cannot outlive it."""
    snapshot = data_snapshot.get_snapshot()
    for model, boundaries in _timed_refs():
        _, info = snapshot.find_provider_model(model, None, None, None)
        if isinstance(info.prices, types.ModelPrice) or not all(
            isinstance(c.constraint, types.StartDateConstraint | None) for c in info.prices
        ):
            continue
        for b in boundaries:
            before = _expected(model, 1_000_000, 1_000_000, 0, 0, b - _US)
            after = _expected(model, 1_000_000, 1_000_000, 0, 0, b)
            if before != after:
                pricer = Pricer()
                assert pricer.cost(model, 1_000_000, 1_000_000, at=b - _US) == pytest.approx(
                    before, rel=1e-12
                )
                assert pricer.cost(model, 1_000_000, 1_000_000, at=b) == pytest.approx(
                    after, rel=1e-12
                )
                return
    pytest.fail("no model whose price changes at a start date")


def test_time_of_day_prices_change_within_a_cached_day() -> None:
    """deepseek's off-peak hours: the same pricer, minutes apart, two prices."""
    pricer = Pricer()
    day = datetime(2026, 11, 30, tzinfo=UTC)
    seen = set()
    for minutes in range(0, 24 * 60, 30):
        at = day + timedelta(minutes=minutes)
        got = pricer.cost("deepseek-chat", 1_000_000, 1_000_000, at=at)
        want = _expected("deepseek-chat", 1_000_000, 1_000_000, 0, 0, at)
        assert _same(got, want)
        seen.add(got)
    assert len(seen) == 2


def test_cached_rates_price_without_calc_price(monkeypatch: pytest.MonkeyPatch) -> None:
    pricer = Pricer()
    first = pricer.cost("gpt-4o", 1_234, 567, cache_read_tokens=200, at=NOW)

    def boom(*args: object, **kwargs: object) -> object:
        raise AssertionError("calc_price called on a cached model")

    monkeypatch.setattr("adaptive_router.metering.prices.calc_price", boom)
    assert pricer.cost("gpt-4o", 1_234, 567, cache_read_tokens=200, at=NOW) == first
    assert pricer.cost("gpt-4o", 10, 0, at=NOW + timedelta(seconds=1)) == pytest.approx(
        _expected("gpt-4o", 10, 0, 0, 0, NOW), rel=1e-12
    )
    # Without ``at`` the clock says now, which is inside gpt-4o's open-ended window.
    assert pricer.cost("gpt-4o", 1_234, 567, cache_read_tokens=200) == first


def test_a_new_snapshot_drops_the_cached_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    pricer = Pricer()
    pricer.cost("gpt-4o", 1_000, 1_000, at=NOW)
    original = data_snapshot.get_snapshot()
    # genai-prices' UpdatePrices installs a fresh snapshot: the cache must not survive it.
    doubled = data_snapshot.DataSnapshot(providers=original.providers, from_auto_update=True)
    calls: list[str] = []
    real = calc_price

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("x")
        return real(*args, **kwargs)  # type: ignore[call-overload]

    # the name prices.py calls
    monkeypatch.setattr("adaptive_router.metering.prices.calc_price", counting)
    data_snapshot.set_custom_snapshot(doubled)
    try:
        pricer.cost("gpt-4o", 1_000, 1_000, at=NOW)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert calls == ["x"]


def test_overrides_and_unknown_models_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer({"my-model": (2.0, 8.0), "gpt-4o": (1.0, 1.0)})
    assert pricer.cost("my-model", 1_000_000, 500_000, cache_read_tokens=10) == 6.0
    assert pricer.cost("gpt-4o", 1_000_000, 1_000_000) == 2.0  # the override wins
    assert pricer.cost("no-such-model-xyz", 10, 10) is None
    assert pricer.cost("no-such-model-xyz", 10, 10) is None
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1
    assert pricer.cost(None, 10, 10) is None
    assert pricer.cost("gpt-4o-mini", None, None) is None
