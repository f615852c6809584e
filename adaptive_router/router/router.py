"""The Router: Thompson Sampling over durable Beta posteriors, with fallbacks.

The facade: it validates, wires the collaborators of this package together and runs
the request loops; the decisions live in ``settings``, ``ranking``, ``attempts``,
``judging`` and ``check``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router import forks
from adaptive_router._checks import seconds
from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.features import SparseVector
from adaptive_router.feedback.pending import Feedback
from adaptive_router.feedback.reporter import MAX_METADATA_BYTES, Reporter, check_half_life
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.metering.bill import start_capture
from adaptive_router.observe.metrics import MetricsServer, PrometheusMetrics, serve_metrics
from adaptive_router.outcomes import (
    Decision,
    PathWindowStats,
    Posterior,
)
from adaptive_router.paths import Path
from adaptive_router.policies.logged_decision import DecisionDraft
from adaptive_router.policies.objectives import Objective
from adaptive_router.policies.pacing import SpendStatus
from adaptive_router.resilience import to_daemon_thread
from adaptive_router.resilience.timeouts import hold_workers
from adaptive_router.router.attempts import AttemptContext, Attempts, awalk, new_request_id, walk
from adaptive_router.router.budgets import Budget
from adaptive_router.router.check import PathCheck, check_paths
from adaptive_router.router.decisions import DecisionLog
from adaptive_router.router.heartbeat import Heartbeat, start_heartbeat
from adaptive_router.router.judging import Judge
from adaptive_router.router.observing import build_observers, events, follow_breakers
from adaptive_router.router.options import Learning, Observability, Persistence, Resilience
from adaptive_router.router.ranking import Ranking
from adaptive_router.router.recorder import Recorder
from adaptive_router.router.settings import (
    PathSettings,
    RouterConfig,
    resolve_settings,
    router_config,
)
from adaptive_router.stores import FeatureEvidence, InProcess, SpendTotals, Store, open_store

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from adaptive_router.reports import CostReport

#: The router's log lines (its own and its collaborators', through the ThrottledLog it
#: hands them) keep the name they had when the router was one module.
logger = logging.getLogger(__name__.rpartition(".")[0])

__all__ = ["MAX_METADATA_BYTES", "Router"]

#: Seconds (router clock) during which repeats of a warning are counted, not logged.
LOG_WINDOW_S = 60.0


def _open(store: str | Store | Engine | None, cfg: RouterConfig) -> tuple[Store, bool, bool]:
    """The router's store, whether the router owns it, and whether it is connected: reached
    now (or raise), unless ``start_without_store``; a connected store has the task's
    half-life registered and checked before any thread starts, so a refused router leaves
    nothing behind."""
    offline = cfg.persistence.start_without_store
    opened = open_store(store, start_offline=offline)
    owns = not isinstance(store, Store)
    try:
        if cfg.objective.paced and not isinstance(opened, SpendTotals):
            raise ConfigurationError(
                f"objective: a spend target needs a store that keeps spend totals "
                f"(SpendTotals: the memory and SQL stores do); {opened!r} does not"
            )
        if cfg.features is not None and not isinstance(opened, FeatureEvidence):
            raise ConfigurationError(
                f"features: a feature router needs a store that keeps feature statistics "
                f"(FeatureEvidence: the memory and SQL stores do); {opened!r} does not"
            )
        if not (opened.connected or offline):
            opened.connect()  # a Store given unconnected: reach it now, or raise
        if opened.connected:
            _start_checks(opened, cfg)
    except Exception:
        if owns:
            opened.close()
        raise
    return opened, owns, opened.connected


def _start_checks(store: Store, cfg: RouterConfig) -> None:
    """What a router does once its store is reached: register or check the task's
    half-life, and record its spend target (the CLI and dashboard read it there)."""
    check_half_life(store, cfg.task, cfg.half_life, "Router")
    target = cfg.objective.target_usd_per_request
    if target is not None and isinstance(store, SpendTotals):
        stored = store.spend_target(cfg.task)
        if stored is not None and stored != target:
            logger.warning(
                "task %s: spend target changed from %g to %g USD per request (routers still "
                "running with the old one price by it until they restart)",
                cfg.task,
                stored,
                target,
                extra={"task": cfg.task, "old_target": stored, "target": target},
            )
        if stored != target:
            store.set_spend_target(cfg.task, target)


class Router:
    """Routes each request to the path most likely to succeed now.

    Parameters
    ----------
    paths:
        Callables or :class:`Path` objects that can each do the task. Names must be unique.
    success_fn:
        ``success_fn(result) -> bool`` (or 0/1): did the path's result do the job? Give it
        or ``score_fn``, not both. If it raises, the attempt is recorded as
        ``success_fn_error``: no evidence about the path, and the next path is tried.
    task:
        Name under which evidence is kept; routers sharing a task and store learn together.
        Required.
    store:
        ``"memory://"``, an SQLAlchemy URL (``sqlite:///file.db``,
        ``postgresql://user@host/db``), an ``Engine`` or a :class:`Store`.
        Default: ``sqlite:///adaptive_router.db``.
    fallback:
        A final path, always tried last and never ranked by learning.
    objective:
        What the order of learned paths minimizes on the way to a success: ``"success"``
        (default: plain Thompson Sampling on success), ``"cost"`` (expected dollars to a
        success, ascending ``cost / θ``), ``"latency"`` (expected time to a success) or an
        :class:`~adaptive_router.policies.objectives.Objective` (dollars plus a stated price of a
        second). θ is still drawn from each path's Beta posterior. Costs and latencies per
        attempt are the paths' measured decayed means (in a context, its own on the task
        level's, mixed like success), else their ``Path(expected_cost_usd=...,
        expected_latency_ms=...)`` (a path with a ``model`` and ``expected_tokens`` gets
        that model's price for them, priced once here), else the mean of the paths with
        data or priors, else all equal.
    score_fn:
        Instead of ``success_fn`` (give exactly one): ``score_fn(result) -> [0, 1]`` (or
        ``None`` = unknown); fractional evidence, success when ``score >=
        Learning.min_score``.
    features:
        ``features(*args, **kwargs) -> {name: number | str | bool}`` (strings and booleans
        as indicators), e.g. :func:`adaptive_router.features.text_features` ``()``: rank
        each request by a contextual policy on its hashed features (per path a Bayesian
        linear model, its bias started from the path's Beta evidence, the same half-life;
        ``objective`` "success" or a spend target). The dimension is ``features.dim``
        when it has one, else 256. Inside :meth:`run` a feature function that raises or
        returns bad features does not fail the request: it is ranked without features
        (each path's success rate) and one warning per minute names the problem;
        :meth:`choose` raises :class:`~adaptive_router.features.FeatureError` instead.
    half_life:
        ``timedelta`` (or seconds): evidence that old counts half. ``None`` = never forget.
        Every router of a task must use the same half-life.
    budget:
        A :class:`Budget`: ``max_attempts``, ``request_timeout`` and ``max_cost_usd`` per
        request (default: no limit). A learned path refused by a budget is recorded as a
        skipped attempt of kind ``max_attempts``, ``request_timeout`` or ``over_budget``;
        the final fallback is never refused and keeps its own timeout.
    learning:
        A :class:`Learning`: ``prior``, ``explore``, ``policy``, ``seed``, ``clock``,
        ``min_score``, ``context_fn``, ``max_contexts``, ``context_prior_strength``.
    resilience:
        A :class:`Resilience`: the router-wide ``timeout``, ``retry`` and ``breaker`` of
        every path that leaves them at ``INHERIT``.
    persistence:
        A :class:`Persistence`: ``durability``, ``flush_interval``, ``refresh_interval``,
        ``max_buffer``, ``pending_ttl``, ``on_expired``, ``start_without_store`` (start
        while the database is unreachable: route from the priors, buffer, and run the
        start-up checks once it is reached), ``log_decisions``.
    observability:
        An :class:`Observability`: ``metrics``, ``metrics_registry``, ``tracing``,
        ``alerts``, ``on_alert``, ``observers``, ``on_outcome``, ``capture_usage``,
        ``prices``, ``heartbeat``.

    Each option group checks its fields where it is built. While it is open, a router
    holds the SDK hooks of usage capture (the last one closed removes them), its threads
    (writer, heartbeat, propensities; the timed calls' workers with the last router) and
    its exit hook; :meth:`close` ends them all.
    """

    def __init__(
        self,
        paths: Sequence[Path | Callable[..., Any]],
        success_fn: Callable[[Any], Any] | None = None,
        task: str | None = None,
        store: str | Store | Engine | None = None,
        fallback: Path | Callable[..., Any] | None = None,
        objective: str | Objective = "success",
        *,
        score_fn: Callable[[Any], Any] | None = None,
        features: Callable[..., Any] | None = None,
        half_life: timedelta | float | None = None,
        budget: Budget | None = None,
        learning: Learning | None = None,
        resilience: Resilience | None = None,
        persistence: Persistence | None = None,
        observability: Observability | None = None,
    ) -> None:
        groups = (budget, learning, resilience, persistence, observability)
        cfg = router_config(
            paths, success_fn, task, fallback, objective, score_fn, features, half_life, groups
        )
        #: The validated parameters: the option groups and what derives from them.
        self.config = cfg
        # Set before the writer starts: its refresh reads them (see _after_fork_in_child).
        self._forked, self._resuming = False, threading.Lock()
        # Unseeded: a forked child then draws numbers of its own.
        self._entropy = cfg.learning.seed is None
        self.paths, self.fallback, self.task = cfg.paths, cfg.fallback, cfg.task
        self.clock, self.policy, self.budget = cfg.clock, cfg.policy, cfg.budget
        #: What the order of learned paths minimizes (``objective.name``: "success", ...).
        self.objective: Objective = cfg.objective
        learn, pers, obs = cfg.learning, cfg.persistence, cfg.observability
        self._fallback_name = self.fallback.name if self.fallback is not None else None
        self._by_name = {p.name: p for p in self.paths}
        if self.fallback is not None:
            self._by_name[self.fallback.name] = self.fallback
        self.store, self._owns_store, connected = _open(store, cfg)
        self._closed = False
        #: The Prometheus observer (None when prometheus-client is not installed or off).
        self.metrics: PrometheusMetrics | None
        self._observers, self.metrics, self.alerts = build_observers(obs, self.clock)
        heard = events(self._observers, self.task, self.posteriors)
        # Repetitive warnings (a path failing on every request, a judge that raises) log
        # the first per key and window, then a count; observers still see every event.
        self._log = ThrottledLog(logger, LOG_WINDOW_S, self.clock, heard.suppressed)
        decisions = DecisionLog(self.store, self.task) if pers.log_decisions else None
        self._decisions = decisions
        self._pricer = obs.pricer
        models, costs = _declared(self._by_name.values())
        self._reporter = Reporter(
            self.task,
            self.store,
            half_life=self.half_life,
            prices=self._pricer,
            models=models,
            costs=costs,
            clock=self.clock,
            features_dim=None if cfg.contextual is None else cfg.contextual.dim,
            check=False,  # the router registers and checks its own (above, or on connect)
        )
        self._feedback = Feedback(
            self.task,
            self.store,
            self._reporter,
            self._observers,
            pending_ttl=pers.pending_ttl_s,
            on_expired=pers.on_expired,
            half_life=self.half_life,
            clock=self.clock,
            log=logger,
            max_held=pers.max_buffer,
        )
        # The recorder's flush does the feedback's deferred store work; the feedback is
        # handed the recorder (its store gate) with each call.
        self._recorder = Recorder(
            self.store,
            self.task,
            self.half_life,
            durability=pers.durability,
            clock=self.clock,
            flush_interval=pers.flush_interval_s,
            refresh_interval=pers.refresh_interval_s,
            max_buffer=pers.max_buffer,
            connected=connected,
            log=self._log,
            # Started without its store: the same registration and check, once reached.
            on_connect=None if connected else self._check_half_life,
            on_written=decisions.written if decisions and decisions.takes_rows else None,
            on_drop=heard.dropped,
            on_reject=heard.rejected,
            on_refresh=heard.refreshed,
            track_spend=self.objective.paced,
            after_flush=self._feedback.sync,
        )
        # Undone by close() (breakers outlive routers; hooks, threads, exit hook must not).
        self._unsubscribe: list[Callable[[], None]] = [hold_workers()]
        self._settings = resolve_settings(
            self._by_name.values(), self.fallback, cfg.resilience, learn.seed
        )
        by_features = None
        if cfg.contextual is not None and cfg.features is not None:
            # Loaded only for a feature router: the contextual policy needs scipy.
            from adaptive_router.router.features import feature_ranking

            names = [p.name or "" for p in self.paths]
            by_features = feature_ranking(cfg.features, cfg.contextual, names, learn.prior)
            self._recorder.attach_features(by_features.models)
        #: The request's order of paths (read-only collaborator: evidence and the draw).
        self.ranking = Ranking(
            self.paths,
            self.fallback,
            self.policy,
            cfg.rng,
            self._recorder,
            self._settings,
            learn.context_prior_strength,
            learn.context_fn,
            learn.max_contexts,
            pricer=self._pricer,
            log_decisions=self._decisions is not None,
            features=by_features,
            budget_prices=self.budget.max_cost_usd is not None,
        )
        self._unsubscribe.extend(self.ranking.track_breakers())
        if self._decisions is not None:
            self._unsubscribe.append(self._decisions.close)
        self._judge = Judge(
            self.task,
            cfg.success_fn,
            cfg.score_fn,
            learn.min_score,
            lambda path, ctx, attempt: self.ranking.mean(path, self.clock(), ctx, attempt),
            self._log,
        )
        self._core = AttemptContext(
            self.task,
            self._settings,
            self._judge,
            self._pricer,
            self._observers,
            self._log,
            self.clock,
            capture=obs.capture_usage,
            rebill=self._recorder.rebill,
        )
        self._unsubscribe.append(start_capture(obs.capture_usage))
        if self.metrics is not None:
            buffered = self.metrics.bind(self.task, lambda: self.buffered_outcomes, self.health())
            self._unsubscribe.append(buffered)
        self._unsubscribe.extend(follow_breakers(self._observers, self.task, self._settings))
        self._heartbeat = _heartbeat(self, obs.heartbeat_s)
        if self._heartbeat is not None:
            self._unsubscribe.append(self._heartbeat.stop)
        forks.follow(self)

    def _check_half_life(self, _stored: object) -> None:
        _start_checks(self.store, self.config)

    def __repr__(self) -> str:
        return (
            f"Router(task={self.task!r}, paths={[p.name for p in self.paths]}, "
            f"fallback={self.fallback.name if self.fallback else None!r}, store={self.store!r})"
        )

    @property
    def half_life(self) -> float | None:
        """Seconds after which evidence counts half (None = never forget): the policy's."""
        return self.policy.half_life

    @property
    def path_settings(self) -> Mapping[str, PathSettings]:
        """Each path's resolved timeout, retry policy, breaker and rate limit, by name."""
        return self._settings

    # -- a forked child (see adaptive_router.forks) ----------------------------------
    def _after_fork_in_child(self) -> None:
        """Its collaborators renewed their locks and buffers in their own hooks; the
        threads start at the first use, so a child that never routes starts nothing."""
        self._forked, self._resuming = True, threading.Lock()
        if self._entropy:  # unseeded: workers must not all make the parent's next draws
            self.config.rng.bit_generator.state = np.random.default_rng().bit_generator.state

    def _resume(self) -> None:
        """First use in a forked child: start this process's writer and heartbeat."""
        with self._resuming:
            if self._forked and not self._closed:
                self._recorder.start()
                if self._heartbeat is not None:
                    self._heartbeat.start()
            self._forked = False

    # -- the request core shared by run and arun ---------------------------------
    def _begin(
        self,
        context: str = "",
        x: SparseVector | None = None,
        estimates: list[float | None] | None = None,
    ) -> tuple[str, Iterable[Path], DecisionDraft | None]:
        if self._closed:
            raise RuntimeError("this Router is closed; create a new one")
        if self._forked:
            self._resume()
        rid = new_request_id()
        if self._observers.items:  # the list itself: no __bool__ call per request
            self._observers.emit("request_started", self.task, rid)
        return rid, *self.ranking.rank(self.clock(), context, x, estimates)

    # -- requests ----------------------------------------------------------------
    def _attempts(self, context: str | None, args: Any, kwargs: Any) -> Attempts:
        ranking = self.ranking
        ctx = ranking.context(context, args, kwargs)
        x = ranking.run_features(args, kwargs, self._log) if ranking.features else None
        est = ranking.request_costs(args, kwargs, self._log) if ranking.prices_requests else None
        rid, order, decision = self._begin(ctx, x, est)
        budget = None
        if self.budget.active:
            priced = self.budget.max_cost_usd is not None
            costs = ranking.known_costs(self.clock(), ctx, est) if priced else None
            budget = self.budget.start(self._fallback_name, costs)
        req = Attempts(self._core, rid, ctx, order, args, kwargs, budget, decision)
        if x is not None:
            req.features = ranking.encode(x)
        return req

    def _record(self, req: Attempts) -> bool:
        """Record the request's attempts; True when the recorder asks its caller to flush
        now (backpressure: the store is up but behind), which ``run`` does in its thread
        and ``arun`` in a worker thread."""
        attempts = req.attempts
        if req.features is not None:
            for a in attempts:
                if a.attempt == 1:  # the first executed path: what the features ranked
                    a.features = req.features
                    break
        return self._recorder.record(
            [a for a in attempts if not a.skipped] if req.skipped else attempts
        )

    def _result(self, req: Attempts) -> Any:
        attempts = req.attempts
        ok = bool(attempts) and attempts[-1].success
        if self._observers.items:
            self._observers.emit("request_finished", self.task, req.rid, attempts, ok)
        if not ok:
            raise AllPathsFailed(self.task, req.rid, attempts)
        return req.value

    def run(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """Call paths in sampled order until one succeeds; return its result.

        Each attempt goes breaker -> rate limit -> retry(timeout(call)) -> success_fn.
        Raises :class:`AllPathsFailed` (with every attempt, skipped ones included) when
        none succeeds. ``context`` (or ``context_fn``) picks the posteriors to route by.
        A path's ``estimate_cost_usd`` that raises or returns a bad value does not fail
        the request: it is ranked by the learned costs, with one warning per window.
        """
        req = self._attempts(context, args, kwargs)
        walk(req, args, kwargs)
        if self._record(req):
            self._recorder.relieve()
        return self._result(req)

    async def arun(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """The asyncio twin of :meth:`run`: async paths (or a path's ``afn``) are awaited;
        sync ones run in a worker thread; waits (retries, rate limits) are asyncio sleeps,
        a Redis rate limit is reached with its asyncio client, and a database write
        (``durability="sync"``, or a flush when the write buffer is behind) runs in a
        worker thread, so the event loop never blocks."""
        req = self._attempts(context, args, kwargs)
        await awalk(req, args, kwargs)
        if self._recorder.sync and not isinstance(self.store, InProcess):
            # A blocking database write must not stall the event loop; a memory store's
            # is a dict update, not worth a thread hop.
            flush = await to_daemon_thread(self._record, req)
        else:
            flush = self._record(req)
        if flush:
            await to_daemon_thread(self._recorder.relieve)
        return self._result(req)

    def check(self, samples: Iterable[Any]) -> list[PathCheck]:
        """Run every path — the final fallback included — on each sample, without routing.

        A sample that is a ``dict`` is passed as keyword arguments, a ``tuple`` as
        positional arguments, anything else as the single argument; a ``dict`` with only
        the keys ``"$args"`` (a list) and ``"$kwargs"`` (a mapping) gives both, which is how
        a JSON Lines file for ``adaptive-router check`` passes several positional
        arguments. Timeouts, retries and ``success_fn`` apply as in :meth:`run` (the same
        request core walks each attempt); breakers and rate limits are bypassed and nothing
        is recorded, observed or learned, so a fallback is tested on its own.
        """
        return check_paths(self._by_name.values(), self._core, samples)

    # -- reading and reporting -----------------------------------------------------
    def costs(self, window: timedelta = timedelta(hours=24)) -> CostReport:
        """Spend over a recent window: per path, tokens, cost per request and per 1,000
        requests, retries and fallbacks included; unknown costs counted apart."""
        from adaptive_router.reports import cost_report  # the reports load when asked for

        secs = seconds(window, "window", allow_none=False) or 0.0
        self.flush()
        return cost_report(self.store, self.task, self.clock() - secs)

    def serve_metrics(self, port: int = 9464, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve the router's metrics registry (``router.metrics.registry``, shared by the
        routers that share it) at ``http://addr:port/metrics`` until the server or the
        router is closed (needs prometheus-client).

        Binds to loopback by default; pass ``addr="0.0.0.0"`` to expose it.
        """
        server = serve_metrics(port, addr, self.metrics.registry if self.metrics else None)
        self._unsubscribe.append(server.close)  # closed with the router at the latest
        return server

    def health(self) -> dict[str, str]:
        """Each path's circuit-breaker state: ``closed``, ``open``, ``half_open`` or ``none``."""
        return {
            name: st.breaker.state.value if st.breaker is not None else "none"
            for name, st in self._settings.items()
        }

    def choose(
        self,
        *args: Any,
        context: str | None = None,
        features: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Decision:
        """Pick a path for a request whose outcome will be reported later.

        The decision is persisted, so :meth:`report` may come from another process. During
        a store outage it is held in this process (at most ``max_buffer`` decisions) and
        persisted when the store returns. A feature router ranks by the request's
        features: ``features=`` (a mapping, as the feature function returns), else the
        feature function of the request's arguments (``choose(*args, **kwargs)``, as
        :meth:`run` takes them), else none (each path's success rate); the vector is kept
        with the pending decision, so the report updates the right statistics. Bad
        features raise :class:`~adaptive_router.features.FeatureError` naming the feature.
        Paths with ``estimate_cost_usd`` are priced for the request's arguments (none
        given: by their learned costs); an estimator that raises or returns anything but
        a finite number >= 0 or None raises ValueError naming the path.
        """
        x = self.ranking.choose_features(args, kwargs, features)
        ctx = self.ranking.context(context, args, kwargs)
        rid, order, _ = self._begin(ctx, x, self.ranking.request_costs(args, kwargs))
        # Decision.order lists every position, so the later ones are drawn now.
        whole = list(order)
        return self._feedback.choose(rid, whole, ctx, self._recorder, self.ranking.encode(x))

    def report(
        self,
        request_id: str,
        success: bool,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, Any] | None = None,
        score: float | None = None,
    ) -> bool:
        """Complete a :meth:`choose`. Returns True if recorded, False if already reported.

        ``score`` (0-1) is the fractional evidence for routers that learn from scores;
        without it the evidence is ``success`` (1 or 0).

        Raises :class:`UnknownRequestError` for an id no ``choose`` issued (or one
        dropped after ``pending_ttl`` with ``on_expired="drop"``).

        While the store is unreachable, a report of a decision this router made (and
        still holds) is accepted — True — and recorded when the store returns, by the
        same claim, so a report from another process that got there first wins (this one
        is then logged and ignored). A report of a decision this router does not hold
        raises :class:`StoreUnavailableError`: nothing was recorded, report it again.
        """
        if self._forked:
            self._resume()
        return self._feedback.report(
            request_id,
            success,
            self._recorder,
            latency_ms=latency_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            metadata=metadata,
            score=score,
        )

    def posteriors(self, context: str | None = None) -> list[Posterior]:
        """Each path's current Beta posteriors (decay applied): learned paths, then the
        fallback.

        ``alpha``, ``beta``, ``mean``, ``interval``, ``n``, ``successes`` and ``failures``
        are the path's first attempts (requests it was tried first on: its success rate,
        which ranks the first choice); ``after_failure`` is the same for its attempts made
        after another path of the request failed (only the inputs that path failed on;
        they rank the later positions). ``traffic_share`` is the path's share of the
        (decayed) evidence of both kinds, i.e. of recent attempts, fallback attempts
        included. With ``context``, the posteriors that route that context: its own
        evidence (success, cost, latency) on the capped task level.
        """
        if self._forked:
            self._resume()
        return self.ranking.posteriors(self.clock(), context or "")

    def spend(self) -> SpendStatus:
        """The task's spend against the spend target (``Objective(target_usd_per_request=
        ...)``; ``target_usd_per_request`` None without one): realized spend per request
        over the window, the price per dollar λ the order is ranked by now, and the
        all-time requests and spend. Every process of the task adds to the same sums in the
        store; this router sees the others' at its refresh (``refresh_interval``). Without
        a target only a store's own totals are read (this process keeps none)."""
        if self._forked:
            self._resume()
        return self.ranking.spend(self.clock())

    def contexts(self) -> list[str]:
        """The named contexts this task has evidence for."""
        return self._recorder.contexts()

    def stats(
        self, window: timedelta = timedelta(hours=1), context: str | None = None
    ) -> list[PathWindowStats]:
        """Per-path success rate, latency percentiles, tokens, cost (and mean score) over a
        recent window; in one context when ``context`` is given. Each item also counts the
        first attempts and the attempts after a failure apart (``first_success_rate``,
        ``after_failure_success_rate``, ...)."""
        secs = seconds(window, "window", allow_none=False) or 0.0
        self.flush()
        return self.store.window_stats(self.task, self.clock() - secs, context=context)

    def flush(self) -> None:
        """Write buffered outcomes now (batch durability). Raises the start-up check's
        :class:`ConfigurationError` if it failed once the store was reached (see
        ``start_without_store``)."""
        self._recorder.flush()
        self._recorder.check_started()

    def refresh(self) -> None:
        """Flush, then reload posteriors from the store (picks up other processes' outcomes)."""
        self._recorder.refresh()
        self._recorder.check_started()

    @property
    def buffered_outcomes(self) -> int:
        """Outcomes recorded but not yet written to the store, reports accepted during an
        outage included."""
        return self._recorder.buffered + self._feedback.unclaimed

    @property
    def dropped_outcomes(self) -> int:
        """Outcomes lost because the write buffer overflowed during a store outage."""
        return self._recorder.dropped

    @property
    def rejected_outcomes(self) -> int:
        """Outcomes never stored because the store rejected their values (a NaN cost, a
        negative token count...); each is logged with the field and value. The other
        outcomes of their batches are written."""
        return self._recorder.rejected

    def close(self) -> None:
        """Flush everything, release the store (if the router opened it), and end what the
        router started: its threads, its exit hook, its hold on the SDK hooks."""
        if self._closed:
            return
        self._closed = True
        self._log.close()
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe.clear()
        self._recorder.close()
        if self._feedback.unclaimed:
            logger.error(
                "closing with %d reports of task %s accepted during a store outage and not "
                "recorded: the store is unreachable",
                self._feedback.unclaimed,
                self.task,
                extra={"task": self.task, "unrecorded_reports": self._feedback.unclaimed},
            )
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """:meth:`close` for asyncio code (an app's lifespan shutdown): its final flush
        and thread joins run in a worker thread, so the event loop is never blocked."""
        await to_daemon_thread(self.close)

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _declared(paths: Collection[Path]) -> tuple[dict[str, str], dict[str, float]]:
    """Each path's model and declared cost per attempt, by name: what a report is priced
    by when it gives tokens, or nothing, instead of a cost."""
    models = {p.name or "": p.model for p in paths if p.model}
    costs = {p.name or "": p.cost_usd for p in paths if p.cost_usd is not None}
    return models, costs


def _heartbeat(router: Router, every_s: float | None) -> Heartbeat | None:
    """The router's heartbeat, started, every ``every_s`` seconds; none where nothing can
    read it: a store only this router holds in-process."""
    if router._owns_store and isinstance(router.store, InProcess):
        every_s = None
    alerts = router.alerts
    return start_heartbeat(
        router.store, router.task, router.health, lambda: list(alerts.recent), router.clock, every_s
    )
