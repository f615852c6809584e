"""Each path's cost prior per attempt, computed once when the router is built: its
``expected_cost_usd``, else its declared ``cost_usd``, else its model's price for its
``expected_tokens``, else none.

A provider path knows its model but not how many tokens a request will use, so it gets
no price-based prior unless ``Path(expected_tokens=(input, output))`` says so: a guessed
default would decide ``max_cost_usd`` refusals and the order against paths with stated
priors on a number nobody gave. No I/O: the pricer reads genai-prices' bundled data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adaptive_router.metering.prices import Pricer
from adaptive_router.paths import Path

logger = logging.getLogger(__name__)

__all__ = ["cost_priors"]


def cost_priors(paths: Sequence[Path], pricer: Pricer | None) -> list[float | None]:
    """Per path, in order: ``expected_cost_usd`` if given, else the declared ``cost_usd``
    (what its attempts of unknown cost are recorded at), else ``model`` priced by
    ``pricer`` for ``expected_tokens`` (overrides first, then genai-prices, at the
    prices in force now; ``"provider/model"`` falls back to ``"model"``), else None (no
    prior). A model with no known price gets no prior and one warning naming the path
    and the model (this runs once per router)."""
    out: list[float | None] = []
    for p in paths:
        prior = p.expected_cost_usd if p.expected_cost_usd is not None else p.cost_usd
        if prior is None and p.expected_tokens is not None and p.model is not None:
            if pricer is None:
                pricer = Pricer()
            inp, outp = p.expected_tokens
            prior = pricer.quote(p.model, inp, outp)
            if prior is None and "/" in p.model:
                # LiteLLM's "provider/model": priced as "model", as a litellm path prices
                # a call whose response does not name the model it served.
                prior = pricer.quote(p.model.split("/", 1)[1], inp, outp)
            if prior is None:
                logger.warning(
                    "path %r: no price known for model %r, so expected_tokens gives it no "
                    "cost prior (give Path(expected_cost_usd=...) or Observability(prices={model: "
                    "(input, output USD per million tokens)}))",
                    p.name,
                    p.model,
                    extra={"path": p.name, "model": p.model},
                )
        out.append(prior)
    return out
