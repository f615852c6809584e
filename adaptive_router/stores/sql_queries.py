"""Row reads of the SQL store: the query behind :meth:`SQLStore.attempt_rows` (a few
columns rather than whole Outcome objects), and the decoding of a stored decision."""

from __future__ import annotations

import sqlalchemy as sa

from adaptive_router.policies.contextual_decision import decode
from adaptive_router.stores.base import AttemptRow
from adaptive_router.stores.schema import outcomes as outcomes_table


def attempt_rows(
    engine: sa.Engine, task: str, since: float, until: float | None
) -> list[AttemptRow]:
    """A few columns rather than whole Outcome objects: a day of traffic plots quickly."""
    c = outcomes_table.c
    q = (
        sa.select(
            c.path, c.attempt, c.success, c.cost_usd, c.created_at, c.request_id, c.latency_ms
        )
        .where(c.task == task, c.created_at >= since)
        .order_by(c.created_at)
    )
    if until is not None:
        q = q.where(c.created_at < until)
    with engine.connect() as conn:
        return [
            AttemptRow(str(r[0]), int(r[1]), bool(r[2]), r[3], float(r[4]), str(r[5]), r[6])
            for r in conn.execute(q)
        ]


def decision_data(stored: bytes | str | None) -> bytes | None:
    """``outcomes.decision`` as ``Outcome.decision_data``: checked by decoding it once (a
    malformed record fails here, naming the problem, not deep inside evaluate()); JSON
    that development builds wrote is re-encoded."""
    if stored is None:
        return None
    decision = decode(stored)
    if isinstance(stored, bytes) and stored[:1] != b"{":
        return stored
    return decision.to_bytes()
