"""Routing policies: one small object with ``rank`` that the Router and the simulator both call.

A policy sees, per path, the (possibly decayed) weight of successes and failures
observed so far and returns the order in which to try the paths. Arrays may
carry leading batch dimensions (``(..., K)``), which is how the simulator runs
thousands of independent replications in one numpy call with the very same
code the live Router runs for one request.

The evidence a policy gets is the paths' *first-attempt* evidence: attempts that were
their request's first, which see every kind of input. Attempts made after another path
of the request failed see only the inputs it failed on (often the hard ones); folding
them in would make the incumbent's rivals look worse than they are. :class:`ThompsonSampling`
also takes that *after-failure* evidence (``after_successes``/``after_failures``) and
orders the paths after the first one by it.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from adaptive_router.errors import ConfigurationError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@runtime_checkable
class Policy(Protocol):
    """What the Router and the simulator need from a policy."""

    half_life: float | None
    """Seconds (or simulator steps) after which evidence counts half; None = no decay."""

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Path indices best-first, shape ``successes.shape``, from the paths' first-attempt
        evidence (decayed weights of successes and failures)."""
        ...


def after_failure_generator(rng: np.random.Generator) -> np.random.Generator:
    """The generator for a policy's after-failure draws (``rank(..., after_rng=)``): a child
    spawned from ``rng``'s seed sequence, which draws nothing from ``rng``, so the first
    choices use ``rng`` exactly as without after-failure evidence. Each call spawns the
    next child; the Router and :func:`~adaptive_router.simulation.simulate` each call it
    once for a fresh generator, so the same seed gives both the same two streams. Falls
    back to ``rng`` itself when it cannot spawn (numpy < 1.25, or no seed sequence)."""
    try:
        child: np.random.Generator = rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):
        return rng
    return child


def takes_after_failure(policy: object) -> bool:
    """Whether ``policy`` ranks the positions after the first by the after-failure
    evidence: it has :meth:`~ThompsonSampling.rank_later` (the Router and the simulator
    call it when a request's first attempt failed), as :class:`ThompsonSampling` does.
    Other policies get the first-attempt evidence alone, which orders every position."""
    return callable(getattr(policy, "rank_later", None))


#: Evidence older than this many half-lives weighs < 1e-18 and is treated as 0. The SQL
#: store applies the same cut: PostgreSQL raises on float underflow instead of
#: rounding to zero, so the arithmetic must never produce a denormal product.
MAX_HALF_LIVES = 60.0
#: Decayed sums below this are snapped to 0 before being multiplied (same reason).
TINY = 1e-200


def explore_first(key: FloatArray, rng: np.random.Generator, explore: float, first: float) -> None:
    """The exploration floor, in place: in each row of ``key`` (batch dimensions first, paths
    last), with probability ``explore``, set a uniformly chosen path's key to ``first`` —
    a value the ranking puts before every other. One draw per row, then one pick per row
    only when some row explores (the random stream the simulator's kernel reproduces)."""
    if explore <= 0.0:
        return
    batch = key.shape[:-1]
    exploring = rng.random(batch) < explore
    if np.any(exploring):
        pick = rng.integers(0, key.shape[-1], size=batch)
        current = np.take_along_axis(key, pick[..., None], -1)[..., 0]
        np.put_along_axis(key, pick[..., None], np.where(exploring, first, current)[..., None], -1)


def decay_factor(elapsed: float, half_life: float | None) -> float:
    """Weight left to evidence ``elapsed`` seconds old (1.0 without a half-life).

    ``elapsed <= 0`` gives 1.0: evidence is never amplified.
    """
    if half_life is None or elapsed <= 0.0:
        return 1.0
    halvings = elapsed / half_life
    if halvings > MAX_HALF_LIVES:
        return 0.0
    return math.pow(0.5, halvings)


def _scale(value: float, factor: float) -> float:
    return 0.0 if value < TINY else value * factor


def fold(
    sums: tuple[float, float, float],
    reward: float,
    at: float,
    half_life: float | None,
) -> tuple[float, float, float]:
    """Add one observation to decayed sums ``(success_w, failure_w, ref_time)``.

    This is the exact formula the SQL store runs as one atomic UPDATE: the sums
    are kept relative to ``ref_time`` = the newest observation time; an
    observation older than ``ref_time`` (clock skew between processes, or a
    late ``report``) is added already decayed instead of rewinding the sums.
    The result equals a replay ``sum(r_i * 0.5 ** ((ref - t_i) / half_life))``
    whatever order observations arrive in.
    """
    s_w, f_w, ref = sums
    keep = decay_factor(at - ref, half_life)
    add = decay_factor(ref - at, half_life)
    return (
        _scale(s_w, keep) + reward * add,
        _scale(f_w, keep) + (1.0 - reward) * add,
        max(at, ref),
    )


def check_prior(prior: object) -> tuple[float, float]:
    """A Beta prior ``(alpha, beta)``: two finite numbers > 0, as floats."""
    try:
        a, b = (float(prior[0]), float(prior[1]))  # type: ignore[index]
        size = len(prior)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError):
        raise ConfigurationError(
            f"prior must be a pair of positive numbers (alpha, beta), got {prior!r}"
        ) from None
    if (
        isinstance(prior, (str, bytes))
        or size != 2
        or not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b))
    ):
        raise ConfigurationError(
            f"prior must be two finite numbers > 0 such as (1.0, 1.0), got {prior!r}"
        )
    return a, b


def check_explore(explore: object) -> float:
    """An exploration probability in [0, 1), as a float."""
    if (
        isinstance(explore, bool)
        or not isinstance(explore, (int, float))
        or not 0.0 <= explore < 1.0
    ):
        raise ConfigurationError(f"explore must be a probability in [0, 1), got {explore!r}")
    return float(explore)


class ThompsonSampling:
    """Thompson Sampling over Beta posteriors, with an exploration floor.

    θ_k ~ Beta(prior_α + successes_k, prior_β + failures_k); paths are tried in
    descending θ. With probability ``explore`` a uniformly chosen path is put
    first instead, so that every path keeps a trickle of traffic and a path
    that recovers is noticed even when its posterior has gone cold.
    """

    def __init__(
        self,
        prior: tuple[float, float] = (1.0, 1.0),
        half_life: float | None = None,
        explore: float = 0.02,
    ) -> None:
        self.prior = check_prior(prior)
        if half_life is not None and not (
            isinstance(half_life, (int, float))
            and not isinstance(half_life, bool)
            and half_life > 0
            and math.isfinite(half_life)
        ):
            raise ConfigurationError(f"half_life must be > 0 seconds (or None), got {half_life!r}")
        self.half_life = half_life
        self.explore = check_explore(explore)

    def __repr__(self) -> str:
        return (
            f"ThompsonSampling(prior={self.prior}, half_life={self.half_life}, "
            f"explore={self.explore})"
        )

    def sample(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> FloatArray:
        """One θ draw per path (and per batch row)."""
        return rng.beta(self.prior[0] + successes, self.prior[1] + failures)

    def rank(
        self,
        successes: FloatArray,
        failures: FloatArray,
        rng: np.random.Generator,
        after_successes: FloatArray | None = None,
        after_failures: FloatArray | None = None,
        after_rng: np.random.Generator | None = None,
    ) -> IntArray:
        """Path indices best-first, shape ``successes.shape``.

        ``successes``/``failures`` are the first-attempt evidence: θ_k is drawn from each
        path's Beta posterior of it and the first path is the largest θ (or, with
        probability ``explore``, a uniformly chosen one). With ``after_successes`` and
        ``after_failures`` (the evidence of attempts made after another path failed), the
        other paths follow as :meth:`rank_later` orders them, drawing with ``after_rng``
        (default ``rng``): K - 1 more draws, made only when K > 2 (with two paths the
        second is the other one). Without them, in descending θ_k.

        The Router and the simulator draw θ' from a generator of their own
        (:func:`after_failure_generator`), and only when a request's first attempt failed
        (they call :meth:`rank_later` then), so the first choices consume ``rng`` exactly
        as without after-failure evidence.
        """
        if successes.ndim == 1:
            order: IntArray = np.array(self._rank_one(successes, failures, rng), dtype=np.intp)
        else:
            theta = self.sample(successes, failures, rng)
            # θ <= 1 always, so 2.0 puts the explored path first.
            explore_first(theta, rng, self.explore, 2.0)
            order = np.argsort(-theta, axis=-1, kind="stable")
        return self._then_later(order, after_successes, after_failures, after_rng or rng)

    def _then_later(
        self,
        order: IntArray,
        after_successes: FloatArray | None,
        after_failures: FloatArray | None,
        rng: np.random.Generator,
        **later: Any,
    ) -> IntArray:
        """``order``'s first path, then :meth:`rank_later`'s order of the others (``later``:
        its extra keywords in a subclass); ``order`` as it is without after-failure
        evidence or with two paths (the second is the other one)."""
        if after_successes is None or after_failures is None or order.shape[-1] < 3:
            return order
        first = order[..., 0]
        rest = self.rank_later(first, after_successes, after_failures, rng, **later)
        return np.concatenate([first[..., None], rest], axis=-1)

    def rank_later(
        self,
        first: IntArray | int,
        after_successes: FloatArray,
        after_failures: FloatArray,
        rng: np.random.Generator,
    ) -> IntArray:
        """The paths other than ``first`` best-first, shape ``(..., K - 1)`` (``first``
        shaped ``(...)``; an int for the Router's one request): in descending θ'_k drawn
        from their after-failure posteriors, one draw per path by index, row by row.

        The Router and the simulator call it only when a request's first attempt failed:
        a request that succeeds at once draws nothing here."""
        if after_successes.ndim == 1:
            later = self._later_one(int(first), after_successes, after_failures, rng)
            return np.array(later, dtype=np.intp)
        rest, theta2 = self.sample_rest(np.asarray(first), after_successes, after_failures, rng)
        return np.take_along_axis(rest, np.argsort(-theta2, axis=-1, kind="stable"), axis=-1)

    def sample_rest(
        self,
        first: IntArray,
        after_successes: FloatArray,
        after_failures: FloatArray,
        rng: np.random.Generator,
    ) -> tuple[IntArray, FloatArray]:
        """The paths other than ``first`` (shape ``(...)``) in index order, shape
        ``(..., K - 1)``, and one θ' per path drawn from its after-failure posterior (in C
        order: row by row, each row's paths by index, as :meth:`_later_one` draws them)."""
        k = after_successes.shape[-1]
        j = np.arange(k - 1)
        rest = np.where(j < first[..., None], j, j + 1)
        s2 = np.take_along_axis(np.broadcast_to(after_successes, (*first.shape, k)), rest, -1)
        f2 = np.take_along_axis(np.broadcast_to(after_failures, (*first.shape, k)), rest, -1)
        theta2: FloatArray = rng.beta(self.prior[0] + s2, self.prior[1] + f2)
        return rest, theta2

    def _rank_one(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> list[int]:
        """The live Router's case (one request, K paths), without numpy's per-call array
        overhead: scalar draws consume the Generator exactly as the batched path does for
        a single row, so a one-replication simulation reproduces the Router's choices."""
        a0, b0 = self.prior
        draw = rng.beta
        theta = [
            draw(a0 + s, b0 + f) for s, f in zip(successes.tolist(), failures.tolist(), strict=True)
        ]
        if self.explore > 0.0 and rng.random() < self.explore:
            theta[int(rng.integers(0, len(theta)))] = 2.0
        # reverse=True keeps equal θs in index order, as the stable argsort does.
        return sorted(range(len(theta)), key=theta.__getitem__, reverse=True)

    def _later_one(
        self,
        first: int,
        after_successes: FloatArray,
        after_failures: FloatArray,
        rng: np.random.Generator,
    ) -> list[int]:
        """:meth:`rank_later` for one request, in plain floats (scalar draws consume the
        generator as a batch row does)."""
        a0, b0 = self.prior
        s2, f2 = after_successes.tolist(), after_failures.tolist()
        draw = rng.beta
        if len(s2) == 3:  # the common case, without a sort: two draws, one test
            a, b = (1, 2) if first == 0 else ((0, 2) if first == 1 else (0, 1))
            ta, tb = draw(a0 + s2[a], b0 + f2[a]), draw(a0 + s2[b], b0 + f2[b])
            return [a, b] if ta >= tb else [b, a]
        rest = [j for j in range(len(s2)) if j != first]
        theta2 = {j: draw(a0 + s2[j], b0 + f2[j]) for j in rest}
        # reverse=True keeps equal θ's in index order, as the stable argsort does.
        return sorted(rest, key=theta2.__getitem__, reverse=True)
