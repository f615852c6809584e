"""What a target of :func:`~adaptive_router.ope.evaluation.evaluate` means on logged
decisions: a ``{path: probability}`` mapping checked against the logged paths, an
objective or a Thompson Sampling policy replayed on each decision's logged evidence, and
the targets no logged decision can score (a spend target). Decision logic without I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

from adaptive_router.policies.logged_decision import LoggedDecision
from adaptive_router.policies.objectives import (
    OBJECTIVE_NAMES,
    Objective,
    ObjectiveThompsonSampling,
    expected_costs,
)
from adaptive_router.policies.propensity import EvidenceSnapshot, objective_costs
from adaptive_router.policies.thompson import Policy, ThompsonSampling

__all__ = ["Target", "check_mapping", "refuse_spend_target", "target_policy", "target_snapshot"]

#: What :func:`~adaptive_router.ope.evaluation.evaluate` takes as a target.
Target = str | Mapping[str, float] | Policy | Objective


def check_mapping(target: Mapping[str, float], known: list[str]) -> dict[str, float]:
    unknown = [k for k in target if k not in known]
    if unknown:
        raise ValueError(f"target names unknown path(s) {unknown}; the logged paths are {known}")
    q = {str(k): float(v) for k, v in target.items()}
    if any(not (math.isfinite(v) and v >= 0.0) for v in q.values()) or not math.isclose(
        sum(q.values()), 1.0, abs_tol=1e-6
    ):
        raise ValueError(f"target probabilities must be >= 0 and sum to 1, got {dict(target)}")
    return q


def target_policy(target: Target, known: list[str]) -> tuple[ThompsonSampling, bool]:
    """The target as a policy, and whether it inherits the logged prior and floor."""
    if isinstance(target, str):
        if target not in OBJECTIVE_NAMES:
            raise ValueError(
                f"target {target!r} is neither a logged path ({', '.join(known)}) nor an "
                f"objective ({', '.join(OBJECTIVE_NAMES)})"
            )
        return ObjectiveThompsonSampling(objective=target), True
    if isinstance(target, Objective):
        refuse_spend_target(target)
        return ObjectiveThompsonSampling(objective=target), True
    if type(target) in (ThompsonSampling, ObjectiveThompsonSampling):
        if isinstance(target, ObjectiveThompsonSampling):
            refuse_spend_target(target.objective)
        return cast(ThompsonSampling, target), False
    raise ValueError(
        "target must be a path name, a {path: probability} mapping, an objective or a "
        f"ThompsonSampling/ObjectiveThompsonSampling policy; got {type(target).__name__}"
    )


def refuse_spend_target(objective: Objective) -> None:
    """A spend target ranks by ``θ - λ·c`` with λ learned from the target policy's own
    spend, which the logs do not show (they hold the logging router's): no per-decision
    probability of it exists to reweight by, and scoring it as another objective would be
    a silent wrong answer."""
    if objective.paced:
        raise ValueError(
            "target: a spend target (Objective(target_usd_per_request=...)) cannot be "
            "evaluated on logged decisions: its price per dollar depends on what it would "
            "have spent, which the logs do not show. Evaluate a path, a {path: probability} "
            "mapping (e.g. the share of requests each path would get under the target), "
            "or the 'success' / 'cost' objectives; replay the target in the simulator "
            "(adaptive_router.simulation) to see its spend"
        )


def target_snapshot(
    policy: ThompsonSampling,
    inherit: bool,
    d: LoggedDecision,
    costs: dict[str, tuple[float, float]],
) -> EvidenceSnapshot:
    """The decision's evidence as ``policy`` would rank it; ``inherit``: a target given as
    an objective alone keeps each decision's logged prior and exploration floor."""
    prior = d.prior if inherit else policy.prior
    explore = d.explore if inherit else policy.explore
    s, f = d.successes, d.failures
    alpha = tuple(prior[0] + float(x) for x in s)
    beta = tuple(prior[1] + float(x) for x in f)
    c = None
    if isinstance(policy, ObjectiveThompsonSampling) and not policy.objective.ranks_by_success:
        obj = policy.objective
        if d.costs_usd is not None and d.latencies_ms is not None:
            cu, lm = list(d.costs_usd), list(d.latencies_ms)
        else:
            cu = expected_costs([costs.get(p, (math.nan, math.nan))[0] for p in d.paths]).tolist()
            lm = expected_costs([costs.get(p, (math.nan, math.nan))[1] for p in d.paths]).tolist()
        c = objective_costs((obj.cost_weight, obj.usd_per_second), cu, lm)
    return EvidenceSnapshot(alpha, beta, explore=explore, skipped=d.skipped, costs=c)
