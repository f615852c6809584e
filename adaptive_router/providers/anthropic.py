"""Paths over the ``anthropic`` SDK (Messages API): :func:`anthropic_path`.

The SDK is imported by absolute name (``import anthropic``), which is never this module.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from adaptive_router._imports import require
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import Usage
from adaptive_router.paths import INHERIT, Path, _Inherit
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout

if TYPE_CHECKING:
    pass

from adaptive_router.providers.base import (
    RESERVED_PARAMS,
    Messages,
    Prompt,
    PromptError,
    ProviderCall,
    as_int,
    build_path,
    check_model,
    check_params,
    check_prompt,
)
from adaptive_router.providers.repair import check_repair

logger = logging.getLogger(__name__)


class AnthropicCall(ProviderCall):
    provider = "anthropic"
    env_key = "ANTHROPIC_API_KEY"

    def __init__(self, *args: Any, max_tokens: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_tokens = max_tokens

    def _new_client(self, *, is_async: bool) -> Any:
        import anthropic

        if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise self._missing_credentials()
        return anthropic.AsyncAnthropic() if is_async else anthropic.Anthropic()

    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        messages = self.messages(args, kwargs)
        # Anthropic takes the system prompt apart from the messages.
        systems = [self.system] if self.system is not None else []
        chat: Messages = []
        for m in messages:
            if m.get("role") == "system":
                systems.append(str(m["content"]))
            else:
                chat.append(m)
        if not chat:
            raise PromptError("the prompt has no user message (only system messages)")
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": chat,
            **self.params,
        }
        if systems:
            request["system"] = "\n\n".join(systems)
        return request

    def _send(self, client: Any, request: dict[str, Any]) -> Any:
        return client.messages.create(**request)

    async def _asend(self, client: Any, request: dict[str, Any]) -> Any:
        return await client.messages.create(**request)

    def _read(self, response: Any) -> tuple[str | None, Usage, str | None]:
        u = getattr(response, "usage", None)
        # Anthropic's input_tokens leaves out the cached part of the prompt; Usage counts
        # every prompt token, as OpenAI does, and says which were cache reads and writes.
        uncached = as_int(getattr(u, "input_tokens", None))
        written = as_int(getattr(u, "cache_creation_input_tokens", None))
        read = as_int(getattr(u, "cache_read_input_tokens", None))
        usage = Usage(
            input_tokens=None if uncached is None else uncached + (written or 0) + (read or 0),
            output_tokens=as_int(getattr(u, "output_tokens", None)),
            model=self.model,
            cache_read_tokens=read,
            cache_write_tokens=written,
        )
        content = getattr(response, "content", None)
        if content is None:
            raise self._malformed("no 'content' in the body")
        parts = [
            block.text
            for block in content
            if getattr(block, "type", None) == "text" and isinstance(block.text, str)
        ]
        stop = getattr(response, "stop_reason", None)
        why = f"model refused (stop_reason {stop})" if stop == "refusal" else None
        return "".join(parts), usage, why


def anthropic_path(
    model: str,
    prompt: Prompt,
    *,
    schema: Any = None,
    timeout: float | None = 30.0,
    client: Any = None,
    async_client: Any = None,
    system: str | None = None,
    name: str | None = None,
    retry: RetryPolicy | _Inherit | None = INHERIT,
    breaker: CircuitBreaker | _Inherit | None = INHERIT,
    rate_limit: RateLimit | None = None,
    max_tokens: int = 1024,
    repair: bool | int = False,
    expected_tokens: tuple[int, int] | None = None,
    price_each_request: bool = False,
    **params: Any,
) -> Path:
    """A path that asks an Anthropic model (``POST /v1/messages``).

    The same as :func:`openai_path` (see there for every parameter), with
    ``max_tokens`` (required by the Messages API) and these differences: ``system`` is
    sent as the request's ``system`` field, and ``{"role": "system"}`` messages from a
    prompt callable are moved there too; the text is the response's text blocks joined;
    clients are ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic``, created from
    ``ANTHROPIC_API_KEY`` when not given. Anthropic's 529 "overloaded" is recorded as
    ``server_error`` and retried.

    The installed anthropic SDK's ``messages.create`` may not take sampling parameters
    such as ``temperature`` as arguments (2.x does not): send them as
    ``extra_body={"temperature": 0.2}``, which the SDK adds to the request body as is.

    Example::

        claude = anthropic_path(
            "claude-sonnet-4-6",
            lambda text: [{"role": "user", "content": f"Extract as JSON: {text}"}],
            schema=Order,
            system="Answer with JSON only.",
            max_tokens=200,
            timeout=20,
        )
        order = await Router([claude], bool, "extract").arun("2x widget to Berlin")
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigurationError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
    require("anthropic", "anthropic", "anthropic_path")  # the SDK itself: on first call
    call = AnthropicCall(
        check_model(model),
        check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"anthropic_path {model!r} timeout", timeout),
        client=client,
        async_client=async_client,
        system=system,
        params=check_params(params, RESERVED_PARAMS | {"max_tokens", "system"}, "anthropic"),
        max_tokens=max_tokens,
        repair=check_repair(repair, schema, model),
    )
    return build_path(
        call,
        name=name,
        timeout=call.timeout,
        client=client,
        async_client=async_client,
        retry=retry,
        breaker=breaker,
        rate_limit=rate_limit,
        expected_tokens=expected_tokens,
        price_each_request=price_each_request,
    )
