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

__all__ = ["cost_priors", "quote_model"]


def quote_model(pricer: Pricer, model: str, inp: int, out: int) -> tuple[str, float] | None:
    """``model``'s price for these tokens and the name it was priced by
    (:meth:`Pricer.resolve`: an override first, for LiteLLM's ``"provider/model"`` also
    the ``"model"`` part, as the calls' recorded costs are priced); else None."""
    name = pricer.resolve(model)
    if name is None:
        return None
    price = pricer.quote(name, inp, out)
    return None if price is None else (name, price)


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
        # A function of the request gives no prior: it is priced per request instead.
        if prior is None and isinstance(p.expected_tokens, tuple) and p.model is not None:
            if pricer is None:
                pricer = Pricer()
            quoted = quote_model(pricer, p.model, *p.expected_tokens)
            if quoted is not None:
                prior = quoted[1]
            else:
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
