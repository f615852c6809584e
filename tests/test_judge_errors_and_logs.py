"""A judge that raises is not the path's fault; repetitive warnings are throttled and
carry their essentials in the message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from adaptive_router import (
    AllPathsFailed,
    ConfigurationError,
    Learning,
    Observability,
    Path,
    Persistence,
    Router,
)
from adaptive_router.resilience import CircuitBreaker

FORMAT = logging.Formatter("%(levelname)s %(message)s")


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def lines(caplog: pytest.LogCaptureFixture, name: str = "adaptive_router.router") -> list[str]:
    return [FORMAT.format(r) for r in caplog.records if r.name == name]


def boom() -> str:
    raise RuntimeError("upstream said no\nsecond line of detail")


# -- item 2: the reason is in the message -----------------------------------------------------
def test_path_failed_warning_names_path_kind_and_error(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO),
        Router(
            [Path(boom, name="flaky", retry=None)],
            bool,
            "msg",
            store="memory://",
            fallback=Path(lambda: "ok", name="fb"),
        ) as r,
    ):
        assert r.run() == "ok"
    got = lines(caplog)
    assert "WARNING path flaky failed (exception): RuntimeError: upstream said no" in got
    assert "WARNING fallback from flaky to fb: exception" in got
    failed = next(x for x in caplog.records if x.getMessage().startswith("path flaky failed"))
    assert failed.kind == "exception" and "second line" in failed.error  # type: ignore[attr-defined]


# -- item 5: a judge that raises ---------------------------------------------------------------
def _judge(result: Any) -> bool:
    if result == "odd":
        raise ValueError("judge bug")
    return bool(result)


def test_success_fn_error_leaves_the_posterior_alone_and_tries_the_next_path(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=60.0)
    with (
        caplog.at_level(logging.INFO),
        Router(
            [
                Path(lambda: "odd", name="a", retry=None, breaker=breaker),
                Path(lambda: "fine", name="b", retry=None),
            ],
            _judge,
            "judge",
            store=store_url,
            learning=Learning(clock=clock, explore=0.0, seed=3),
            persistence=Persistence(durability="sync"),
        ) as r,
    ):
        # n counts both positions: "b" runs first, or after "a"'s judge raised.
        before = {p.path: (p.alpha, p.beta, p.n + p.after_failure.n) for p in r.posteriors()}
        for _ in range(5):
            assert r.run() == "fine"
            clock.t += 1
        r.refresh()  # what the store holds, not just the cache
        after = {p.path: (p.alpha, p.beta, p.n + p.after_failure.n) for p in r.posteriors()}
        kinds = [o.kind for o in r.store.outcomes("judge") if o.path == "a"]
        health = r.health()
    assert after["a"] == before["a"] == (1.0, 1.0, 0)
    assert after["b"][2] == 5
    assert kinds and set(kinds) == {"success_fn_error"}
    assert health["a"] == "closed"  # the breaker heard nothing
    raised = [x for x in caplog.records if "judge bug (not counted" in x.getMessage()]
    assert len(raised) == 1  # rate-limited: the first per path and window
    assert raised[0].exc_info is not None and "judge bug" in FORMAT.format(raised[0])
    assert "Traceback" in FORMAT.format(raised[0])


def test_success_fn_error_counted_again_after_the_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with (
        caplog.at_level(logging.INFO),
        Router(
            [Path(lambda: "odd", name="a", retry=None)],
            _judge,
            "judge-window",
            store="memory://",
            learning=Learning(clock=clock),
        ) as r,
    ):
        for _ in range(4):
            with pytest.raises(AllPathsFailed) as info:
                r.run()
            clock.t += 1
        assert info.value.attempts[0].kind == "success_fn_error"
        clock.t += 60
        with pytest.raises(AllPathsFailed):
            r.run()
    got = [x for x in lines(caplog) if "success_fn raised" in x]
    assert len(got) == 3, got
    assert got[1] == (
        "ERROR success_fn raised on path a of task judge-window 3 more times in the last 60 s"
    )


def test_score_fn_error_is_success_fn_error_too() -> None:
    def score(_v: Any) -> float:
        raise ZeroDivisionError("no")

    with Router(
        [Path(lambda: "x", name="a", retry=None)], score_fn=score, task="s", store="memory://"
    ) as r:
        with pytest.raises(AllPathsFailed) as info:
            r.run()
        assert r.posteriors()[0].n == 0
    assert info.value.attempts[0].kind == "success_fn_error"


# -- item 11: fallback warnings are throttled ---------------------------------------------------
def test_fallback_warnings_first_per_window_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    attempts: list[str] = []
    with (
        caplog.at_level(logging.INFO),
        Router(
            [Path(boom, name="down", retry=None, breaker=None)],
            bool,
            "noisy",
            store="memory://",
            fallback=Path(lambda: "ok", name="fb"),
            learning=Learning(clock=clock),
            observability=Observability(on_outcome=lambda o: attempts.append(o.path)),
        ) as r,
    ):
        for _ in range(50):
            r.run()
            clock.t += 1  # 50 s: one window
        clock.t += 20
        r.run()
    got = lines(caplog)
    fallback = [x for x in got if "fallback from down to fb" in x]
    assert fallback == [
        "WARNING fallback from down to fb: exception",
        "WARNING fallback from down to fb: exception, 49 more times in the last 60 s",
        "WARNING fallback from down to fb: exception",
    ]
    failed = [x for x in got if x.startswith("WARNING path down failed")]
    assert len(failed) == 3
    assert attempts.count("down") == 51  # observers (and so metrics) see every attempt


def test_scores_below_min_score_do_not_warn_every_time(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO),
        Router(
            [Path(lambda: "meh", name="a", retry=None)],
            score_fn=lambda v: 0.2 if v == "meh" else 1.0,
            task="low",
            store="memory://",
            fallback=Path(lambda: "ok", name="fb"),
        ) as r,
    ):
        for _ in range(30):
            r.run()
    assert [x for x in lines(caplog) if x.startswith("WARNING")] == [
        "WARNING fallback from a to fb: rejected",
        # the summary of the window, written when the router closes
        "WARNING fallback from a to fb: rejected, 29 more times in the last 60 s",
    ]


# -- item 15: success_fn or score_fn, by keyword -----------------------------------------------
def test_score_fn_by_keyword_without_success_fn() -> None:
    with Router(
        paths=[Path(lambda: "x", name="a")], score_fn=lambda _v: 1.0, task="t", store="memory://"
    ) as r:
        assert r.run() == "x"
    with Router([Path(lambda: "y", name="a")], bool, "t", store="memory://") as r:
        assert r.run() == "y"


@pytest.mark.parametrize(
    ("kw", "said"),
    [({}, "neither"), ({"success_fn": bool, "score_fn": lambda _v: 1.0}, "both")],
)
def test_neither_or_both_judges_is_a_clear_error(kw: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigurationError, match="success_fn") as info:
        Router(paths=[Path(lambda: "x", name="a")], task="t", store="memory://", **kw)
    assert "score_fn" in str(info.value) and said in str(info.value)


def test_task_is_still_required() -> None:
    with pytest.raises(ConfigurationError, match="task is required"):
        Router([Path(lambda: "x", name="a")], bool, store="memory://")


def test_other_warnings_carry_their_essentials_in_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    with (
        caplog.at_level(logging.INFO),
        Router(
            [Path(lambda: "x", name="a", model="no-such-model-xyz")],
            bool,
            "ess",
            store="memory://",
            learning=Learning(clock=clock),
            persistence=Persistence(pending_ttl=10),
        ) as r,
    ):
        r.choose()
        clock.t += 60
        r.choose()  # expires the first
        r.report(r.choose().request_id, True, input_tokens=5, output_tokens=1)
    got = [FORMAT.format(x) for x in caplog.records]
    assert (
        "WARNING 1 pending decisions of task ess expired without a report (counted as failure)"
        in got
    )
    assert any(x.startswith("WARNING no price known for model 'no-such-model-xyz'") for x in got), (
        got
    )
