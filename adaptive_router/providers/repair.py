"""Repairing an answer that fails validation: one follow-up in the same conversation,
and :func:`repair_counter` to count them."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from adaptive_router import forks
from adaptive_router.errors import ConfigurationError
from adaptive_router.paths import Path

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def check_repair(repair: object, schema: object, model: str) -> int:
    """``repair=`` as a number of follow-up requests (``True`` = 1, ``False`` = 0)."""
    if isinstance(repair, bool):
        n = int(repair)
    elif isinstance(repair, int) and repair >= 0:
        n = repair
    else:
        raise ConfigurationError(
            f"repair must be True/False or a number of follow-ups >= 0, got {repair!r}"
        )
    if n and schema is None:
        raise ConfigurationError(
            f"path {model!r}: repair= needs schema=: without a schema the text is the result "
            "and there is nothing to validate or repair"
        )
    return n


REPAIR_PROMPT = (
    "Your answer above could not be used: {error}.{schema}\n"
    "Reply with the corrected JSON only: no explanation, no code fence."
)
#: A JSON schema longer than this is not quoted in the repair message.
MAX_REPAIR_SCHEMA_CHARS = 4000


def schema_sentence(schema: Any) -> str:
    try:
        from pydantic import TypeAdapter

        adapter = schema if isinstance(schema, TypeAdapter) else TypeAdapter(schema)
        text = json.dumps(adapter.json_schema(), separators=(",", ":"))
    except Exception:  # a schema pydantic cannot describe: the error alone must do
        return ""
    if len(text) > MAX_REPAIR_SCHEMA_CHARS:
        return ""
    return f" The JSON must match this JSON schema: {text}"


class RepairCounter:
    """How often a provider path asked its model to correct an invalid answer.

    ``sent``: follow-up requests sent; ``fixed``: those whose answer then validated;
    ``failed``: the rest (still invalid, or the follow-up request itself failed).
    Thread-safe; read it with :func:`repair_counter` (``repair_counter(path).fixed``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._fixed = 0
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    def __repr__(self) -> str:
        return f"RepairCounter(sent={self.sent}, fixed={self.fixed}, failed={self.failed})"

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def fixed(self) -> int:
        return self._fixed

    @property
    def failed(self) -> int:
        with self._lock:
            return self._sent - self._fixed

    def _count(self, *, sent: int = 0, fixed: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._fixed += fixed


def repair_counter(path: Path) -> RepairCounter:
    """The :class:`RepairCounter` of a provider path built with ``repair=``.

    ``repair_counter(path).fixed`` is how many invalid answers a follow-up turned into
    valid ones. Raises ``ValueError`` for a path without repair.
    """
    counter = path.metadata.get("repairs")
    if not isinstance(counter, RepairCounter):
        raise ValueError(
            f"path {path.name!r} has no repair counter: build it with "
            "openai_path(..., repair=True) or anthropic_path(..., repair=True)"
        )
    return counter
