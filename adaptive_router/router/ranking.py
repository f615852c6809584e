"""A request's order of paths: evidence (decayed, mixed across contexts), the policy's
draw, open breakers to the back, the final fallback last. No I/O: it reads the
recorder's in-process cache.

The first choice is ranked by each path's first-attempt evidence (unconditioned: every
input the task gets), the later positions by its after-failure evidence (attempts made
after another path of the request failed), when the policy takes it
(:func:`~adaptive_router.policies.thompson.takes_after_failure`) and there are more than two learned
paths (with two, the second is the other one whatever the evidence says).

With an objective (:class:`~adaptive_router.policies.objectives.ObjectiveThompsonSampling`), each
learned path's expected cost and latency per attempt are its decayed means, else its
``Path(expected_cost_usd=..., expected_latency_ms=...)`` prior (a cost prior may also be
the path's model priced for its ``expected_tokens``, :mod:`.cost_priors`, computed once
here), else the mean of the paths that have one, else all equal (the success order).
In a named context the means are the context's own on top of the task level's, mixed
like the success evidence (:mod:`adaptive_router.router.context_costs`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router import forks
from adaptive_router._checks import error_text
from adaptive_router.errors import ConfigurationError
from adaptive_router.features import FeatureError, SparseVector
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.metering.cost_priors import cost_priors, quote_model
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import Posterior, check_amount
from adaptive_router.paths import Path, check_name, token_pair
from adaptive_router.policies.contextual_decision import GaussianDecisionEncoder
from adaptive_router.policies.logged_decision import (
    DecisionDraft,
    DecisionEncoder,
    PricedDecisionEncoder,
)
from adaptive_router.policies.objectives import ObjectiveThompsonSampling, expected_costs
from adaptive_router.policies.pacing import DEFAULT_GAIN, SpendPacer, SpendStatus, paced_costs
from adaptive_router.policies.thompson import (
    FloatArray,
    Policy,
    ThompsonSampling,
    after_failure_generator,
    takes_after_failure,
)
from adaptive_router.router.context_costs import cost_row, mixed_means
from adaptive_router.router.recorder import Recorder, Weights
from adaptive_router.router.settings import PathSettings
from adaptive_router.stores.base import PathEvidence, PathState, SpendTotals
from adaptive_router.stores.evidence import posteriors_from_states

if TYPE_CHECKING:
    # A feature router's collaborators: their module loads scipy, only for such a router.
    from adaptive_router.router.features import FeatureRanking

logger = logging.getLogger(__name__)

__all__ = ["Ranking", "posteriors_from_states"]


class Ranking:
    """Ranks the learned paths with ``policy`` and ``rng``; reads evidence through
    :meth:`Recorder.evidence`. ``half_life`` is the policy's. ``pricer`` prices the
    cost priors of paths given by ``expected_tokens`` (default: genai-prices alone)."""

    def __init__(
        self,
        paths: Sequence[Path],
        fallback: Path | None,
        policy: Policy,
        rng: np.random.Generator,
        recorder: Recorder,
        settings: Mapping[str, PathSettings],
        context_prior_strength: float,
        context_fn: Callable[..., str] | None = None,
        max_contexts: int = 1000,
        pricer: Pricer | None = None,
        log_decisions: bool = False,
        features: FeatureRanking | None = None,
        budget_prices: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.fallback = fallback
        self.policy = policy
        self.rng = rng
        self.recorder = recorder
        self.settings = settings
        self.context_prior_strength = context_prior_strength
        self.context_fn = context_fn
        self.max_contexts = max_contexts
        # Named contexts this router has let in, recorded yet or not (a choose() not
        # reported yet, a request still running): counted against max_contexts with the
        # cache's, and admitted under one lock, so neither pending decisions nor threads
        # racing past the check can exceed it.
        self._admitted: set[str] = set()
        self._admit_lock = threading.Lock()
        forks.follow(self)
        # Paths whose breaker is not closed; ranking only re-sorts while one is.
        self._unclosed: set[str] = set()
        self._objective = (
            policy
            if isinstance(policy, ObjectiveThompsonSampling)
            and not policy.objective.ranks_by_success
            else None
        )
        self._names = tuple(p.name or "" for p in self.paths)
        #: A feature router's feature function and contextual models (None: none).
        self.features = features
        #: The spend target's pacer (None without one); its stats are set per decision.
        self._pacer: SpendPacer | None = None
        if self._objective is not None:
            target = self._objective.objective.target_usd_per_request
            if target is not None:
                self._pacer = SpendPacer(target, self.half_life)
        #: Read and pass the after-failure evidence: only it orders positions 2.. and only
        #: with three paths or more is there an order among them to choose.
        self._after = len(self.paths) > 2 and takes_after_failure(policy)
        #: The after-failure draws' own generator (spawned: nothing is drawn from ``rng``).
        self.rng_after = after_failure_generator(rng) if self._after else rng
        #: Keep each decision's evidence (when the policy is :attr:`loggable`).
        self.log_decisions = log_decisions and self.loggable
        # Priced once here, never per request (quote() runs calc_price).
        every = self.paths if fallback is None else [*self.paths, fallback]
        priors = cost_priors(every, pricer)
        self._cost_priors = priors[: len(self.paths)]
        self._cost_prior_of = {p.name or "": c for p, c in zip(every, priors, strict=True)}
        self._enc: DecisionEncoder | None = None
        self._priced_enc: PricedDecisionEncoder | None = None
        self._gauss_enc: GaussianDecisionEncoder | None = None
        self._latency_priors = [p.expected_latency_ms for p in self.paths]
        #: Whether :meth:`request_costs` asks the paths' estimates of a request's cost:
        #: only when a path has one and something weighs cost (the spend target,
        #: objective="cost", or ``budget_prices``: a ``max_cost_usd`` budget). The router
        #: reads it before calling, so routers without estimates pay no call per request.
        weighs = (
            self._pacer is not None
            or budget_prices
            or (self._objective is not None and self._objective.objective.uses_cost)
        )
        self._pricer = pricer
        if fallback is not None and (
            fallback.estimate_cost_usd is not None or callable(fallback.expected_tokens)
        ):
            # Said, not refused: one Path may serve as a ranked path in another router.
            logger.warning(
                "fallback path %r: its per-request cost estimate is not used (the fallback "
                "is tried last, never ranked, so no cost is weighed for it)",
                fallback.name,
                extra={"path": fallback.name},
            )
        #: Per learned path, ``(args, kwargs) -> USD or None``, how it prices a request
        #: (None: it does not, or nothing weighs cost).
        self._estimators = [self._estimator(p) if weighs else None for p in self.paths]
        self.prices_requests = any(e is not None for e in self._estimators)

    def _estimator(self, p: Path) -> Callable[[Any, Any], float | None] | None:
        """How ``p`` prices a request: its ``estimate_cost_usd``, else its ``expected_tokens``
        function at its model's price (the model's priced name resolved once here; an
        unknown price is said once, and requests then use learned costs), else None."""
        if p.estimate_cost_usd is not None:
            return functools.partial(_estimated_cost, p.name, p.estimate_cost_usd)
        fn = p.expected_tokens
        if not callable(fn) or not p.model:
            return None
        if self._pricer is None:
            self._pricer = Pricer()
        quoted = quote_model(self._pricer, p.model, 0, 0)
        if quoted is None:
            logger.warning(
                "path %r: no price known for model %r, so its expected_tokens function prices "
                "no request and the router weighs its learned cost (give "
                "Observability(prices={model: (input, output USD per million tokens)}))",
                p.name,
                p.model,
                extra={"path": p.name, "model": p.model},
            )
            return None
        return functools.partial(_priced_tokens, p.name, fn, self._pricer, quoted[0])

    def _after_fork_in_child(self) -> None:
        self._admit_lock = threading.Lock()  # a parent thread may have held it at the fork

    @property
    def half_life(self) -> float | None:
        """The policy's half-life (seconds, None = never forget): the one owner of it."""
        return self.policy.half_life

    def track_breakers(self) -> list[Callable[[], None]]:
        """Follow every path's breaker state; returns the unsubscribe callables."""
        undo: list[Callable[[], None]] = []
        for name, st in self.settings.items():
            if st.breaker is not None:
                if st.breaker.state.value != "closed":
                    self._unclosed.add(name)
                undo.append(st.breaker.on_change(functools.partial(self._track, name)))
        return undo

    def _track(self, name: str, _breaker: str, old: Any, new: Any) -> None:
        if getattr(new, "value", new) == "closed":
            self._unclosed.discard(name)
        else:
            self._unclosed.add(name)

    def context(self, context: str | None, args: Any, kwargs: Any) -> str:
        """A request's context: the ``context=`` argument, else ``context_fn(*args,
        **kwargs)``, else "" (the task level). Checked, and refused when it would be one
        named context more than ``max_contexts``."""
        if context is None and self.context_fn is not None:
            try:
                context = self.context_fn(*args, **kwargs)
            except Exception as exc:
                raise ValueError(f"context_fn raised {error_text(exc)}") from exc
        if context is None or context == "":
            return ""
        if context in self._admitted:
            return context
        check_name("context", context)
        with self._admit_lock:
            if context not in self._admitted:
                if not self.recorder.admits_context(context, self.max_contexts, self._admitted):
                    raise ValueError(
                        f"context {context!r} would exceed max_contexts={self.max_contexts}; "
                        "contexts must be a bounded set of categories (raise max_contexts if "
                        "you need more)"
                    )
                self._admitted.add(context)
        return context

    def evidence(self, now: float, context: str = "", after: bool = False) -> Weights:
        """Decayed success/failure weights per learned path, as the policy sees them: of
        first attempts, and (``after``) of attempts after a failure.

        In a named context the task-level evidence acts as the prior, scaled down to at
        most ``context_prior_strength`` pseudo-observations per path and position, so a new
        context starts from what the task knows and its own evidence soon dominates.
        """
        task, own = self.recorder.evidence(self._names, context, now, after)
        if own is None:
            return task
        s, f = self._mixed(task.s, task.f, own.s, own.f)
        if task.s2 is None or task.f2 is None or own.s2 is None or own.f2 is None:
            return Weights(s, f, None, None)
        s2, f2 = self._mixed(task.s2, task.f2, own.s2, own.f2)
        return Weights(s, f, s2, f2)

    def _mixed(
        self, s: FloatArray, f: FloatArray, own_s: FloatArray, own_f: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        n = s + f
        scale = np.where(
            n > self.context_prior_strength,
            self.context_prior_strength / np.maximum(n, 1e-300),
            1.0,
        )
        return s * scale + own_s, f * scale + own_f

    def rank(
        self,
        now: float,
        context: str = "",
        x: SparseVector | None = None,
        estimates: Sequence[float | None] | None = None,
    ) -> tuple[Iterable[Path], DecisionDraft | None]:
        """The request's order (sampled, open breakers to the back, the fallback last) and,
        with :attr:`log_decisions` on, the evidence of the decision (else None): the
        first-attempt evidence, which alone decides the first choice. A feature router
        ranks the whole order by its contextual draw for the request's features ``x``
        (None: the models' bias alone, each path's success rate).

        When the after-failure evidence orders the positions after the first, the order
        is an iterator that draws them (:meth:`later`) only when the walk gets past the
        first path: most requests succeed at once and need no such draws. ``estimates``
        (:meth:`request_costs`) replace the learned costs of the paths that have one."""
        s, f, _, _ = self.evidence(now, context)
        c = lat = None
        draft: DecisionDraft | None = None
        later_kw: dict[str, Any] = {}  # what the policy's rank_later needs beside evidence
        if self.features is not None:
            paced = None
            if self._pacer is not None:
                costs, _ = self._costs(now, context, estimates)
                paced = paced_costs(costs, self._cost_priors)
            decision = self.features.models.rank(
                context, x, self.rng, s, f, paced, self.price(now) if paced else 0.0
            )
            ranked = decision.order
            if self.log_decisions:
                # The scores' distributions, not the Beta evidence: they decided.
                draft = (
                    self._gaussian_encoder(decision.explore),
                    decision.means,
                    decision.sds,
                    decision.costs,
                    decision.price,
                    self._skipped(),
                )
        elif self._pacer is not None:
            assert self._objective is not None  # a pacer comes with a paced objective
            costs, _ = self._costs(now, context, estimates)
            charged = paced_costs(costs, self._cost_priors)
            lam = self.price(now)
            ranked = self._objective.rank(s, f, self.rng, costs=charged, price=lam)
            later_kw = {"costs": charged, "price": lam}
            if self.log_decisions:
                draft = (self._priced_encoder(), s, f, charged, lam, self._skipped())
        elif self._objective is not None:
            obj = self._objective.objective
            costs, latencies = self._costs(now, context, estimates)
            c = _filled(costs, self._cost_priors, "expected_cost_usd") if obj.uses_cost else None
            lat = (
                _filled(latencies, self._latency_priors, "expected_latency_ms")
                if obj.uses_latency
                else None
            )
            ranked = self._objective.rank(s, f, self.rng, costs=c, latencies=lat)
            later_kw = {"costs": c, "latencies": lat}
        else:
            ranked = self.policy.rank(s, f, self.rng)
        if self.log_decisions and draft is None and self.features is None and self._pacer is None:
            draft = self._logged(s, f, c, lat)
        indices = ranked.tolist()  # plain ints: no numpy scalar per path
        after = self._after and self.features is None
        if after and not self._unclosed:
            return self._walk(indices[0], now, context, later_kw), draft
        if after:  # the whole order now: the breakers' sort below needs it
            indices = [indices[0], *self.later(indices[0], now, context, later_kw)]
        paths = self.paths
        order = [paths[i] for i in indices]
        if self._unclosed:
            # Open breakers move to the back (still tried, as skipped, if all else fails).
            order.sort(key=self._breaker_closed_first)
        if self.fallback is not None:
            order.append(self.fallback)
        return order, draft

    def _walk(
        self, first: int, now: float, context: str, later_kw: dict[str, Any]
    ) -> Iterator[Path]:
        """A request's order, the positions after the first drawn when first asked for."""
        paths = self.paths
        yield paths[first]
        for i in self.later(first, now, context, later_kw):
            yield paths[i]
        if self.fallback is not None:
            yield self.fallback

    def later(self, first: int, now: float, context: str, later_kw: dict[str, Any]) -> list[int]:
        """The learned paths after ``first``, by the policy's draws from their after-failure
        evidence as of ``now`` (the request's ranking time) with :attr:`rng_after`."""
        _, _, s2, f2 = self.evidence(now, context, after=True)
        policy: Any = self.policy  # has rank_later: self._after says so
        ranked: list[int] = policy.rank_later(first, s2, f2, self.rng_after, **later_kw).tolist()
        return ranked

    def price(self, now: float) -> float:
        """λ, the spend target's price per dollar now (0 without a target): from the
        task's spend sums as this process knows them, decayed to ``now``."""
        pacer = self._pacer
        if pacer is None:
            return 0.0
        pacer.stats = self.recorder.spend_stats().decayed(now, self.half_life)
        return pacer.price

    def spend(self, now: float) -> SpendStatus:
        """The spend target (None without one), the realized spend per request over the
        window (the task's half-life), λ, and the all-time totals: without a target, of
        the store's sums (this process keeps none), after a flush."""
        pacer = self._pacer
        store = self.recorder.store
        if pacer is None and isinstance(store, SpendTotals):
            self.recorder.flush()
            return SpendStatus.of(store.load_spend(self.recorder.task), None, self.half_life, now)
        return SpendStatus.of(
            self.recorder.spend_stats(),
            None if pacer is None else pacer.target,
            self.half_life,
            now,
            DEFAULT_GAIN if pacer is None else pacer.gain,
        )

    def run_features(self, args: Any, kwargs: Any, log: ThrottledLog) -> SparseVector | None:
        """A feature router's vector for a :meth:`Router.run` request; bad features (or a
        feature function that raises) rank it without features, and ``log`` says so once
        per window: a feature bug must not take the requests down."""
        fr = self.features
        if fr is None:
            return None
        try:
            return fr.features.vector(args, kwargs)
        except FeatureError as exc:
            self._ranked_anyway(log, "features", "without features", exc)
            return None

    def request_costs(
        self, args: Any, kwargs: Any, log: ThrottledLog | None = None
    ) -> list[float | None] | None:
        """Each learned path's cost estimate for a request (``Path.estimate_cost_usd`` of
        its arguments, else its ``expected_tokens`` function's tokens at its model's price;
        None where a path has neither or returns None), or None when no path estimates,
        nothing weighs cost, or the request has no arguments. A bad estimate raises
        ValueError naming the path; with ``log`` (:meth:`Router.run`) the request is
        instead ranked by the learned costs and ``log`` says so once per window: an
        estimator's bug must not take the requests down."""
        if not self.prices_requests or not (args or kwargs):
            return None
        try:
            return [None if e is None else e(args, kwargs) for e in self._estimators]
        except ValueError as exc:
            if log is None:
                raise
            self._ranked_anyway(log, "cost_estimate", "by learned costs", exc)
            return None

    def _ranked_anyway(self, log: ThrottledLog, key: str, how: str, exc: Exception) -> None:
        """Say once per window (``key``) that a request was ranked ``how`` because of a
        bad input ``exc`` from the user's function, and count the rest."""
        task = self.recorder.task
        log.log(
            (key,),
            f"task %s: request ranked {how}: %s",
            (task, exc),
            f"task %s: %d more requests ranked {how} in the last %g s",
            (task,),
            {"task": task, "error": str(exc)},
        )

    def choose_features(
        self, args: Any, kwargs: Any, given: Mapping[str, Any] | None
    ) -> SparseVector | None:
        """A :meth:`Router.choose` request's vector: ``given`` (a mapping), else the feature
        function of its arguments, else None; bad features raise :class:`FeatureError`."""
        fr = self.features
        if fr is None:
            if given is not None:
                raise ConfigurationError(
                    "choose(features=...): this router has no feature function; build it "
                    "with Router(..., features=...)"
                )
            return None
        if given is not None:
            return fr.features.given(given)
        return fr.features.vector(args, kwargs) if args or kwargs else None

    def encode(self, x: SparseVector | None) -> bytes | None:
        """``x`` as an outcome carries it (None: no features)."""
        fr = self.features
        return None if x is None or fr is None else fr.features.encode(x)

    @property
    def loggable(self) -> bool:
        """True when the policy is one whose propensities are computable:
        :class:`ThompsonSampling` or :class:`ObjectiveThompsonSampling` themselves (a
        subclass may rank differently; under a spend target, by θ - λ·c: a version-3
        record), or a feature router's contextual policy (Gaussian scores: a version-4
        record, :class:`~adaptive_router.policies.contextual_decision.GaussianDecision`)."""
        return self.features is not None or type(self.policy) in (
            ThompsonSampling,
            ObjectiveThompsonSampling,
        )

    def _skipped(self) -> tuple[bool, ...] | None:
        """Paths whose breaker is not available (ranked to the back, passed over when
        reached); None: none."""
        if not self._unclosed:
            return None
        return tuple(self._breaker_closed_first(p) == 1 for p in self.paths)

    def _logged(self, s: Any, f: Any, c: Any, lat: Any) -> DecisionDraft:
        """The decision's evidence, as a draft that :func:`~adaptive_router.router.
        decisions.attach` encodes; paths whose breaker is not available are marked skipped
        (they were ranked to the back and are passed over when reached)."""
        return (self._encoder(), s, f, c, lat, self._skipped())

    def _priced_encoder(self) -> PricedDecisionEncoder:
        """The encoder of a spend-target router's decisions (rebuilt if the prior or
        floor changed, as :meth:`_encoder`)."""
        pol: ThompsonSampling = self.policy  # type: ignore[assignment]  # loggable
        enc = self._priced_enc
        if enc is None or enc.prior != pol.prior or enc.explore != pol.explore:
            enc = self._priced_enc = PricedDecisionEncoder(self._names, pol.prior, pol.explore)
        return enc

    def _gaussian_encoder(self, explore: float) -> GaussianDecisionEncoder:
        """The encoder of a feature router's decisions."""
        enc = self._gauss_enc
        if enc is None or enc.explore != explore:
            enc = self._gauss_enc = GaussianDecisionEncoder(self._names, explore)
        return enc

    def _encoder(self) -> DecisionEncoder:
        """The encoder of this router's decisions, rebuilt if the policy's parameters
        changed since (they are read at each decision, like the policy does)."""
        pol: ThompsonSampling = self.policy  # type: ignore[assignment]  # loggable
        enc = self._enc
        obj = None
        if self._objective is not None:
            o = self._objective.objective
            obj = (o.cost_weight, o.usd_per_second)
        if (
            enc is None
            or enc.prior != pol.prior
            or enc.explore != pol.explore
            or enc.objective != obj
        ):
            enc = self._enc = DecisionEncoder(self._names, pol.prior, pol.explore, obj)
        return enc

    def expected(
        self, now: float = 0.0, context: str = ""
    ) -> tuple[list[float | None], list[float | None]]:
        """Each learned path's measured mean cost (USD) and latency (ms) per attempt, in
        path order (None where not measured yet): task level, or in a named ``context``
        its own evidence mixed with the task level's as of ``now``."""
        if context:
            task, own = self.recorder.cost_evidence(context)
            names = [p.name or "" for p in self.paths]
            return mixed_means(names, task, own, now, self.half_life, self.context_prior_strength)
        means = self.recorder.means()
        none = (None, None)
        rows = [means.get(p.name or "", none) for p in self.paths]
        return [r[0] for r in rows], [r[1] for r in rows]

    def _costs(
        self, now: float, context: str, estimates: Sequence[float | None] | None
    ) -> tuple[list[float | None], list[float | None]]:
        """:meth:`expected`, each path's cost replaced by its estimate for the request
        where it has one."""
        costs, latencies = self.expected(now, context)
        if estimates is not None:
            costs = [c if e is None else e for c, e in zip(costs, estimates, strict=True)]
        return costs, latencies

    def known_costs(
        self,
        now: float = 0.0,
        context: str = "",
        estimates: Sequence[float | None] | None = None,
    ) -> dict[str, float]:
        """Expected cost per attempt by learned path (in ``context``, as :meth:`expected`):
        the request's estimate (:meth:`request_costs`), else measured, else the path's
        prior; paths with none are left out (a budget cannot judge them)."""
        costs, _ = self._costs(now, context, estimates)
        out: dict[str, float] = {}
        for p, c, prior in zip(self.paths, costs, self._cost_priors, strict=True):
            v = c if c is not None else prior
            if v is not None:
                out[p.name or ""] = v
        return out

    def _breaker_closed_first(self, p: Path) -> int:
        b = self.settings[p.name or ""].breaker
        return 0 if b is None or b.available else 1

    def mean(self, path: Path, now: float, context: str, attempt: int = 1) -> float:
        """The path's posterior mean now (prior included) at the position of attempt
        number ``attempt`` (first, or after a failure): a score that adds no information
        to that posterior (α + m, β + 1 - m with m = α / (α + β) keeps the mean at m)."""
        a, b = getattr(self.policy, "prior", (1.0, 1.0))
        try:
            i = next(k for k, p in enumerate(self.paths) if p is path)
        except StopIteration:  # the final fallback is not learned
            return float(a / (a + b))
        first = attempt == 1
        w = self.evidence(now, context, after=not first)
        s, f = (w.s, w.f) if first else (w.s2, w.f2)
        assert s is not None and f is not None
        return float((a + s[i]) / (a + b + s[i] + f[i]))

    def posteriors(self, now: float, context: str = "") -> list[Posterior]:
        """Each path's Beta posteriors at ``now`` (first attempts, and after a failure):
        learned paths, then the fallback; in a named context, its own evidence on top of
        the (capped) task-level prior."""
        prior = getattr(self.policy, "prior", (1.0, 1.0))
        names = [p.name or "" for p in self.paths]
        if self.fallback is not None:
            names.append(self.fallback.name or "")
        states = self.recorder.snapshot()
        if not context:
            return self._with_priors(
                posteriors_from_states(states.get("", {}), names, prior, self.half_life, now),
                now,
                context,
            )
        own = states.get(context, {})
        s, f, s2, f2 = self.evidence(now, context, after=True)
        assert s2 is not None and f2 is not None
        mixed: dict[str, PathEvidence] = {}
        for i, p in enumerate(self.paths):
            ev = own.get(p.name or "") or PathEvidence()
            mixed[p.name or ""] = PathEvidence(
                _mixed_state(float(s[i]), float(f[i]), now, ev.first),
                _mixed_state(float(s2[i]), float(f2[i]), now, ev.after_failure),
            )
        if self.fallback is not None and (self.fallback.name or "") in own:
            mixed[self.fallback.name or ""] = own[self.fallback.name or ""]
        # Traffic share and update times are the context's own: the borrowed task-level
        # weights are prior, not traffic, and the mixed weights are stamped ``now``.
        plain = posteriors_from_states(own, names, prior, self.half_life, now)
        out = [
            dataclasses.replace(
                m,
                traffic_share=o.traffic_share,
                updated_at=o.updated_at,
                after_failure=dataclasses.replace(
                    m.after_failure, updated_at=o.after_failure.updated_at
                ),
            )
            for m, o in zip(
                posteriors_from_states(mixed, names, prior, self.half_life, now), plain, strict=True
            )
        ]
        hl = self.half_life
        costs, latencies = mixed_means(
            names,
            {n: cost_row(ev, hl) for n, ev in states.get("", {}).items()},
            {n: cost_row(ev, hl) for n, ev in own.items()},
            now,
            hl,
            self.context_prior_strength,
        )
        return self._with_priors(
            [
                dataclasses.replace(p, expected_cost_usd=c, expected_latency_ms=t)
                for p, c, t in zip(out, costs, latencies, strict=True)
            ],
            now,
            context,
        )

    def _with_priors(self, rows: list[Posterior], now: float, context: str) -> list[Posterior]:
        """Posteriors with each path's prior cost/latency where nothing was measured, and
        under a spend target each learned path's ``spend_penalty`` (λ times the cost it is
        charged per attempt)."""
        named: dict[str, tuple[tuple[str, float], ...]] = {}
        fr = self.features
        if fr is not None:
            names = fr.features.names
            named = {
                path: tuple((names.get(i, f"#{i}"), w) for i, w in top)
                for path, top in fr.models.influential(context).items()
            }
        penalty: dict[str, float] = {}
        if self._pacer is not None:
            lam = self.price(now)
            costs, _ = self.expected(now, context)
            charged = paced_costs(costs, self._cost_priors)
            penalty = {p.name or "": lam * c for p, c in zip(self.paths, charged, strict=True)}
        by_name = {p.name or "": p for p in self.paths}
        if self.fallback is not None:
            by_name[self.fallback.name or ""] = self.fallback
        out = []
        for r in rows:
            p = by_name.get(r.path)
            if p is None:
                out.append(r)
                continue
            cost = r.expected_cost_usd
            if cost is None:
                cost = self._cost_prior_of.get(r.path)
            latency = r.expected_latency_ms
            if latency is None:
                latency = p.expected_latency_ms
            if (cost, latency) != (r.expected_cost_usd, r.expected_latency_ms):
                r = dataclasses.replace(r, expected_cost_usd=cost, expected_latency_ms=latency)
            if r.path in penalty:
                r = dataclasses.replace(r, spend_penalty=penalty[r.path])
            if named.get(r.path):
                r = dataclasses.replace(r, features=named[r.path])
            out.append(r)
        return out


def _mixed_state(s: float, f: float, now: float, own: PathState) -> PathState:
    """A context's mixed weights (already decayed to ``now``) with its own counts."""
    return PathState(s, f, now, own.successes, own.failures)


def _filled(
    means: list[float | None], priors: list[float | None], parameter: str
) -> Sequence[float] | FloatArray:
    """``means`` with paths not measured yet filled (:func:`expected_costs`)."""
    if None in means:
        return expected_costs(means, priors, parameter=parameter)
    # Every path measured (the steady state): nothing to fill, and no per-request
    # re-check of priors that Path already validated.
    return means  # type: ignore[return-value]  # no None left


def _estimated_cost(
    name: str | None, fn: Callable[..., object], args: Any, kwargs: Any
) -> float | None:
    """Path ``name``'s ``estimate_cost_usd`` function ``fn(*args, **kwargs)`` checked as
    an amount (None, or a finite number >= 0, numpy's too, as a float); an exception or
    another value is a ValueError naming the path."""
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        raise ValueError(f"path {name!r}: estimate_cost_usd raised {error_text(exc)}") from exc
    return check_amount(f"path {name!r}: estimate_cost_usd (its return value)", value)


def _priced_tokens(
    name: str | None,
    fn: Callable[..., object],
    pricer: Pricer,
    model: str,
    args: Any,
    kwargs: Any,
) -> float | None:
    """Path ``name``'s ``expected_tokens`` function ``fn(*args, **kwargs)`` priced at
    ``model`` by ``pricer``; an exception, or anything but two ints in [0, 10¹²], is a ValueError
    naming the path."""
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        raise ValueError(f"path {name!r}: expected_tokens raised {error_text(exc)}") from exc
    counts = token_pair(value)
    if counts is None:
        raise ValueError(
            f"path {name!r}: expected_tokens (its return value) must be "
            f"(input_tokens, output_tokens), two ints in [0, 10**12], got {value!r}"
        )
    return pricer.cost(model, counts[0], counts[1])
