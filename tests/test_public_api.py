"""What a user imports from ``adaptive_router`` itself."""

from __future__ import annotations

import adaptive_router
from adaptive_router import Path, Result, Router, Usage


def test_result_and_usage_are_exported_and_their_cost_is_recorded() -> None:
    assert {"Result", "Usage"} <= set(adaptive_router.__all__)

    def geocode() -> Result:
        return Result({"lat": 48.85}, Usage(cost_usd=0.005))

    with Router(
        [Path(geocode, name="geocoder")], lambda v: "lat" in v, "t", store="memory://"
    ) as router:
        assert router.run() == {"lat": 48.85}
        (outcome,) = router.store.outcomes("t")
    assert outcome.cost_usd == 0.005
