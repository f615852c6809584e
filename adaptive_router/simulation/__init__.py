"""Offline simulator: what would the router have done?

The simulator runs ``R`` independent replications of a routing problem at once
with numpy and asks the policy for a ranking through the very same call the
live :class:`~adaptive_router.Router` makes, ``policy.rank(successes, failures,
rng)``, with arrays of shape ``(R, K)``. Pass it a
:class:`~adaptive_router.policies.thompson.ThompsonSampling` (or ``router.policy`` itself)
and the result describes the code users run; there is no second Thompson
Sampling implementation here.

Time is counted in requests (*steps*). A policy's ``half_life`` is read in
steps: after every step the decayed sums are multiplied by
``decay_factor(1, half_life) = 0.5 ** (1 / half_life)``, which is exactly what
the Router computes when its clock advances one second per request and its
``half_life`` is that many seconds. For live traffic at ``r`` requests per
second, a half-life of ``h`` steps is ``h / r`` seconds. (The Router also zeroes
evidence older than ``MAX_HALF_LIVES`` half-lives; repeated multiplication has taken it
below 1e-18 by then, so the two agree to float rounding.)

An attempt is one Bernoulli draw with the path's current success rate: retries,
timeouts, breakers and rate limits, which the Router applies inside an attempt, are
not modelled.

Two independent generators keep runs reproducible and comparisons fair:
``rng`` is consumed only by ``policy.rank`` (as in the Router, where nothing
else touches the router's generator), ``env_rng`` only by the environment,
which draws every path's outcome at every step (``env_rng.random((R, K))``)
whether or not the path is tried. Policies run with the same ``env_rng`` seed
therefore face the same outcomes (common random numbers), and
:func:`outcome_table` reproduces the draws for replaying them elsewhere.

Example::

    import numpy as np
    from adaptive_router.policies.thompson import ThompsonSampling
    from adaptive_router.simulation import abrupt, rngs, simulate

    env = abrupt([0.95, 0.85, 0.6], path=0, at=3_000, to=0.3)
    rng, env_rng = rngs(7)
    res = simulate(ThompsonSampling(half_life=200), env, 10_000, 100, rng=rng, env_rng=env_rng)
    res.adaptation_lag(path=0, since=3_000)

The package, one module per part: :mod:`~adaptive_router.simulation.engine`
(:func:`simulate`, :func:`compare`, :func:`rngs`), :mod:`~adaptive_router.simulation.kernel`
(the compiled engine, numba), :mod:`~adaptive_router.simulation.environment` (worlds and
scenarios), :mod:`~adaptive_router.simulation.baselines` (policies to compare with),
:mod:`~adaptive_router.simulation.results` and :mod:`~adaptive_router.simulation.bounds`
(the Lai–Robbins bound). Everything public is importable from this package.
"""

from adaptive_router.simulation.baselines import (
    UCB1,
    BlendedScore,
    EpsilonGreedy,
    Oracle,
    RatioOracle,
    StaticOrder,
    StepAware,
    UniformRandom,
    all_fixed_orders,
    policy_label,
    quality_first,
)
from adaptive_router.simulation.bounds import (
    bernoulli_kl,
    lai_robbins_bound,
    lai_robbins_constant,
)
from adaptive_router.simulation.engine import Engine as Engine
from adaptive_router.simulation.engine import compare, rngs, simulate
from adaptive_router.simulation.environment import BoolArray as BoolArray
from adaptive_router.simulation.environment import (
    Change,
    Environment,
    FinalPath,
    abrupt,
    drift,
    outcome_table,
    recovery,
    stationary,
)
from adaptive_router.simulation.results import SimulationResult, adaptation_lag, adaptation_lags

__all__ = [
    "UCB1",
    "BlendedScore",
    "Change",
    "Environment",
    "EpsilonGreedy",
    "FinalPath",
    "Oracle",
    "RatioOracle",
    "SimulationResult",
    "StaticOrder",
    "StepAware",
    "UniformRandom",
    "abrupt",
    "adaptation_lag",
    "adaptation_lags",
    "all_fixed_orders",
    "bernoulli_kl",
    "compare",
    "drift",
    "lai_robbins_bound",
    "lai_robbins_constant",
    "outcome_table",
    "policy_label",
    "quality_first",
    "recovery",
    "rngs",
    "simulate",
    "stationary",
]
