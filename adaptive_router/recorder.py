"""Moved to :mod:`adaptive_router.router.recorder`; this name keeps old imports working."""

from __future__ import annotations

from adaptive_router.router.recorder import HIGH_WATER, Recorder

__all__ = ["HIGH_WATER", "Recorder"]
