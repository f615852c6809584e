"""Off-policy evaluation: what another policy would have achieved on a router's logs.

- :mod:`~adaptive_router.ope.targets`: what a target means on logged decisions (the
  records themselves are :mod:`adaptive_router.policies.logged_decision`'s).
- :mod:`~adaptive_router.ope.evaluation`: :func:`~adaptive_router.ope.evaluation.evaluate`,
  inverse-propensity and self-normalised estimates from a store's outcomes.
- :mod:`~adaptive_router.ope.confidence`: honest intervals on an effective sample size.

Nothing is imported here (scipy loads only when an interval is computed): import from the
submodules, or ``from adaptive_router import evaluate``.
"""
