"""What a call costs: usage captured from SDK calls, prices, and each path's cost prior.

- :mod:`~adaptive_router.metering.capture`: hooks on the openai and anthropic SDKs'
  clients that record each call's token usage, installed while a router meters.
- :mod:`~adaptive_router.metering.bill`: an attempt's usage from the calls captured
  while it ran.
- :mod:`~adaptive_router.metering.prices`: the dollars of a call from its tokens
  (genai-prices' offline data, cached per model and price window).
- :mod:`~adaptive_router.metering.cost_priors`: each path's expected cost per attempt
  before it has any history.

Nothing is imported here: import from the submodules.
"""
