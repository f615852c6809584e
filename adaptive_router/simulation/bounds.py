"""The Lai–Robbins lower bound on regret, the reference curve for regret plots."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adaptive_router.policies.thompson import FloatArray

__all__ = ["bernoulli_kl", "lai_robbins_bound", "lai_robbins_constant"]


def bernoulli_kl(p: ArrayLike, q: ArrayLike) -> FloatArray:
    """KL(Bernoulli(p) ‖ Bernoulli(q)) in nats; ``inf`` where q ∈ {0, 1} and p ≠ q."""
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p_arr > 0, p_arr * np.log(p_arr / q_arr), 0.0)
        b = np.where(p_arr < 1, (1 - p_arr) * np.log((1 - p_arr) / (1 - q_arr)), 0.0)
    out: FloatArray = np.asarray(a + b, dtype=np.float64)
    return out


def lai_robbins_constant(rates: ArrayLike) -> float:
    """Σ over suboptimal arms of (μ* − μ_i) / KL(μ_i, μ*): regret grows like this × ln t.

    Arms tied with the best cost nothing; with μ* = 1 the KL is infinite and the
    bound is 0 (a perfect arm is identified in finite time).
    """
    mu = np.asarray(rates, dtype=np.float64)
    best = float(mu.max())
    sub = mu[mu < best]
    if sub.size == 0:
        return 0.0
    kl = bernoulli_kl(sub, best)
    with np.errstate(divide="ignore"):
        terms = np.where(np.isfinite(kl), (best - sub) / kl, 0.0)
    return float(terms.sum())


def lai_robbins_bound(rates: ArrayLike, t: ArrayLike) -> FloatArray:
    """Lai & Robbins (1985) asymptotic lower bound on Bernoulli regret after ``t`` pulls.

    Any consistent policy has ``liminf regret(t) / ln t >= lai_robbins_constant(rates)``;
    this returns ``constant × ln t`` (0 for t <= 1). It is asymptotic: at small t
    a good policy can sit below it.
    """
    tt = np.asarray(t, dtype=np.float64)
    out: FloatArray = lai_robbins_constant(rates) * np.log(np.maximum(tt, 1.0))
    return out
