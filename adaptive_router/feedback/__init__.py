"""Outcomes reported after the call: ``choose`` now, ``report`` later.

- :mod:`~adaptive_router.feedback.reporter`: :class:`~adaptive_router.feedback.reporter.Reporter`,
  the validation, exactly-once claim and pricing of a reported outcome, shared by
  :meth:`Router.report <adaptive_router.Router.report>` and processes with no router.
- :mod:`~adaptive_router.feedback.pending`: the decisions a router made and holds until
  they are reported or expire, through store outages.

Nothing is imported here: import from the submodules.
"""
