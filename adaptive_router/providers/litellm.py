"""Paths over LiteLLM (``pip install "adaptive-router[litellm]"``): :func:`litellm_path`.

LiteLLM speaks to some hundred providers (Bedrock, Vertex AI, Gemini, Ollama, Azure,
OpenAI-compatible servers…) behind one ``completion`` call that answers in OpenAI's
chat shape. This module is imported only when ``litellm_path`` is first used: importing
LiteLLM takes seconds, which nobody who does not use it should pay.

LiteLLM fetches its model price map over the network when it is imported, unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set: this module sets it to ``True`` (when the
environment has not set it) before the import, so LiteLLM uses the map it ships.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os

# Before the import below: LiteLLM reads it at import time (and would otherwise block the
# import on an HTTP request for its price map, or log a failure where there is no network).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from typing import Any

import litellm
from genai_prices import data_snapshot

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind, Usage
from adaptive_router.paths import INHERIT, Path, _Inherit
from adaptive_router.providers.base import (
    RESERVED_PARAMS,
    Prompt,
    ProviderCall,
    as_int,
    build_path,
    check_model,
    check_prompt,
)
from adaptive_router.providers.repair import check_repair
from adaptive_router.resilience import (
    CircuitBreaker,
    RateLimit,
    RetryPolicy,
    classify,
)
from adaptive_router.resilience.timeouts import check_timeout

__all__ = ["LiteLLMCall", "litellm_path"]

logger = logging.getLogger(__name__)

#: Request fields the path sets itself: LiteLLM's retries stay off (the router retries by
#: error kind and records every attempt), and streaming is not supported.
LITELLM_RESERVED = RESERVED_PARAMS | {"num_retries", "max_retries", "acompletion"}

# LiteLLM's exception classes, most specific first, and the kind each one is. LiteLLM
# raises its own classes (subclasses of openai's) for every provider; mapping them by
# class, not by status, matters where the status misleads: its APIConnectionError
# carries status 500, and a Timeout 408.
_KINDS: tuple[tuple[str, ErrorKind], ...] = (
    ("Timeout", ErrorKind.TIMEOUT),
    ("ContextWindowExceededError", ErrorKind.CLIENT_ERROR),
    ("ContentPolicyViolationError", ErrorKind.CLIENT_ERROR),
    ("BudgetExceededError", ErrorKind.CLIENT_ERROR),
    ("RateLimitError", ErrorKind.RATE_LIMITED),
    ("ServiceUnavailableError", ErrorKind.SERVER_ERROR),
    ("InternalServerError", ErrorKind.SERVER_ERROR),
    ("BadGatewayError", ErrorKind.SERVER_ERROR),
    ("APIConnectionError", ErrorKind.CONNECTION),
    ("AuthenticationError", ErrorKind.AUTH_ERROR),
    ("PermissionDeniedError", ErrorKind.AUTH_ERROR),
    ("NotFoundError", ErrorKind.CLIENT_ERROR),
    ("UnprocessableEntityError", ErrorKind.CLIENT_ERROR),
    ("BadRequestError", ErrorKind.CLIENT_ERROR),
    ("UnsupportedParamsError", ErrorKind.CLIENT_ERROR),
)
_CLASSES: tuple[tuple[type[BaseException], ErrorKind], ...] = tuple(
    (cls, kind)
    for name, kind in _KINDS
    if isinstance(cls := getattr(litellm.exceptions, name, None), type)
    and issubclass(cls, BaseException)
)
# A 429 that means "out of money", not "slow down" (see resilience.classify).
_QUOTA = ("insufficient_quota", "billing_hard_limit_reached", "spend_limit")


_TRANSPORT = (ErrorKind.CONNECTION, ErrorKind.TIMEOUT, ErrorKind.AUTH_ERROR)
_MAX_CHAIN = 6


def _transport_kind(exc: BaseException) -> ErrorKind | None:
    """``connection``, ``timeout`` or ``auth_error`` when the exception was raised while
    handling one.

    LiteLLM reports a refused or dropped connection as an ``InternalServerError`` (status
    500) raised while handling the SDK's or httpx's connection error, and the openai
    SDK's "Missing credentials" likewise: the chain says what really happened, and
    neither is the server's 5xx.
    """
    inner = exc.__cause__ or exc.__context__
    for _ in range(_MAX_CHAIN):
        if inner is None:
            return None
        kind = classify(inner)
        if kind in _TRANSPORT:
            return kind
        inner = inner.__cause__ or inner.__context__
    return None


def error_kind(exc: BaseException) -> ErrorKind | None:
    """The kind of a LiteLLM exception (``None``: not one of LiteLLM's)."""
    for cls, kind in _CLASSES:
        if isinstance(exc, cls):
            if kind is ErrorKind.RATE_LIMITED and any(q in str(exc) for q in _QUOTA):
                return ErrorKind.CLIENT_ERROR
            # A client error too: LiteLLM before ~1.110 (with openai < 2) re-raises a
            # provider's 401 as a 400 BadRequestError, the 401 kept only in the chain.
            if kind in (ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION, ErrorKind.CLIENT_ERROR):
                return _transport_kind(exc) or kind
            return kind
    return None


def _mark(exc: BaseException) -> None:
    """Give a LiteLLM exception the ``kind`` :func:`~adaptive_router.resilience.classify`
    reads first; the exception itself stays what LiteLLM raised (callers catch it)."""
    kind = error_kind(exc)
    if kind is not None and getattr(exc, "kind", None) is None:
        # A class with __slots__ refuses the attribute: classify then maps it by status.
        with contextlib.suppress(AttributeError):
            exc.kind = kind  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1024)
def genai_prices_knows(model: str) -> bool:
    """Whether genai-prices has a price for ``model`` (looked up once per model)."""
    try:
        data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    except LookupError:
        return False
    return True


def price_model(model: str, response: Any) -> str:
    """The model name to price a response at: the one the provider says it served,
    else the path's model without LiteLLM's ``provider/`` prefix."""
    served = getattr(response, "model", None)
    if isinstance(served, str) and served:
        return served
    return model.split("/", 1)[1] if "/" in model else model


def litellm_cost(response: Any) -> float | None:
    """LiteLLM's own price for a response (from the price map it ships), if it has one."""
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and 0 <= cost < math.inf:
        return float(cost)
    return None


class LiteLLMCall(ProviderCall):
    provider = "litellm"
    env_key = "the provider's API key variable (see LiteLLM's docs)"

    def _new_client(self, *, is_async: bool) -> Any:
        return litellm

    def credentials_fix(self) -> str:
        """What to set when the provider refuses the key LiteLLM sent, or none was found:
        the variables LiteLLM reads for this model that are missing, when it knows them."""
        if self.params.get("api_key") is not None:
            return (
                f"check the api_key= given to litellm_path({self.model!r}, ...) and that it "
                "may use the model"
            )
        try:
            missing = litellm.validate_environment(self.model).get("missing_keys") or []
        except Exception:  # a model LiteLLM cannot map to a provider
            missing = []
        names = [m for m in missing if isinstance(m, str)]
        if names:
            return f"set {' or '.join(names)} in the environment, or pass api_key="
        return (
            f"check the API key LiteLLM uses for {self.model!r} (the provider's environment "
            "variable, or api_key=) and that it may use the model"
        )

    def _sync_client(self) -> Any:
        return litellm

    def _async_client(self) -> Any:
        return litellm

    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        messages = self.messages(args, kwargs)
        if self.system is not None:
            messages = [{"role": "system", "content": self.system}, *messages]
        return {
            "model": self.model,
            "messages": messages,
            "timeout": self.timeout,
            "num_retries": 0,
            "max_retries": 0,
            **self.params,
        }

    def _send(self, client: Any, request: dict[str, Any]) -> Any:
        try:
            return client.completion(**request)
        except Exception as exc:
            _mark(exc)
            raise

    async def _asend(self, client: Any, request: dict[str, Any]) -> Any:
        try:
            return await client.acompletion(**request)
        except Exception as exc:
            _mark(exc)
            raise

    def _read(self, response: Any) -> tuple[str | None, Usage, str | None]:
        u = getattr(response, "usage", None)
        details = getattr(u, "prompt_tokens_details", None)
        # Anthropic-style fields where LiteLLM has them, else OpenAI's prompt details;
        # either way both are part of prompt_tokens.
        read = as_int(getattr(u, "cache_read_input_tokens", None))
        if read is None:
            read = as_int(getattr(details, "cached_tokens", None))
        written = as_int(getattr(u, "cache_creation_input_tokens", None))
        if written is None:
            written = as_int(getattr(details, "cache_creation_tokens", None))
        model = price_model(self.model, response)
        # genai-prices first (the router prices it, like every other path); LiteLLM's own
        # price only for a model genai-prices does not know; else unknown.
        cost = None if genai_prices_knows(model) else litellm_cost(response)
        usage = Usage(
            input_tokens=as_int(getattr(u, "prompt_tokens", None)),
            output_tokens=as_int(getattr(u, "completion_tokens", None)),
            cost_usd=cost,
            model=model,
            cache_read_tokens=read,
            cache_write_tokens=written,
        )
        return self._chat_choice(response, usage, "response")


def litellm_path(
    model: str,
    prompt: Prompt,
    *,
    schema: Any = None,
    name: str | None = None,
    timeout: float | None = 30.0,
    system: str | None = None,
    retry: RetryPolicy | _Inherit | None = INHERIT,
    breaker: CircuitBreaker | _Inherit | None = INHERIT,
    rate_limit: RateLimit | None = None,
    repair: bool | int = False,
    expected_tokens: tuple[int, int] | None = None,
    price_each_request: bool = False,
    **litellm_kwargs: Any,
) -> Path:
    """A path that asks any of LiteLLM's providers (``litellm.completion``).

    Parameters
    ----------
    model:
        LiteLLM's model name, ``"provider/model"``: ``"bedrock/anthropic.claude-3-haiku-
        20240307-v1:0"``, ``"gemini/gemini-2.0-flash"``, ``"ollama/llama3"``,
        ``"openai/gpt-4o"``… Also the path name unless ``name`` is given.
    prompt, schema, name, system, retry, breaker, rate_limit, repair:
        As for :func:`~adaptive_router.providers.openai_path`: the same prompt
        templates, JSON extraction, validation and repair.
    expected_tokens, price_each_request:
        As for :func:`~adaptive_router.providers.openai_path`; the model is priced as
        ``"model"`` when genai-prices does not know ``"provider/model"``.
    timeout:
        Seconds for the request, passed to LiteLLM (and, under ``arun``, also a cap on
        the whole await). ``None`` disables it (not recommended).
    **litellm_kwargs:
        Passed to ``litellm.completion`` / ``litellm.acompletion`` as they are:
        ``api_base=``, ``api_key=``, ``temperature=``, ``aws_region_name=``… Not
        ``stream``, ``num_retries`` or ``max_retries``: LiteLLM's own retries are off,
        because the router retries by error kind and records every attempt.

    Errors: LiteLLM's exceptions get the same kinds as the other provider paths (429
    ``rate_limited``, 5xx ``server_error``, ``Timeout`` ``timeout``,
    ``APIConnectionError`` ``connection``, ``AuthenticationError``/``PermissionDeniedError``
    and a missing key ``auth_error``, other 4xx ``client_error``) and are retried
    alike. Usage: the response's tokens (cache reads and writes included); the cost is
    genai-prices' for the model the provider says it served (priced by the router, like
    every path, so ``Observability(prices=...)`` overrides apply), else LiteLLM's own price
    for a model genai-prices does not know, else unknown. LiteLLM's OpenAI route goes
    through the ``openai`` SDK, which usage capture would meter too: the path's calls
    are made with capture suppressed, so each call counts once.

    Example::

        llama = litellm_path("ollama/llama3", "Extract: {text}",
                             api_base="http://localhost:11434", schema=Order)
        router = Router([llama, openai_path("gpt-4o", "Extract: {text}", schema=Order)],
                        success_fn=bool, task="extract")
    """
    check_model(model)
    bad = sorted(set(litellm_kwargs) & LITELLM_RESERVED)
    if bad:
        raise ConfigurationError(
            f"litellm_path {model!r}: {bad} cannot be passed: the path sets them itself "
            "(model and timeout are arguments; LiteLLM's retries stay off because the "
            "router retries; streaming is not supported)"
        )
    call = LiteLLMCall(
        model,
        check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"litellm_path {model!r} timeout", timeout),
        client=None,
        async_client=None,
        system=system,
        params=dict(litellm_kwargs),
        repair=check_repair(repair, schema, model),
    )
    return build_path(
        call,
        name=name,
        timeout=call.timeout,
        client=None,
        async_client=None,
        retry=retry,
        breaker=breaker,
        rate_limit=rate_limit,
        expected_tokens=expected_tokens,
        price_each_request=price_each_request,
    )
