"""Prices: the cost of a call from its token counts, with genai-prices' offline data."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

logger = logging.getLogger(__name__)


class Pricer:
    """Turns (model, input tokens, output tokens, cached tokens) into US dollars.

    Prices come from ``genai-prices`` (data shipped with the package, no network).
    ``overrides`` maps a model name to ``(input_usd_per_million, output_usd_per_million)``
    for private or fine-tuned models. An unknown model costs ``None`` — never a silent
    0 — and is warned about once per model.
    """

    def __init__(self, overrides: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.overrides: dict[str, tuple[float, float]] = {}
        for model, pair in (overrides or {}).items():
            try:
                inp, out = (float(pair[0]), float(pair[1]))
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"prices[{model!r}] must be (input_usd_per_mtok, output_usd_per_mtok), "
                    f"got {pair!r}"
                ) from None
            if not (math.isfinite(inp) and math.isfinite(out) and inp >= 0 and out >= 0):
                raise ValueError(f"prices[{model!r}] must be two finite numbers >= 0")
            self.overrides[model] = (inp, out)
        self._unknown: set[str] = set()
        self._lock = threading.Lock()

    def cost(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """Dollars for one call, or None when the model or the token counts are unknown.

        ``input_tokens`` counts every prompt token; ``cache_read_tokens`` and
        ``cache_write_tokens`` say how many of them the provider's prompt cache served or
        stored, which genai-prices bills at the model's cache rates. An override has no
        cache rates, so its cached tokens cost the plain input price (an upper bound).
        """
        if model is None or (input_tokens is None and output_tokens is None):
            return None
        inp, out = input_tokens or 0, output_tokens or 0
        if model in self.overrides:
            p_in, p_out = self.overrides[model]
            return (inp * p_in + out * p_out) / 1_000_000
        if model in self._unknown:
            return None
        usage = PriceUsage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache_read_tokens or None,
            cache_write_tokens=cache_write_tokens or None,
        )
        try:
            price = calc_price(usage, model_ref=model)
        except LookupError:
            with self._lock:
                first = model not in self._unknown
                self._unknown.add(model)
            if first:
                logger.warning(
                    "no price known for model %r; its cost is recorded as unknown "
                    "(give Router(prices={model: (input, output USD per million tokens)}))",
                    model,
                    extra={"model": model},
                )
            return None
        return float(price.total_price)
