"""The end-to-end demo: real SDK paths, a provider that degrades, traffic that moves.

Task: extract ``{"quantity", "item", "city"}`` from short order texts such as
``"2x widget to Berlin"``. Three paths:

- ``openai_path("gpt-4o", ...)`` and ``anthropic_path("claude-3-5-sonnet-20241022", ...)``,
  the real ``openai`` and ``anthropic`` SDK clients with a pydantic schema, a short
  timeout, jittered retries and a circuit breaker each;
- a regex as the final fallback: it handles the canonical ``"<n>x <item> to <city>"``
  form but not the few free-form orders ("could you ship three gizmo to Oslo please").

By default both models are served by a :class:`~adaptive_router.testing.FakeProvider`
that the demo starts on loopback: seeded, answering with the order the prompt asks for
(Claude in a fenced code block with prose around it), and failing now and then as real
APIs do (429 with Retry-After, 500, 529 overloaded, empty or malformed answers). Halfway
through, GPT-4o degrades: mostly 500s, with hangs past the timeout, dropped connections
and garbage. The router retries, the breaker opens, Thompson Sampling moves the traffic
to Claude — and the live table shows it.

Time for the router (posterior decay, timestamps) and the breakers is simulated, one
second per request, and anchored so the last request happens at the real current time:
afterwards ``adaptive-router posteriors`` and ``stats --since …`` read the demo's SQLite
file as if the traffic had just happened. With a fixed seed a run is reproducible: the
fake draws in request order and every HTTP call finishes far inside its timeout, or
hangs far past it.

``live=True`` calls the real APIs instead (``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY``
must be set; it costs a little money): real clocks, and since the real GPT-4o will not
degrade on cue, from the drop on most of its calls are failed on purpose, before any
request is sent, with a simulated server error.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.outcomes import ErrorKind, Outcome, Posterior
from adaptive_router.paths import Path
from adaptive_router.providers import anthropic_path, openai_path
from adaptive_router.resilience import BreakerState, CircuitBreaker, RetryPolicy
from adaptive_router.router import Router
from adaptive_router.testing import (
    FakeProvider,
    RecordedRequest,
    Step,
    delay,
    disconnect,
    empty,
    error,
    json_reply,
    malformed_json,
    reply,
    respond,
)

logger = logging.getLogger(__name__)

TASK = "order-extraction"
DEFAULT_DB = "adaptive_router_demo.db"
DEFAULT_REQUESTS = 2000
DEFAULT_LIVE_REQUESTS = 120
DEFAULT_SEED = 7
DEFAULT_HALF_LIFE = timedelta(minutes=2)
GPT = "gpt-4o"
CLAUDE = "claude-3-5-sonnet-20241022"
#: The path whose provider degrades halfway through.
DEGRADED = GPT
FALLBACK = "regex"
#: Requests in the trailing window of the live table.
LIVE_WINDOW = 100
#: The degraded path counts as abandoned once it gets under this share of first attempts
#: over a window of this many requests.
SHIFT_THRESHOLD = 0.10
SHIFT_WINDOW = 50
#: Requests right after the drop reported as their own phase ("adapting").
ADAPT_REQUESTS = 150
MIN_REQUESTS = 2 * ADAPT_REQUESTS
MIN_LIVE_REQUESTS = 20
#: Per-call timeout of the model paths against the fake (a healthy call takes ~2 ms).
FAKE_TIMEOUT_S = 0.2
LIVE_TIMEOUT_S = 20.0
#: First retry wait bound with --live (real APIs want real back-off; tests shorten it).
LIVE_RETRY_INITIAL_S = 0.5
#: What a hang lasts on the fake: far past the timeout, so it always times out.
HANG_S = 30.0
#: Seconds (simulated: requests) an open breaker waits before letting a probe through.
RESET_S = 60.0

PROMPT = (
    "Extract the order from the text below as a JSON object with the fields "
    "quantity (an integer), item and city. Answer with the JSON only.\n\nOrder: {text}"
)


class Order(BaseModel):
    """What the model paths must return (validated from their JSON)."""

    quantity: int = Field(gt=0)
    item: str = Field(min_length=1)
    city: str = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    """A fake model's per-call success rate before and after the drop."""

    name: str
    before: float
    after: float

    def rate(self, degraded: bool) -> float:
        """Probability that one HTTP call answers with the right order."""
        return self.after if degraded else self.before


MODELS = (
    SimulatedModel(GPT, 0.97, 0.10),
    SimulatedModel(CLAUDE, 0.92, 0.92),
)

ITEMS = ("widget", "gadget", "sprocket", "gizmo", "flange", "bolt pack", "hex key")
CITIES = ("Berlin", "Paris", "Lisbon", "Oslo", "Madrid", "Vienna", "Dublin", "Prague")
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_FREE_FORM = (
    "could you ship {word} {item} to {city} please",
    "{word} {item} for {city}, thanks",
)
_STRICT = re.compile(r"^\s*(\d+)\s*x\s+(.+?)\s+to\s+([A-Z][\w-]*)\s*$")
_LENIENT = re.compile(
    r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")\s*(?:x\s+|\s+)(.+?)\s+(?:to|for)\s+([A-Z][\w-]*)",
    re.IGNORECASE,
)


class SimulatedOutage(RuntimeError):
    """``--live`` only: a GPT-4o call failed on purpose after the drop (no request sent)."""

    kind = ErrorKind.SERVER_ERROR


def make_order(rng: np.random.Generator, free_form: float) -> str:
    """A random order text: mostly ``"<n>x <item> to <city>"``, sometimes free-form."""
    qty = int(rng.integers(1, 11))
    item = ITEMS[int(rng.integers(len(ITEMS)))]
    city = CITIES[int(rng.integers(len(CITIES)))]
    if rng.random() < free_form:
        word = list(NUMBER_WORDS)[qty - 1]
        template = _FREE_FORM[int(rng.integers(len(_FREE_FORM)))]
        return template.format(word=word, item=item, city=city)
    return f"{qty}x {item} to {city}"


def parse_strict(text: str) -> dict[str, Any] | None:
    """The regex fallback: only the canonical ``"<n>x <item> to <city>"`` form."""
    m = _STRICT.match(text)
    if m is None:
        return None
    return {"quantity": int(m.group(1)), "item": m.group(2), "city": m.group(3)}


def parse_lenient(text: str) -> dict[str, Any] | None:
    """What a model manages when it works: number words and "for <city>" too."""
    m = _LENIENT.search(text)
    if m is None:
        return None
    raw = m.group(1).lower()
    qty = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
    return {"quantity": qty, "item": m.group(2), "city": m.group(3)}


def is_valid_order(result: Any) -> bool:
    """The task's success function: an :class:`Order`, or a dict with a positive int
    quantity, an item and a city."""
    if isinstance(result, Order):
        return True  # validated by the schema already
    if not isinstance(result, dict):
        return False
    qty = result.get("quantity")
    return (
        isinstance(qty, int)
        and not isinstance(qty, bool)
        and qty > 0
        and bool(result.get("item"))
        and bool(result.get("city"))
    )


# -- the fake provider's behaviour ----------------------------------------------------------


def _answer(*, fenced: bool, input_tokens: int) -> Step:
    """A model that works: the order the prompt asks for, as JSON."""

    def answer(request: RecordedRequest) -> Step:
        text = request.prompt.rsplit("Order:", 1)[-1].strip()
        order = parse_lenient(text)
        out_tokens = 18 + len(text) // 8
        if order is None:
            return reply("I could not find an order in that text.", input_tokens=input_tokens)
        return json_reply(
            order,
            fence="json" if fenced else None,
            prose="Here is the order:",
            input_tokens=input_tokens,
            output_tokens=out_tokens,
        )

    return respond(answer)


def _behave(fake: FakeProvider, model: SimulatedModel, *, degraded: bool, seed: int) -> None:
    failure: list[Step | tuple[Step, float]]
    if model.name == GPT:
        success = _answer(fenced=False, input_tokens=62)
        if degraded:
            failure = [
                (error(500), 4.0),
                (error(503), 1.0),
                (delay(HANG_S), 0.5),
                (disconnect(), 1.0),
                (malformed_json('{"quantity": 2, "item": "widget", "city": '), 1.0),
            ]
        else:
            failure = [(error(429, retry_after=0.01), 2.0), (error(500), 1.0), malformed_json()]
    else:
        success = _answer(fenced=True, input_tokens=71)
        failure = [(error(529), 2.0), (empty(input_tokens=71), 1.0), reply("Sorry, no.")]
    fake.behave(
        model.name,
        model.rate(degraded),
        seed=seed,
        success=success,
        failure=failure,
    )


# -- progress and summary --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathProgress:
    """One row of the live table (figures over the trailing window)."""

    name: str
    #: The fake's per-call success rate for this model now (None: fallback, or --live).
    true_rate: float | None
    first_attempt_share: float
    attempts: int
    success_rate: float | None
    retries: int
    breaker: str
    posterior_mean: float


@dataclass(frozen=True, slots=True)
class DemoProgress:
    """A snapshot of the run for the live table: trailing-window figures, posteriors, totals."""

    done: int
    total: int
    drop_at: int
    window: int
    success_rate: float
    paths: tuple[PathProgress, ...]
    attempts: int = 0
    retries: int = 0
    http_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    live: bool = False


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """Requests ``start`` to ``end - 1`` (0-based): who got the first attempt, what succeeded."""

    label: str
    start: int
    end: int
    first_attempts: dict[str, int]
    succeeded: int

    @property
    def requests(self) -> int:
        """Requests in the phase."""
        return self.end - self.start

    def share(self, path: str) -> float:
        """The path's share of the phase's first attempts."""
        return self.first_attempts.get(path, 0) / self.requests if self.requests else math.nan

    @property
    def success_rate(self) -> float:
        """Share of the phase's requests that got a valid order."""
        return self.succeeded / self.requests if self.requests else math.nan


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run did; every number but the timings is reproducible from ``seed``."""

    requests: int
    drop_at: int
    seed: int
    paths: tuple[str, ...]
    half_life_s: float
    succeeded: int
    #: Path attempts (an attempt's retries included in it), over all requests.
    attempts: int
    phases: tuple[PhaseSummary, ...]
    #: Requests after the drop until the degraded path got under ``SHIFT_THRESHOLD`` of the
    #: first attempts over the next ``SHIFT_WINDOW`` requests; None if it never did.
    requests_to_shift: int | None
    posteriors: tuple[Posterior, ...]
    db_path: str | None
    elapsed_s: float
    retries: int = 0
    #: Calls that reached a model provider (every retry is one), per path.
    http_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Attempt outcomes per path and kind ("ok" for successes).
    kinds: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: How often each path's circuit breaker opened.
    breaker_opened: dict[str, int] = dataclasses.field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    live: bool = False

    @property
    def success_rate(self) -> float:
        """Share of all requests that got a valid order (any path, fallback included)."""
        return self.succeeded / self.requests

    @property
    def attempts_per_request(self) -> float:
        """Average number of paths tried per request."""
        return self.attempts / self.requests

    def phase(self, label: str) -> PhaseSummary:
        """The phase with this label (``"healthy"``, ``"adapting"``, ``"settled"``)."""
        for p in self.phases:
            if p.label == label:
                return p
        raise KeyError(label)


def requests_to_shift(firsts_after_drop: list[str], path: str = DEGRADED) -> int | None:
    """First k such that ``path`` had < SHIFT_THRESHOLD of requests k..k+SHIFT_WINDOW-1."""
    hits = np.array([1 if p == path else 0 for p in firsts_after_drop], dtype=np.int64)
    if len(hits) < SHIFT_WINDOW:
        return None
    sums = np.convolve(hits, np.ones(SHIFT_WINDOW, dtype=np.int64), mode="valid")
    below = np.flatnonzero(sums < SHIFT_THRESHOLD * SHIFT_WINDOW)
    return int(below[0]) if below.size else None


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
    if requests is None:
        requests = DEFAULT_LIVE_REQUESTS if live else DEFAULT_REQUESTS
    least = MIN_LIVE_REQUESTS if live else MIN_REQUESTS
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < least:
        raise ConfigurationError(f"demo: requests must be an int >= {least}")
    if not 0.0 <= free_form < 1.0:
        raise ConfigurationError(f"demo: free_form must be in [0, 1), got {free_form!r}")
    if live:
        _check_live_keys()
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
    seqs = np.random.SeedSequence(seed).spawn(7)
    orders_rng = np.random.default_rng(seqs[0])
    model_seeds = [int(s.generate_state(1)[0]) for s in seqs[2:4]]
    retry_seeds = [int(s.generate_state(1)[0]) for s in seqs[4:6]]
    names = (GPT, CLAUDE, FALLBACK)
    true_rates = {m.name: m for m in MODELS}
    opened: Counter[str] = Counter()

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
            rng=retry_seeds[i],
        )

    firsts: list[str] = []
    success_flags: list[bool] = []
    totals: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {name: Counter() for name in names}
    cost = 0.0
    # Per request: the attempts (path, success, retries).
    window: deque[list[tuple[str, bool, int]]] = deque(maxlen=LIVE_WINDOW)

    with _provider(live) as fake:
        breakers = {GPT: breaker(GPT), CLAUDE: breaker(CLAUDE)}
        timeout = LIVE_TIMEOUT_S if live else FAKE_TIMEOUT_S
        common: dict[str, Any] = {"schema": Order, "timeout": timeout}
        if fake is not None:
            for model, model_seed in zip(MODELS, model_seeds, strict=True):
                _behave(fake, model, degraded=False, seed=model_seed)
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
        chaos = np.random.default_rng(seqs[1]) if live else None
        paths = [_counted(gpt, state, chaos), _counted(claude, state)]
        regex = Path(parse_strict, name=FALLBACK, timeout=None, retry=None, breaker=None)

        def snapshot(router: Router) -> DemoProgress:
            means = {p.path: p.mean for p in router.posteriors()}
            health = router.health()
            first_counts = Counter(attempts[0][0] for attempts in window if attempts)
            tried: Counter[str] = Counter()
            won: Counter[str] = Counter()
            retried: Counter[str] = Counter()
            for attempts in window:
                for name, ok, retries in attempts:
                    tried[name] += 1
                    won[name] += ok
                    retried[name] += retries
            rows = []
            for name in names:
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
            done = len(firsts)
            return DemoProgress(
                done=done,
                total=requests,
                drop_at=drop_at,
                window=len(window),
                success_rate=sum(success_flags) / done if done else math.nan,
                paths=tuple(rows),
                attempts=totals["attempts"],
                retries=totals["retries"],
                http_calls=sum(state.http_calls.values()),
                input_tokens=totals["input_tokens"],
                output_tokens=totals["output_tokens"],
                cost_usd=cost,
                live=live,
            )

        with Router(
            paths=paths,
            success_fn=is_valid_order,
            task=TASK,
            store=store,
            fallback=regex,
            half_life=half_life,
            seed=np.random.default_rng(seqs[6]),
            clock=clock,
            on_outcome=state.outcomes.append,
            # Route from the in-process cache only: a reload from the store at a wall-clock
            # moment would make the run depend on timing instead of on the seed alone.
            refresh_interval=3600.0,
        ) as router:
            for i in range(requests):
                state.request = i
                if i == drop_at and fake is not None:
                    _behave(fake, MODELS[0], degraded=True, seed=model_seeds[0] + 1)
                state.outcomes.clear()
                text = make_order(orders_rng, free_form)
                try:
                    router.run(text=text)
                    ok = True
                except AllPathsFailed:
                    ok = False
                attempts = list(state.outcomes)
                firsts.append(attempts[0].path if attempts else "")
                success_flags.append(ok)
                for o in attempts:
                    totals["attempts"] += 1
                    totals["retries"] += o.retries
                    totals["input_tokens"] += o.input_tokens or 0
                    totals["output_tokens"] += o.output_tokens or 0
                    cost += o.cost_usd or 0.0
                    kinds[o.path][o.kind or "ok"] += 1
                window.append([(o.path, o.success, o.retries) for o in attempts])
                if on_progress is not None and ((i + 1) % progress_every == 0 or i + 1 == requests):
                    on_progress(snapshot(router))
                if delay_s > 0:
                    time.sleep(delay_s)
            posteriors = tuple(router.posteriors())

    def phase(label: str, start: int, end: int) -> PhaseSummary:
        return PhaseSummary(
            label=label,
            start=start,
            end=end,
            first_attempts=dict(Counter(firsts[start:end])),
            succeeded=sum(success_flags[start:end]),
        )

    adapt_end = min(requests, drop_at + ADAPT_REQUESTS)
    summary = DemoSummary(
        requests=requests,
        drop_at=drop_at,
        seed=seed,
        paths=names,
        half_life_s=half_life.total_seconds(),
        succeeded=sum(success_flags),
        attempts=totals["attempts"],
        phases=(
            phase("healthy", 0, drop_at),
            phase("adapting", drop_at, adapt_end),
            phase("settled", adapt_end, requests),
        ),
        requests_to_shift=requests_to_shift(firsts[drop_at:]),
        posteriors=posteriors,
        db_path=str(file) if file is not None else None,
        elapsed_s=time.perf_counter() - started,
        retries=totals["retries"],
        http_calls=dict(state.http_calls),
        kinds={name: dict(c) for name, c in kinds.items()},
        breaker_opened=dict(opened),
        input_tokens=totals["input_tokens"],
        output_tokens=totals["output_tokens"],
        cost_usd=cost,
        live=live,
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


# -- rendering -------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.0%}"


_BREAKER_STYLE = {"open": "bold red", "half_open": "yellow", "closed": "green"}


def progress_table(p: DemoProgress) -> Table:
    """The live table: per path, trailing-window traffic, success, retries, breaker state."""
    degraded = p.done > p.drop_at
    how = "failing on purpose" if p.live else "degraded"
    phase = (
        f"[red]{DEGRADED} {how} since request {p.drop_at + 1}[/]"
        if degraded
        else f"[green]all paths healthy; {DEGRADED} degrades at request {p.drop_at + 1}[/]"
    )
    source = "real APIs" if p.live else "fake provider"
    table = Table(
        title=f"{TASK} · {source} · request {p.done}/{p.total}\n{phase}",
        caption=(
            f"first attempts, tries, ok rate and retries over the last {p.window} requests; "
            "post. mean = posterior mean · totals: "
            f"{_pct(p.success_rate)} of requests succeeded, {p.attempts} attempts, "
            f"{p.retries} retries, {p.http_calls} API calls, "
            f"{p.input_tokens:,}+{p.output_tokens:,} tokens, ${p.cost_usd:.4f}"
        ),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("path", overflow="fold", min_width=10)
    table.add_column("API\nok now", justify="right")
    table.add_column("first\nattempts", justify="left", no_wrap=True)
    table.add_column("tries", justify="right")
    table.add_column("ok", justify="right")
    table.add_column("retries", justify="right")
    table.add_column("breaker", justify="center")
    table.add_column("post.\nmean", justify="right")
    for row in p.paths:
        share = row.first_attempt_share
        bar = "█" * round(share * 8)
        style = "red" if row.name == DEGRADED and degraded else None
        if row.name == FALLBACK:
            rate = "—"
        elif row.true_rate is None:
            rate = "?"
        else:
            rate = _pct(row.true_rate)
        table.add_row(
            Text(row.name, style=style or ""),
            rate,
            f"{share:>4.0%} {bar}",
            str(row.attempts),
            _pct(row.success_rate),
            str(row.retries),
            Text(row.breaker.replace("_", "-"), style=_BREAKER_STYLE.get(row.breaker, "dim")),
            "—" if math.isnan(row.posterior_mean) else f"{row.posterior_mean:.3f}",
        )
    return table


def print_summary(console: Console, s: DemoSummary) -> None:
    """The end-of-run report: success rate, traffic share per phase, time to shift, totals."""
    phases = Table(title="share of first attempts per phase")
    phases.add_column("path", no_wrap=True)
    for ph in s.phases:
        phases.add_column(f"{ph.label}\nrequests {ph.start + 1}–{ph.end}", justify="right")
    for name in s.paths:
        phases.add_row(name, *(_pct(ph.share(name)) for ph in s.phases))
    phases.add_row(
        Text("(requests succeeded)", style="bold"),
        *(_pct(ph.success_rate) for ph in s.phases),
    )
    what = "started failing" if s.live else f"dropped to {MODELS[0].after:.0%} API success"
    if s.requests_to_shift is None:
        shift = Text(
            f"{DEGRADED} kept ≥ {SHIFT_THRESHOLD:.0%} of first attempts after the drop",
            style="red",
        )
    else:
        shift = Text.assemble(
            f"{DEGRADED} {what} at request {s.drop_at + 1}; ",
            (f"{s.requests_to_shift} requests", "bold green"),
            f" later it had under {SHIFT_THRESHOLD:.0%} of first attempts "
            f"(over the next {SHIFT_WINDOW} requests).",
        )
    time_note = "real time" if s.live else "simulated time"
    console.print(
        Text.assemble(
            f"{s.requests} requests in {s.elapsed_s:.1f} s (seed {s.seed}, half-life "
            f"{s.half_life_s:g} s of {time_note}): ",
            (f"{s.success_rate:.1%} succeeded", "bold"),
            f", {s.attempts_per_request:.2f} attempts per request.",
        )
    )
    console.print(phases)
    console.print(shift)
    opened = ", ".join(f"{name} {n}×" for name, n in sorted(s.breaker_opened.items()))
    calls = ", ".join(f"{name} {n}" for name, n in s.http_calls.items())
    console.print(
        f"Totals: {s.attempts} attempts, {s.retries} retries, API calls: {calls or 'none'}; "
        f"breakers opened: {opened or 'never'}; tokens {s.input_tokens:,} in / "
        f"{s.output_tokens:,} out, ${s.cost_usd:.4f}"
        + (" (at list prices; no money was spent)." if not s.live else "."),
        highlight=False,
    )
    if s.db_path is not None:
        url = f"sqlite:///{s.db_path}"
        console.print(f"Outcomes are in {s.db_path}. Inspect them:")
        # soft_wrap: commands meant for copy and paste must not be broken across lines.
        for command in (
            f"adaptive-router posteriors --db {url} --task {TASK}",
            f"adaptive-router stats --db {url} --task {TASK} --since 10m",
        ):
            console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)


def run_with_display(
    console: Console,
    db: str | None = DEFAULT_DB,
    requests: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    table: bool = True,
    delay_s: float | None = None,
    live: bool = False,
) -> DemoSummary:
    """Run the demo, with a live table when ``table``, then print the summary.

    ``delay_s`` defaults to a pace that lets a person follow the live table (about
    8 seconds more for 2,000 requests) and to no delay without it. ``live`` calls the
    real APIs (see :func:`run_demo`).
    """
    if delay_s is None:
        delay_s = 0.004 if table and console.is_terminal and not live else 0.0
    if not table:
        summary = run_demo(db, requests, seed, delay_s=delay_s, live=live)
    else:
        with Live(console=console, refresh_per_second=12, transient=False) as display:

            def show(p: DemoProgress) -> None:
                display.update(progress_table(p))

            summary = run_demo(
                db,
                requests,
                seed,
                on_progress=show,
                delay_s=delay_s,
                live=live,
                progress_every=1 if live else 10,
            )
        if not console.is_terminal:
            # Off a terminal, Live prints its last frame without ending the line.
            console.line()
    print_summary(console, summary)
    return summary
