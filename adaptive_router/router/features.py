"""The Router's request features: the feature function's output hashed per request, and
the in-process contextual models that rank by it. No I/O: the store's statistics come in
through :meth:`FeatureModels.reload`, outcomes through :meth:`FeatureModels.fold`.

A ``Router(features=f)`` ranks the first choice (and the order after it) by
:class:`~adaptive_router.policies.contextual.ContextualThompsonSampling`: per path a
Bayesian linear model of success on the request's hashed features, one model per context
(the task level ``""`` and each named context), its bias started from the path's Beta
evidence in that context. The statistics are the store's (``feature_stats``, shared by
every process of the task) as of the last refresh, plus this process's outcomes since.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

import adaptive_router.stores.feature_stats as feature_stats
from adaptive_router import forks
from adaptive_router.features import (
    FeatureError,
    SparseVector,
    decode_features,
    encode_features,
    hash_features,
)
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.contextual import (
    ContextualDecision,
    ContextualThompsonSampling,
    LinearModel,
    LinearStats,
    with_bias,
)

if TYPE_CHECKING:
    from adaptive_router.policies.thompson import FloatArray

__all__ = ["FeatureModels", "FeatureRanking", "Features", "feature_ranking"]

#: A path's bias is re-started from its Beta evidence when that evidence moved by this
#: share of its weight (or by one observation) since the last start: a cold start is
#: O(D²), too dear for every request, and a small drift changes nothing a draw can tell.
_COLD_DRIFT = 0.01


class Features:
    """The router's feature function and dimension: ``vector(args, kwargs)`` hashes
    what ``fn(*args, **kwargs)`` returns; :func:`hash_features` checks it."""

    def __init__(self, fn: Callable[..., Any], dim: int) -> None:
        self.fn = fn
        self.dim = dim
        #: The latest name seen for each hashed index (bounded by the dimension): how
        #: posteriors() names a path's influential features.
        self.names: dict[int, str] = {}

    def vector(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> SparseVector:
        """The request's feature vector; :class:`FeatureError` naming the problem (a
        feature function that raises is wrapped, its error named)."""
        try:
            mapping = self.fn(*args, **kwargs)
        except FeatureError:
            raise
        except Exception as exc:
            raise FeatureError(f"the feature function raised {type(exc).__name__}: {exc}") from exc
        return self.given(mapping)

    def given(self, mapping: object) -> SparseVector:
        """A mapping of feature name to value, hashed and checked (:class:`FeatureError`)."""
        # Every request names its buckets (one dict store per feature, while hashing): a
        # sample of every n-th request missed whole kinds of request whenever traffic had
        # a period dividing n (requests alternating between two kinds, n = 16).
        return hash_features(mapping, self.dim, names=self.names)

    def encode(self, x: SparseVector) -> bytes:
        return encode_features(x, self.dim)


class FeatureModels:
    """One :class:`LinearModel` per context over the router's learned paths. Thread-safe."""

    def __init__(
        self, policy: ContextualThompsonSampling, names: Sequence[str], prior: tuple[float, float]
    ) -> None:
        self.policy = policy
        self.names = tuple(names)
        self.prior = prior
        self._index = {n: i for i, n in enumerate(self.names)}
        self._models: dict[str, LinearModel] = {}
        #: Per (context, path): the Beta weights of the last cold start.
        self._started: dict[tuple[str, int], tuple[float, float]] = {}
        self._lock = threading.Lock()
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        """A parent's thread may have held the lock at the fork: the child's own."""
        self._lock = threading.Lock()

    def _model(self, context: str) -> LinearModel:
        m = self._models.get(context)
        if m is None:
            m = self._models[context] = self.policy.new_model(len(self.names))
        return m

    def reload(self, stats: Mapping[str, Mapping[str, LinearStats]]) -> None:
        """Replace every context's statistics with the store's (``load_features``); a
        path's statistics of another dimension are left out (another hashing)."""
        dim = self.policy.dim
        models: dict[str, LinearModel] = {}
        for ctx, paths in stats.items():
            m = self.policy.new_model(len(self.names))
            for name, st in paths.items():
                k = self._index.get(name)
                if k is not None and st.dim == dim:
                    m.load(k, st.copy())
            models[ctx] = m
        with self._lock:
            self._models = models
            self._started.clear()

    def fold(self, outcomes: Sequence[Outcome]) -> None:
        """Add the feature evidence of ``outcomes`` (first attempts with a vector of this
        router's dimension) to the models of the task level and their context."""
        todo = [o for o in outcomes if o.features is not None and feature_stats.counts(o)]
        if not todo:
            return
        dim = self.policy.dim
        with self._lock:
            for o in todo:
                k = self._index.get(o.path)
                if k is None:
                    continue
                assert o.features is not None
                d, x = decode_features(o.features)
                if d != dim:
                    continue
                idx, val = with_bias(x, dim)
                for ctx in o.evidence_keys():
                    self._model(ctx).observe(k, idx, val, o.reward, o.created_at)

    def rank(
        self,
        context: str,
        x: SparseVector | None,
        rng: np.random.Generator,
        successes: FloatArray,
        failures: FloatArray,
        costs: Sequence[float] | None = None,
        price: float = 0.0,
    ) -> ContextualDecision:
        """The contextual decision for a request with features ``x`` (None: the bias
        alone) in ``context``; ``successes``/``failures`` are the paths' first-attempt
        Beta weights there (the cold start)."""
        with self._lock:
            m = self._model(context)
            for k, (s, f) in enumerate(zip(successes.tolist(), failures.tolist(), strict=True)):
                last = self._started.get((context, k))
                total = s + f
                if (
                    last is None
                    or abs(total - last[0]) > max(1.0, _COLD_DRIFT * total)
                    or abs(s - last[1]) > max(0.5, _COLD_DRIFT * total)
                ):
                    m.cold_start(k, s, f, self.prior)
                    self._started[(context, k)] = (total, s)
            return self.policy.rank(m, x, rng, costs, price)

    def influential(self, context: str, top: int = 5) -> dict[str, list[tuple[int, float]]]:
        """Each path's ``top`` hashed features by |posterior mean weight|: ``(index,
        weight)``, largest first (empty where the path learned none yet)."""
        with self._lock:
            m = self._models.get(context)
            if m is None:
                return {n: [] for n in self.names}
            return {
                n: [(i, w) for i, w, _ in m.influential(k, top) if w != 0.0]
                for k, n in enumerate(self.names)
            }


class FeatureRanking(NamedTuple):
    """A feature router's feature function and its contextual models."""

    features: Features
    models: FeatureModels


def feature_ranking(
    fn: Callable[..., Any],
    policy: ContextualThompsonSampling,
    names: Sequence[str],
    prior: tuple[float, float],
) -> FeatureRanking:
    """The collaborators of ``Router(features=fn)`` ranking with ``policy``."""
    return FeatureRanking(Features(fn, policy.dim), FeatureModels(policy, names, prior))
