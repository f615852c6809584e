"""Paths over the real ``openai`` and ``anthropic`` SDKs.

:func:`openai_path` and :func:`anthropic_path` build a :class:`~adaptive_router.paths.Path`
that sends one chat request per attempt, with:

- an explicit timeout passed to the SDK request (``client.with_options(timeout=...,
  max_retries=0)``): SDK retries are off because the router retries, by error kind,
  within its budget, and records every attempt;
- the token usage read from the response and returned as
  :class:`~adaptive_router.outcomes.Result` (the router prices it and records it);
- the text, or with ``schema=`` a validated pydantic object
  (:func:`~adaptive_router.validation.parse_output`: code fences and prose around the JSON
  are tolerated, broken JSON is an error, never a half-valid object);
- errors left as the SDK raises them, so :func:`~adaptive_router.resilience.classify`
  maps them to kinds (429 ``rate_limited``, 5xx and 529 ``server_error``, timeouts,
  connection errors, 401/403 and a missing API key ``auth_error`` — never retried, never
  evidence, the path's breaker opened in this process — other 4xx ``client_error``); an
  empty answer raises with kind
  ``empty`` and unparsable or invalid JSON with kind ``invalid_output``, both carrying
  the tokens spent (``exc.usage``) so failed attempts are costed too.

With ``repair=True`` (and a schema) an answer that fails validation gets one follow-up
in the same conversation asking the model to correct it (:func:`repair_counter` counts
them). :func:`router_from_models` builds a router from model names (``"gpt-4o"``,
``"claude-sonnet-4-6"``), choosing the provider by the name's prefix.

Both work with :meth:`Router.run` (the sync client) and :meth:`Router.arun` (the async
client, awaited natively). Clients are created on first use from the environment
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) unless given; API keys are never logged,
echoed or stored by this module.

:func:`litellm_path` (the optional ``litellm`` extra) reaches any of LiteLLM's providers
the same way. It is imported on first use (``from adaptive_router.providers import
litellm_path``), never by this package itself: importing LiteLLM takes seconds.

Example::

    from pydantic import BaseModel
    from adaptive_router import Router
    from adaptive_router.providers import anthropic_path, openai_path

    class Order(BaseModel):
        quantity: int
        item: str
        city: str

    router = Router(
        paths=[
            openai_path("gpt-4o", "Extract the order as JSON: {text}", schema=Order),
            anthropic_path("claude-sonnet-4-6", "Extract the order as JSON: {text}",
                           schema=Order, timeout=20),
        ],
        success_fn=lambda order: order.quantity > 0,
        task="order-extraction",
    )
    order = router.run(text="2x widget to Berlin")   # an Order
"""

from adaptive_router._imports import require
from adaptive_router.providers.anthropic import anthropic_path
from adaptive_router.providers.base import (
    MalformedResponseError,
    PromptError,
)
from adaptive_router.providers.base import (
    Messages as Messages,
)
from adaptive_router.providers.base import (
    Prompt as Prompt,
)
from adaptive_router.providers.models import model_path, provider_of, router_from_models
from adaptive_router.providers.openai import openai_path
from adaptive_router.providers.repair import (
    MAX_REPAIR_SCHEMA_CHARS as MAX_REPAIR_SCHEMA_CHARS,
)
from adaptive_router.providers.repair import (
    REPAIR_PROMPT as REPAIR_PROMPT,
)
from adaptive_router.providers.repair import (
    RepairCounter,
    repair_counter,
)
from adaptive_router.resilience import MissingCredentialsError


def __getattr__(name: str) -> object:
    # PEP 562: litellm_path's module imports LiteLLM (seconds), so it is loaded on first use.
    # Not in __all__: a star import must not pull LiteLLM in (or fail without it).
    if name == "litellm_path":
        # Looked up, not imported: LiteLLM must first be told not to fetch its price map.
        require("litellm", "litellm", "litellm_path")
        from adaptive_router.providers.litellm import litellm_path

        return litellm_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MalformedResponseError",
    "MissingCredentialsError",
    "PromptError",
    "RepairCounter",
    "anthropic_path",
    "model_path",
    "openai_path",
    "provider_of",
    "repair_counter",
    "router_from_models",
]
