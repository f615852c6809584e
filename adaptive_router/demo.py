"""The end-to-end demo: a router learns that a model degraded and moves traffic away.

Task: extract ``{"quantity", "item", "city"}`` from short order texts such as
``"2x widget to Berlin"``. Three simulated model paths parse the text for real but
fail (raise, return nothing, or return a malformed order) according to a seeded draw
against a known success rate; halfway through, ``gpt-4o`` degrades from 0.95 to 0.30.
A regex is the final fallback: it always handles well-formed orders but not the few
free-form ones ("could you ship three gizmo to Oslo please").

Time is simulated (one second per request, injected as the router's ``clock``) and
anchored so that the last request happens at the real current time: afterwards
``adaptive-router posteriors`` and ``stats --since …`` read the demo's SQLite file as if
the traffic had just happened.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.outcomes import Posterior
from adaptive_router.paths import Path
from adaptive_router.router import Router

logger = logging.getLogger(__name__)

TASK = "order-extraction"
DEFAULT_DB = "adaptive_router_demo.db"
DEFAULT_REQUESTS = 2000
DEFAULT_SEED = 7
DEFAULT_HALF_LIFE = timedelta(minutes=2)
#: The path whose success rate drops halfway through.
DEGRADED = "gpt-4o"
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


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    """A model path's known success rate before and after the drop."""

    name: str
    before: float
    after: float

    def rate(self, degraded: bool) -> float:
        """Probability that a call succeeds."""
        return self.after if degraded else self.before


MODELS = (
    SimulatedModel(DEGRADED, 0.95, 0.30),
    SimulatedModel("claude-3-5-sonnet", 0.85, 0.85),
    SimulatedModel("gpt-4o-mini", 0.60, 0.60),
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


class SimulatedAPIError(RuntimeError):
    """What a simulated model raises when its draw says the call fails this way."""


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
    """The task's success function: a dict with a positive int quantity, an item, a city."""
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


class _State:
    """What the simulated paths share with the demo loop for the current request."""

    def __init__(self, start: float, drop_at: int) -> None:
        self.start = start
        self.drop_at = drop_at
        self.request = 0
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.start + self.request

    @property
    def degraded(self) -> bool:
        return self.request >= self.drop_at


def _model_path(model: SimulatedModel, state: _State, rng: np.random.Generator) -> Path:
    def call(text: str) -> dict[str, Any] | None:
        state.calls.append(model.name)
        if rng.random() < model.rate(state.degraded):
            return parse_lenient(text)
        # The three ways real model calls fail: an API error, an empty answer, and an
        # answer that parses but is not a valid order (success_fn rejects it).
        mode = rng.random()
        if mode < 0.4:
            raise SimulatedAPIError(f"{model.name}: 503 upstream overloaded")
        if mode < 0.7:
            return None
        parsed = parse_lenient(text) or {}
        return {"item": parsed.get("item"), "city": parsed.get("city"), "quantity": "some"}

    return Path(call, name=model.name, model=model.name)


def _regex_path(state: _State) -> Path:
    def call(text: str) -> dict[str, Any] | None:
        state.calls.append(FALLBACK)
        return parse_strict(text)

    return Path(call, name=FALLBACK)


@dataclass(frozen=True, slots=True)
class PathProgress:
    """One row of the live table."""

    name: str
    true_rate: float | None
    first_attempt_share: float
    attempts: int
    success_rate: float | None
    posterior_mean: float


@dataclass(frozen=True, slots=True)
class DemoProgress:
    """A snapshot of the run for the live table: trailing-window figures and posteriors."""

    done: int
    total: int
    drop_at: int
    window: int
    success_rate: float
    paths: tuple[PathProgress, ...]


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
    """What a demo run did; every number is reproducible from ``seed``."""

    requests: int
    drop_at: int
    seed: int
    paths: tuple[str, ...]
    half_life_s: float
    succeeded: int
    attempts: int
    phases: tuple[PhaseSummary, ...]
    #: Requests after the drop until the degraded path got under ``SHIFT_THRESHOLD`` of the
    #: first attempts over the next ``SHIFT_WINDOW`` requests; None if it never did.
    requests_to_shift: int | None
    posteriors: tuple[Posterior, ...]
    db_path: str | None
    elapsed_s: float

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


def run_demo(
    db: str | None = DEFAULT_DB,
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    *,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    free_form: float = 0.02,
    on_progress: Callable[[DemoProgress], None] | None = None,
    progress_every: int = 10,
    delay_s: float = 0.0,
) -> DemoSummary:
    """Run the demo and return its summary.

    ``db`` is a SQLite file, deleted first so every run starts from nothing (``None``: an
    in-memory store). ``on_progress`` receives a :class:`DemoProgress` every
    ``progress_every`` requests and after the last; ``delay_s`` paces the run for a
    human watching the live table.
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < MIN_REQUESTS:
        raise ConfigurationError(f"demo: requests must be an int >= {MIN_REQUESTS}")
    if not 0.0 <= free_form < 1.0:
        raise ConfigurationError(f"demo: free_form must be in [0, 1), got {free_form!r}")
    started = time.perf_counter()
    file: FilePath | None = None
    if db is not None:
        file = sqlite_file(db)
        _remove_db(file)
    store = f"sqlite:///{file}" if file is not None else "memory://"

    drop_at = requests // 2
    # The last simulated request lands on the real current time, so that afterwards
    # `stats --since 10m` and `posteriors` (which use the wall clock) see recent traffic.
    state = _State(start=time.time() - requests, drop_at=drop_at)
    orders_seq, router_seq, *model_seqs = np.random.SeedSequence(seed).spawn(2 + len(MODELS))
    orders_rng = np.random.default_rng(orders_seq)
    paths = [
        _model_path(m, state, np.random.default_rng(s))
        for m, s in zip(MODELS, model_seqs, strict=True)
    ]
    names = (*(p.name or "" for p in paths), FALLBACK)
    true_rates = {m.name: m for m in MODELS}

    firsts: list[str] = []
    succeeded = 0
    attempts = 0
    success_flags: list[bool] = []
    # Per request: (first path, [(path, success) for each attempt]).
    window: deque[tuple[str, list[tuple[str, bool]]]] = deque(maxlen=LIVE_WINDOW)

    def snapshot(router: Router) -> DemoProgress:
        means = {p.path: p.mean for p in router.posteriors()}
        first_counts = Counter(first for first, _ in window)
        tried: Counter[str] = Counter()
        won: Counter[str] = Counter()
        for _, calls in window:
            for name, ok in calls:
                tried[name] += 1
                won[name] += ok
        rows = []
        for name in names:
            model = true_rates.get(name)
            rows.append(
                PathProgress(
                    name=name,
                    true_rate=model.rate(state.degraded) if model else None,
                    first_attempt_share=first_counts[name] / len(window) if window else 0.0,
                    attempts=tried[name],
                    success_rate=won[name] / tried[name] if tried[name] else None,
                    posterior_mean=means.get(name, math.nan),
                )
            )
        done = len(firsts)
        return DemoProgress(
            done=done,
            total=requests,
            drop_at=drop_at,
            window=len(window),
            success_rate=succeeded / done if done else math.nan,
            paths=tuple(rows),
        )

    with Router(
        paths=paths,
        success_fn=is_valid_order,
        task=TASK,
        store=store,
        fallback=_regex_path(state),
        half_life=half_life,
        seed=np.random.default_rng(router_seq),
        clock=state.clock,
        # Route from the in-process cache only: a reload from the store at a wall-clock
        # moment would make the run depend on timing instead of on the seed alone.
        refresh_interval=3600.0,
    ) as router:
        for i in range(requests):
            state.request = i
            state.calls = []
            text = make_order(orders_rng, free_form)
            try:
                router.run(text)
                ok = True
            except AllPathsFailed:
                ok = False
            calls = state.calls
            firsts.append(calls[0])
            attempts += len(calls)
            succeeded += ok
            success_flags.append(ok)
            # Paths are tried until one succeeds, so only the last call can have succeeded.
            window.append(
                (calls[0], [(name, ok and j == len(calls) - 1) for j, name in enumerate(calls)])
            )
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
        succeeded=succeeded,
        attempts=attempts,
        phases=(
            phase("healthy", 0, drop_at),
            phase("adapting", drop_at, adapt_end),
            phase("settled", adapt_end, requests),
        ),
        requests_to_shift=requests_to_shift(firsts[drop_at:]),
        posteriors=posteriors,
        db_path=str(file) if file is not None else None,
        elapsed_s=time.perf_counter() - started,
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


def progress_table(p: DemoProgress) -> Table:
    """The live table: per path, trailing-window traffic and success, posterior mean."""
    degraded = p.done > p.drop_at
    phase = (
        f"[red]{DEGRADED} degraded at request {p.drop_at + 1}[/]"
        if degraded
        else f"[green]all paths healthy; {DEGRADED} degrades at request {p.drop_at + 1}[/]"
    )
    table = Table(
        title=f"{TASK} · request {p.done}/{p.total} · {phase}",
        caption=(
            f"traffic and success over the last {p.window} requests · "
            f"requests that succeeded so far: {_pct(p.success_rate)}"
        ),
    )
    table.add_column("path")
    table.add_column("true rate now", justify="right")
    table.add_column(f"first attempts (last {p.window})", justify="right")
    table.add_column("attempts", justify="right")
    table.add_column("success rate", justify="right")
    table.add_column("posterior mean", justify="right")
    for row in p.paths:
        share = row.first_attempt_share
        bar = "█" * round(share * 20)
        style = "red" if row.name == DEGRADED and degraded else None
        table.add_row(
            Text(row.name, style=style or ""),
            _pct(row.true_rate) if row.true_rate is not None else "fallback",
            f"{share:>4.0%} {bar:<20}",
            str(row.attempts),
            _pct(row.success_rate),
            "—" if math.isnan(row.posterior_mean) else f"{row.posterior_mean:.3f}",
        )
    return table


def print_summary(console: Console, s: DemoSummary) -> None:
    """The end-of-run report: success rate, traffic share per phase, time to shift."""
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
    if s.requests_to_shift is None:
        shift = Text(
            f"{DEGRADED} kept ≥ {SHIFT_THRESHOLD:.0%} of first attempts after the drop",
            style="red",
        )
    else:
        shift = Text.assemble(
            f"{DEGRADED} dropped to {MODELS[0].after:.0%} success at request {s.drop_at + 1}; ",
            (f"{s.requests_to_shift} requests", "bold green"),
            f" later it had under {SHIFT_THRESHOLD:.0%} of first attempts "
            f"(over the next {SHIFT_WINDOW} requests).",
        )
    console.print(
        Text.assemble(
            f"{s.requests} requests in {s.elapsed_s:.1f} s (seed {s.seed}, half-life "
            f"{s.half_life_s:g} s of simulated time): ",
            (f"{s.success_rate:.1%} succeeded", "bold"),
            f", {s.attempts_per_request:.2f} attempts per request.",
        )
    )
    console.print(phases)
    console.print(shift)
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
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    *,
    live: bool = True,
    delay_s: float | None = None,
) -> DemoSummary:
    """Run the demo, with a live table when ``live``, then print the summary.

    ``delay_s`` defaults to a pace that lets a person follow the live table (about
    8 seconds for 2,000 requests) and to no delay without it.
    """
    if delay_s is None:
        delay_s = 0.004 if live and console.is_terminal else 0.0
    if not live:
        summary = run_demo(db, requests, seed, delay_s=delay_s)
    else:
        with Live(console=console, refresh_per_second=12, transient=False) as display:

            def show(p: DemoProgress) -> None:
                display.update(progress_table(p))

            summary = run_demo(db, requests, seed, on_progress=show, delay_s=delay_s)
        if not console.is_terminal:
            # Off a terminal, Live prints its last frame without ending the line.
            console.line()
    print_summary(console, summary)
    return summary
