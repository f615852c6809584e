"""One run of the demo: :func:`run_demo` (see :mod:`adaptive_router.demo`)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Any

import numpy as np

from adaptive_router.demo.scenario import (
    ADAPT_REQUESTS,
    CLAUDE,
    DEFAULT_DB,
    DEFAULT_HALF_LIFE,
    DEFAULT_LIVE_REQUESTS,
    DEFAULT_REQUESTS,
    DEFAULT_SEED,
    FAKE_TIMEOUT_S,
    FALLBACK,
    GPT,
    LIVE_RETRY_INITIAL_S,
    LIVE_TIMEOUT_S,
    LIVE_WINDOW,
    MIN_LIVE_REQUESTS,
    MIN_REQUESTS,
    MODELS,
    PROMPT,
    RESET_S,
    TASK,
    Order,
    SimulatedOutage,
    behave,
    is_valid_order,
    make_order,
    parse_strict,
)
from adaptive_router.demo.summary import (
    DemoProgress,
    DemoSummary,
    PathProgress,
    PhaseSummary,
    requests_to_shift,
)
from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.outcomes import Outcome, Posterior
from adaptive_router.paths import Path
from adaptive_router.providers import anthropic_path, openai_path
from adaptive_router.resilience import BreakerState, CircuitBreaker, RetryPolicy
from adaptive_router.router import Learning, Observability, Persistence, Router
from adaptive_router.testing import (
    FakeProvider,
)

logger = logging.getLogger(__name__)


def sqlite_file(db: str) -> FilePath:
    """The demo's database file from a path or a ``sqlite:///`` URL."""
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///") :]
    elif "://" in db:
        raise ConfigurationError(
            f"demo: --db must be a SQLite file path such as {DEFAULT_DB!r} (the demo deletes "
            "and recreates it), not a server URL"
        )
    if not db or db == ":memory:":
        raise ConfigurationError("demo: --db needs a file path; use --db adaptive_router_demo.db")
    return FilePath(db)


def _remove_db(path: FilePath) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        FilePath(f"{path}{suffix}").unlink(missing_ok=True)


# -- the run ----------------------------------------------------------------------------------


class _State:
    """What the demo loop shares with the paths and the router for the current request."""

    def __init__(self, start: float, drop_at: int) -> None:
        self.start = start
        self.drop_at = drop_at
        self.request = 0
        self.outcomes: list[Outcome] = []
        self.http_calls: Counter[str] = Counter()

    def clock(self) -> float:
        return self.start + self.request

    @property
    def degraded(self) -> bool:
        return self.request >= self.drop_at


def _counted(path: Path, state: _State, chaos: np.random.Generator | None = None) -> Path:
    """``path`` with its calls counted (each retry is a call); with ``chaos``, failing
    most calls on purpose once the run is past the drop (``--live``)."""
    fn = path.fn
    name = path.name or ""

    def call(*args: Any, **kwargs: Any) -> Any:
        if chaos is not None and state.degraded and chaos.random() < 0.8:
            raise SimulatedOutage(f"{name}: simulated 500 (--live demo degradation)")
        state.http_calls[name] += 1
        return fn(*args, **kwargs)

    # Only the sync call is used by the demo; keep the path's settings, drop its afn.
    return dataclasses.replace(path, fn=call, afn=None)


def _check_live_keys() -> None:
    missing = [v for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY") if not os.environ.get(v)]
    if missing:
        raise ConfigurationError(
            f"demo --live calls the real APIs and needs {' and '.join(missing)} in the "
            "environment; run without --live to use the built-in fake provider"
        )


@contextmanager
def _provider(live: bool) -> Iterator[FakeProvider | None]:
    if live:
        yield None
        return
    with FakeProvider() as fake:
        yield fake


class _Seeds:
    """Every random stream of a run, drawn from one seed in a fixed order."""

    def __init__(self, seed: int) -> None:
        seqs = np.random.SeedSequence(seed).spawn(7)
        self.orders = np.random.default_rng(seqs[0])
        self.chaos_seq = seqs[1]
        self.models = [int(s.generate_state(1)[0]) for s in seqs[2:4]]
        self.retries = [int(s.generate_state(1)[0]) for s in seqs[4:6]]
        self.router_seq = seqs[6]


class _Tally:
    """What the run counts request by request: first attempts, successes, totals, error
    kinds per path, cost, and the trailing window of attempts the live table shows."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.firsts: list[str] = []
        self.success_flags: list[bool] = []
        self.totals: Counter[str] = Counter()
        self.kinds: dict[str, Counter[str]] = {name: Counter() for name in names}
        self.cost = 0.0
        # Per request: the attempts (path, success, retries).
        self.window: deque[list[tuple[str, bool, int]]] = deque(maxlen=LIVE_WINDOW)

    def record(self, attempts: list[Outcome], ok: bool) -> None:
        self.firsts.append(attempts[0].path if attempts else "")
        self.success_flags.append(ok)
        for o in attempts:
            self.totals["attempts"] += 1
            self.totals["retries"] += o.retries
            self.totals["input_tokens"] += o.input_tokens or 0
            self.totals["output_tokens"] += o.output_tokens or 0
            self.cost += o.cost_usd or 0.0
            self.kinds[o.path][o.kind or "ok"] += 1
        self.window.append([(o.path, o.success, o.retries) for o in attempts])

    def snapshot(self, router: Router, state: _State, total: int, live: bool) -> DemoProgress:
        """The live table's figures now."""
        means = {p.path: p.mean for p in router.posteriors()}
        health = router.health()
        window = self.window
        first_counts = Counter(attempts[0][0] for attempts in window if attempts)
        tried: Counter[str] = Counter()
        won: Counter[str] = Counter()
        retried: Counter[str] = Counter()
        for attempts in window:
            for name, ok, retries in attempts:
                tried[name] += 1
                won[name] += ok
                retried[name] += retries
        true_rates = {m.name: m for m in MODELS}
        rows = []
        for name in self.names:
            model = true_rates.get(name)
            rows.append(
                PathProgress(
                    name=name,
                    true_rate=model.rate(state.degraded) if model and not live else None,
                    first_attempt_share=first_counts[name] / len(window) if window else 0.0,
                    attempts=tried[name],
                    success_rate=won[name] / tried[name] if tried[name] else None,
                    retries=retried[name],
                    breaker=health.get(name, "none"),
                    posterior_mean=means.get(name, math.nan),
                )
            )
        done = len(self.firsts)
        return DemoProgress(
            done=done,
            total=total,
            drop_at=state.drop_at,
            window=len(window),
            success_rate=sum(self.success_flags) / done if done else math.nan,
            paths=tuple(rows),
            attempts=self.totals["attempts"],
            retries=self.totals["retries"],
            http_calls=sum(state.http_calls.values()),
            input_tokens=self.totals["input_tokens"],
            output_tokens=self.totals["output_tokens"],
            cost_usd=self.cost,
            live=live,
        )

    def phase(self, label: str, start: int, end: int) -> PhaseSummary:
        return PhaseSummary(
            label=label,
            start=start,
            end=end,
            first_attempts=dict(Counter(self.firsts[start:end])),
            succeeded=sum(self.success_flags[start:end]),
        )


def _checked_requests(requests: int | None, free_form: float, live: bool) -> int:
    """``requests`` with its default, after checking the run's arguments."""
    if requests is None:
        requests = DEFAULT_LIVE_REQUESTS if live else DEFAULT_REQUESTS
    least = MIN_LIVE_REQUESTS if live else MIN_REQUESTS
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < least:
        raise ConfigurationError(f"demo: requests must be an int >= {least}")
    if not 0.0 <= free_form < 1.0:
        raise ConfigurationError(f"demo: free_form must be in [0, 1), got {free_form!r}")
    if live:
        _check_live_keys()
    return requests


def _model_paths(
    fake: FakeProvider | None,
    state: _State,
    seeds: _Seeds,
    live: bool,
    breaker_clock: Callable[[], float],
    opened: Counter[str],
) -> list[Path]:
    """The two SDK paths (against ``fake``, or the real APIs when it is ``None``), each
    with its retry policy and a breaker whose openings are counted in ``opened``."""

    def breaker(name: str) -> CircuitBreaker:
        b = CircuitBreaker(
            failure_threshold=3,
            failure_rate=0.5,
            window=10,
            min_calls=5,
            reset_timeout_s=RESET_S,
            clock=breaker_clock,
            name=name,
        )
        b.on_change(lambda n, _old, new: opened.update([n] if new is BreakerState.OPEN else []))
        return b

    def retry(i: int) -> RetryPolicy:
        return RetryPolicy(
            attempts=3,
            budget_s=60.0 if live else 2.0,
            initial=LIVE_RETRY_INITIAL_S if live else 0.005,
            max_wait=4.0 if live else 0.02,
            rng=seeds.retries[i],
        )

    breakers = {GPT: breaker(GPT), CLAUDE: breaker(CLAUDE)}
    timeout = LIVE_TIMEOUT_S if live else FAKE_TIMEOUT_S
    common: dict[str, Any] = {"schema": Order, "timeout": timeout}
    if fake is not None:
        for model, model_seed in zip(MODELS, seeds.models, strict=True):
            behave(fake, model, degraded=False, seed=model_seed)
        gpt_client: dict[str, Any] = {"client": fake.openai_client()}
        claude_client: dict[str, Any] = {"client": fake.anthropic_client()}
    else:
        gpt_client, claude_client = {}, {}
    gpt = openai_path(
        GPT,
        PROMPT,
        retry=retry(0),
        breaker=breakers[GPT],
        max_tokens=100,
        **gpt_client,
        **common,
    )
    claude = anthropic_path(
        CLAUDE,
        PROMPT,
        retry=retry(1),
        breaker=breakers[CLAUDE],
        max_tokens=100,
        **claude_client,
        **common,
    )
    chaos = np.random.default_rng(seeds.chaos_seq) if live else None
    return [_counted(gpt, state, chaos), _counted(claude, state)]


def run_demo(
    db: str | None = DEFAULT_DB,
    requests: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    free_form: float = 0.02,
    on_progress: Callable[[DemoProgress], None] | None = None,
    progress_every: int = 10,
    delay_s: float = 0.0,
    live: bool = False,
) -> DemoSummary:
    """Run the demo and return its summary.

    ``db`` is a SQLite file, deleted first so every run starts from nothing (``None``: an
    in-memory store). ``requests`` defaults to 2,000 (120 with ``live``). ``on_progress``
    receives a :class:`DemoProgress` every ``progress_every`` requests and after the
    last; ``delay_s`` paces the run for a human watching the live table. ``live=True``
    calls the real OpenAI and Anthropic APIs (keys from the environment) instead of
    the fake provider.
    """
    requests = _checked_requests(requests, free_form, live)
    started = time.perf_counter()
    file: FilePath | None = None
    if db is not None:
        file = sqlite_file(db)
        _remove_db(file)
    store = f"sqlite:///{file}" if file is not None else "memory://"

    drop_at = requests // 2
    # Simulated time, one second per request, ending at the real "now" (see the module
    # docstring); --live runs on real time instead.
    state = _State(start=time.time() - requests, drop_at=drop_at)
    clock: Callable[[], float] = time.time if live else state.clock
    breaker_clock: Callable[[], float] = time.monotonic if live else state.clock
    seeds = _Seeds(seed)
    tally = _Tally((GPT, CLAUDE, FALLBACK))
    opened: Counter[str] = Counter()

    with _provider(live) as fake:
        paths = _model_paths(fake, state, seeds, live, breaker_clock, opened)
        regex = Path(parse_strict, name=FALLBACK, timeout=None, retry=None, breaker=None)
        with Router(
            paths=paths,
            success_fn=is_valid_order,
            task=TASK,
            store=store,
            fallback=regex,
            half_life=half_life,
            learning=Learning(seed=np.random.default_rng(seeds.router_seq), clock=clock),
            # Route from the in-process cache only: a reload from the store at a wall-clock
            # moment would make the run depend on timing instead of on the seed alone.
            persistence=Persistence(refresh_interval=3600.0),
            observability=Observability(on_outcome=state.outcomes.append),
        ) as router:
            for i in range(requests):
                state.request = i
                if i == drop_at and fake is not None:
                    behave(fake, MODELS[0], degraded=True, seed=seeds.models[0] + 1)
                state.outcomes.clear()
                text = make_order(seeds.orders, free_form)
                try:
                    router.run(text=text)
                    ok = True
                except AllPathsFailed:
                    ok = False
                tally.record(list(state.outcomes), ok)
                if on_progress is not None and ((i + 1) % progress_every == 0 or i + 1 == requests):
                    on_progress(tally.snapshot(router, state, requests, live))
                if delay_s > 0:
                    time.sleep(delay_s)
            posteriors = tuple(router.posteriors())

    summary = _summary(
        tally, state, opened, requests, seed, half_life, posteriors, file, started, live
    )
    logger.info(
        "demo finished",
        extra={
            "requests": requests,
            "success_rate": summary.success_rate,
            "requests_to_shift": summary.requests_to_shift,
        },
    )
    return summary


def _summary(
    tally: _Tally,
    state: _State,
    opened: Counter[str],
    requests: int,
    seed: int,
    half_life: timedelta,
    posteriors: tuple[Posterior, ...],
    file: FilePath | None,
    started: float,
    live: bool,
) -> DemoSummary:
    """The run's summary: phases before, during and after the adaptation, and totals."""
    drop_at = state.drop_at
    adapt_end = min(requests, drop_at + ADAPT_REQUESTS)
    totals = tally.totals
    return DemoSummary(
        requests=requests,
        drop_at=drop_at,
        seed=seed,
        paths=tally.names,
        half_life_s=half_life.total_seconds(),
        succeeded=sum(tally.success_flags),
        attempts=totals["attempts"],
        phases=(
            tally.phase("healthy", 0, drop_at),
            tally.phase("adapting", drop_at, adapt_end),
            tally.phase("settled", adapt_end, requests),
        ),
        requests_to_shift=requests_to_shift(tally.firsts[drop_at:]),
        posteriors=posteriors,
        db_path=str(file) if file is not None else None,
        elapsed_s=time.perf_counter() - started,
        retries=totals["retries"],
        http_calls=dict(state.http_calls),
        kinds={name: dict(c) for name, c in tally.kinds.items()},
        breaker_opened=dict(opened),
        input_tokens=totals["input_tokens"],
        output_tokens=totals["output_tokens"],
        cost_usd=tally.cost,
        live=live,
    )
