"""Off-policy evaluation: what another policy would have achieved on a router's logs.

- :mod:`~adaptive_router.ope.logged_decision`: a logged decision (the evidence and
  draws a first choice used) and the probabilities it implies.
- :mod:`~adaptive_router.ope.evaluation`: :func:`~adaptive_router.ope.evaluation.evaluate`,
  inverse-propensity and self-normalised estimates from a store's outcomes.
- :mod:`~adaptive_router.ope.confidence`: honest intervals on an effective sample size.

Nothing is imported here (scipy loads only when an interval is computed): import from the
submodules, or ``from adaptive_router import evaluate``.
"""
