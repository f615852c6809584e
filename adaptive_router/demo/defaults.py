"""The demo's defaults, apart from its world (:mod:`.scenario`): the command line shows
them in ``adaptive-router demo --help`` without importing numpy, pydantic and the fake
provider."""

from __future__ import annotations

TASK = "order-extraction"
DEFAULT_DB = "adaptive_router_demo.db"
DEFAULT_REQUESTS = 2000
DEFAULT_LIVE_REQUESTS = 120
DEFAULT_SEED = 7
