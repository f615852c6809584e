"""Stores: where outcomes and per-path evidence are kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptive_router._imports import lazy_names
from adaptive_router.errors import ConfigurationError
from adaptive_router.stores.base import (
    FeatureEvidence,
    HealthSnapshots,
    InProcess,
    OutcomeUpdates,
    PathEvidence,
    PathState,
    PendingDecision,
    SharedEvidence,
    SpendTotals,
    Store,
)
from adaptive_router.stores.memory import MemoryStore

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from adaptive_router.stores.sql import SQLStore, mask_url

# SQLAlchemy (and psycopg for PostgreSQL) load with the SQL store, not with the package.
__getattr__, __dir__ = lazy_names(
    __name__, {"adaptive_router.stores.sql": ("SQLStore", "mask_url")}
)

__all__ = [
    "FeatureEvidence",
    "HealthSnapshots",
    "InProcess",
    "MemoryStore",
    "OutcomeUpdates",
    "PathEvidence",
    "PathState",
    "PendingDecision",
    "SQLStore",
    "SharedEvidence",
    "SpendTotals",
    "Store",
    "mask_url",
    "open_store",
]


def open_store(store: str | Store | Engine | None, *, start_offline: bool = False) -> Store:
    """A Store from a URL (``memory://``, ``sqlite:///…``, ``postgresql://…``), Engine or Store.

    ``start_offline``: a database that is unreachable (not one that refuses the
    credentials or does not exist) gives an unconnected store instead of raising; see
    :class:`SQLStore`. A Store given is returned as it is.
    """
    if isinstance(store, Store):
        return store
    if isinstance(store, str) and store.startswith("memory://"):
        return MemoryStore()
    # Only a SQL store, or an Engine, needs SQLAlchemy: imported here, not with the package.
    from sqlalchemy.engine import Engine

    from adaptive_router.stores.sql import SQLStore

    if store is None:
        return SQLStore("sqlite:///adaptive_router.db", start_offline=start_offline)
    if isinstance(store, Engine):
        return SQLStore(store, start_offline=start_offline)
    if isinstance(store, str):
        if "://" not in store:
            # Without "://" the user info cannot be told apart: with an "@" it may hold a
            # password, so the string is not repeated.
            shown = "the string given" if "@" in store else repr(store)
            raise ConfigurationError(
                f"store: {shown} is not a URL; use 'memory://', 'sqlite:///path.db' "
                "or 'postgresql://user@host:5432/db'"
            )
        return SQLStore(store, start_offline=start_offline)
    raise ConfigurationError(
        f"store must be a URL string, an Engine or a Store, got {type(store).__name__}"
    )
