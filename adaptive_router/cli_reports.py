"""Moved to :mod:`adaptive_router.cli.reports`; this name keeps old imports working."""

from adaptive_router.cli.reports import costs, plot, register

__all__ = ["costs", "plot", "register"]
