"""Stores: where outcomes and per-path evidence are kept."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from adaptive_router.errors import ConfigurationError
from adaptive_router.stores.base import PathEvidence, PathState, PendingDecision, Store
from adaptive_router.stores.memory import MemoryStore
from adaptive_router.stores.sql import SQLStore, mask_url

__all__ = [
    "MemoryStore",
    "PathEvidence",
    "PathState",
    "PendingDecision",
    "SQLStore",
    "Store",
    "mask_url",
    "open_store",
]


def open_store(store: str | Store | Engine | None) -> Store:
    """A Store from a URL (``memory://``, ``sqlite:///…``, ``postgresql://…``), Engine or Store."""
    if store is None:
        return SQLStore("sqlite:///adaptive_router.db")
    if isinstance(store, Store):
        return store
    if isinstance(store, Engine):
        return SQLStore(store)
    if isinstance(store, str):
        if store.startswith("memory://"):
            return MemoryStore()
        if "://" not in store:
            # Without "://" the user info cannot be told apart: with an "@" it may hold a
            # password, so the string is not repeated.
            shown = "the string given" if "@" in store else repr(store)
            raise ConfigurationError(
                f"store: {shown} is not a URL; use 'memory://', 'sqlite:///path.db' "
                "or 'postgresql://user@host:5432/db'"
            )
        return SQLStore(store)
    raise ConfigurationError(
        f"store must be a URL string, an Engine or a Store, got {type(store).__name__}"
    )
