"""Paths over the ``openai`` SDK (Chat Completions): :func:`openai_path`.

The SDK is imported by absolute name (``import openai``), which is never this module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from adaptive_router._imports import require
from adaptive_router.outcomes import Usage
from adaptive_router.paths import INHERIT, Path, _Inherit
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout

if TYPE_CHECKING:
    pass

from adaptive_router.providers.base import (
    RESERVED_PARAMS,
    Prompt,
    ProviderCall,
    as_int,
    build_path,
    check_model,
    check_params,
    check_prompt,
)
from adaptive_router.providers.repair import check_repair

logger = logging.getLogger(__name__)


class OpenAICall(ProviderCall):
    provider = "openai"
    env_key = "OPENAI_API_KEY"

    def _new_client(self, *, is_async: bool) -> Any:
        import openai

        try:
            return openai.AsyncOpenAI() if is_async else openai.OpenAI()
        except openai.OpenAIError:
            # The SDK's message is about credentials only; ours says what to do.
            raise self._missing_credentials() from None

    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        messages = self.messages(args, kwargs)
        if self.system is not None:
            messages = [{"role": "system", "content": self.system}, *messages]
        return {"model": self.model, "messages": messages, **self.params}

    def _send(self, client: Any, request: dict[str, Any]) -> Any:
        return client.chat.completions.create(**request)

    async def _asend(self, client: Any, request: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**request)

    def _read(self, response: Any) -> tuple[str | None, Usage, str | None]:
        u = getattr(response, "usage", None)
        details = getattr(u, "prompt_tokens_details", None)
        usage = Usage(
            input_tokens=as_int(getattr(u, "prompt_tokens", None)),
            output_tokens=as_int(getattr(u, "completion_tokens", None)),
            model=self.model,
            # Part of prompt_tokens, billed at the cached rate.
            cache_read_tokens=as_int(getattr(details, "cached_tokens", None)),
        )
        return self._chat_choice(response, usage, "body")


def openai_path(
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
    repair: bool | int = False,
    expected_tokens: tuple[int, int] | None = None,
    price_each_request: bool = False,
    **params: Any,
) -> Path:
    """A path that asks an OpenAI chat model (``POST /v1/chat/completions``).

    Parameters
    ----------
    model:
        The model, e.g. ``"gpt-4o"``; also the path name unless ``name`` is given, and
        the model the router prices the usage with.
    prompt:
        A template formatted with the run's arguments — ``"Extract: {text}"`` for
        ``router.run(text=...)``, ``"Extract: {0}"`` for ``router.run(...)`` (write
        literal braces as ``{{ }}``) — sent as one user message; or a callable taking
        the run's arguments and returning the messages list (or a string).
    schema:
        A pydantic model (or any type pydantic validates): the reply's JSON, fenced or
        not, is validated into it and the object is the result. ``None``: the text.
    timeout:
        Seconds for the request, passed to the SDK (which enforces it; the router adds
        no watchdog thread). ``None`` disables it (not recommended).
    client, async_client:
        ``openai.OpenAI`` / ``openai.AsyncOpenAI`` instances (e.g. with a ``base_url``).
        Each is used through ``with_options(timeout=timeout, max_retries=0)``. When
        neither is given both are created on first use from ``OPENAI_API_KEY``; give
        both to use your own for ``run`` and ``arun`` (with only ``client``, ``arun``
        runs the sync call in a worker thread; with only ``async_client``, ``run`` runs
        the async call on the router's one loop thread, and ``arun`` awaits it on yours:
        a client used by both is on two loops, which httpx does not allow, so use one).
    system:
        A system prompt, sent as the first message.
    name:
        The path name (default: the model); ``"{model}"`` in it is replaced by the model.
        Give different names to paths over one model with different parameters.
    retry, breaker, rate_limit:
        The path's resilience settings (see :class:`~adaptive_router.paths.Path`).
    repair:
        With ``schema``: when an answer is not valid JSON for the schema (kind
        ``invalid_output``), send the model its answer back with the validation error
        and ask for corrected JSON only — ``True`` once, ``N`` up to N times — in the
        same conversation and the same attempt: one outcome, whose tokens are those of
        every request, and each request has ``timeout``. An empty answer is not
        repaired; a follow-up that fails (429, 5xx, timeout…) fails the attempt with its
        own kind, so the router's retry policy decides what happens next. Counted in
        :func:`repair_counter`. Default ``False``.
    expected_tokens:
        ``(input_tokens, output_tokens)`` one request is expected to use. Before the path
        has data, the router then expects an attempt to cost the model's price for them
        (:class:`~adaptive_router.paths.Path` ``expected_tokens``): the prior of
        ``objective="cost"`` and of ``max_cost_usd``. ``None`` (default): no price-based
        prior, because no token count is guessed.
    price_each_request:
        ``True``: where the router weighs cost (a spend target, ``objective="cost"``,
        ``max_cost_usd``), it prices each request by its own size instead of the path's
        mean cost: the input tokens counted from the prompt this request renders (about
        4 characters per token, the system prompt included), the output tokens
        ``expected_tokens``' second number (required; its first is then unused), at the
        model's price. Long requests then go where they gain most per dollar. Default
        ``False``. See :class:`~adaptive_router.paths.Path` ``expected_tokens``.
    **params:
        Extra request parameters (``temperature=0.2``, ``max_tokens=300``,
        ``response_format={"type": "json_object"}``…). Paths over one model with
        different parameters are different paths: give each its own ``name``.

    Example::

        cold = openai_path("gpt-4o", "Extract: {text}", temperature=0.0, name="gpt-4o-cold")
        warm = openai_path("gpt-4o", "Extract: {text}", temperature=0.8, name="gpt-4o-warm")
        router = Router([cold, warm], success_fn=bool, task="extract")
        router.run(text="2x widget to Berlin")   # -> the reply text
    """
    require("openai", "openai", "openai_path")  # the SDK itself is imported on first call
    call = OpenAICall(
        check_model(model),
        check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"openai_path {model!r} timeout", timeout),
        client=client,
        async_client=async_client,
        system=system,
        params=check_params(params, RESERVED_PARAMS, "openai"),
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
