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
  connection errors, other 4xx ``client_error``); an empty answer raises with kind
  ``empty`` and unparsable or invalid JSON with kind ``invalid_output``, both carrying
  the tokens spent (``exc.usage``) so failed attempts are costed too.

Both work with :meth:`Router.run` (the sync client) and :meth:`Router.arun` (the async
client, awaited natively). Clients are created on first use from the environment
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) unless given; API keys are never logged,
echoed or stored by this module.

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
            anthropic_path("claude-3-5-sonnet-20241022", "Extract the order as JSON: {text}",
                           schema=Order, timeout=20),
        ],
        success_fn=lambda order: order.quantity > 0,
        task="order-extraction",
    )
    order = router.run(text="2x widget to Berlin")   # an Order
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind, Result, Usage
from adaptive_router.paths import INHERIT, Path, _Inherit, check_timeout
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.validation import OutputValidationError, parse_output

__all__ = [
    "MalformedResponseError",
    "MissingCredentialsError",
    "PromptError",
    "anthropic_path",
    "openai_path",
]

Messages = list[dict[str, Any]]
#: A prompt: a template formatted with the run's arguments, or a callable returning the
#: messages (a list of ``{"role": ..., "content": ...}`` dicts, or one string).
Prompt = str | Callable[..., Sequence[Mapping[str, Any]] | str]

# Request fields the path sets itself; passing them in **params is a mistake.
_RESERVED = frozenset({"model", "messages", "stream", "timeout"})


class PromptError(ValueError):
    """The prompt could not be built from the run's arguments (a bug in the caller, not
    a provider failure: kind ``exception``, never retried)."""


class MalformedResponseError(RuntimeError):
    """The provider answered 200 with a body that is not a completion (not JSON, an HTML
    page from a proxy, fields missing). Kind ``server_error``: retried, like a 5xx."""

    kind = ErrorKind.SERVER_ERROR


class MissingCredentialsError(RuntimeError):
    """No API key for a client created from the environment. Kind ``client_error``:
    retrying cannot help. The message names the variable, never a key."""

    kind = ErrorKind.CLIENT_ERROR


def _check_model(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"model must be a non-empty string such as 'gpt-4o', got {model!r}"
        )
    return model


def _check_prompt(prompt: object) -> Prompt:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigurationError("prompt is empty; give a template such as 'Extract: {text}'")
        return prompt
    if callable(prompt):
        return prompt
    raise ConfigurationError(
        "prompt must be a template string ('Extract: {text}') or a callable returning the "
        f"messages, got {type(prompt).__name__}"
    )


def _check_params(
    params: Mapping[str, Any], reserved: frozenset[str], provider: str
) -> dict[str, Any]:
    bad = sorted(set(params) & reserved)
    if bad:
        raise ConfigurationError(
            f"{bad} cannot be passed as request parameters: the path sets them itself "
            "(model and timeout are arguments; streaming is not supported)"
        )
    _check_sdk_params(provider, params)
    return dict(params)


def _check_sdk_params(provider: str, params: Mapping[str, Any]) -> None:
    """Fail at construction, not on every call, for a parameter the SDK does not take."""
    if not params:
        return
    try:
        if provider == "openai":
            from openai.resources.chat.completions import Completions

            signature = inspect.signature(Completions.create)
        else:
            from anthropic.resources.messages import Messages

            signature = inspect.signature(Messages.create)
    except (ImportError, AttributeError, TypeError, ValueError):  # an SDK layout we don't know
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        raise ConfigurationError(
            f"the installed {provider} SDK's create() takes no {unknown}; check the "
            "parameter names, or send raw fields with extra_body={...}"
        )


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _ProviderCall:
    """The callable behind a provider path: builds the request, calls the SDK, reads the
    response. Sync calls go through ``__call__``, async ones through :meth:`acall`."""

    provider = "provider"
    env_key = "API_KEY"

    def __init__(
        self,
        model: str,
        prompt: Prompt,
        *,
        schema: Any,
        timeout: float | None,
        client: Any,
        async_client: Any,
        system: str | None,
        params: dict[str, Any],
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.schema = schema
        self.timeout = timeout
        self.system = system
        self.params = params
        self._given_client = client
        self._given_async_client = async_client
        self._client: Any = None
        self._lock = threading.Lock()
        # Lazily created async clients are per event loop: an httpx connection pool
        # belongs to the loop it was opened on (asyncio.run() twice would break it).
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._given_aclient: Any = None

    def __repr__(self) -> str:
        return f"<{self.provider} call model={self.model!r}>"

    # -- clients ---------------------------------------------------------------------
    def _configure(self, client: Any) -> Any:
        # One request timeout for every phase (connect, write, read, pool), and no SDK
        # retries: the router retries by error kind and records each attempt.
        return client.with_options(timeout=self.timeout, max_retries=0)

    def _sync_client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    base = self._given_client
                    if base is None:
                        base = self._new_client(is_async=False)
                    self._client = self._configure(base)
                client = self._client
        return client

    def _async_client(self) -> Any:
        if self._given_async_client is not None:
            if self._given_aclient is None:
                with self._lock:
                    if self._given_aclient is None:
                        self._given_aclient = self._configure(self._given_async_client)
            return self._given_aclient
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                client = self._configure(self._new_client(is_async=True))
                self._aclients[loop] = client
        return client

    def _new_client(self, *, is_async: bool) -> Any:
        raise NotImplementedError

    def _missing_credentials(self) -> MissingCredentialsError:
        return MissingCredentialsError(
            f"{self.provider} path {self.model!r}: no API key; set {self.env_key} in the "
            "environment or pass client=/async_client="
        )

    # -- prompt ----------------------------------------------------------------------
    def messages(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Messages:
        """The chat messages for one run's arguments (the system prompt excluded)."""
        if isinstance(self.prompt, str):
            try:
                text = self.prompt.format(*args, **kwargs)
            except (KeyError, IndexError) as exc:
                need = (
                    f"{{{exc.args[0]}}}, which the run did not supply"
                    if isinstance(exc, KeyError)
                    else "more positional arguments than the run supplied"
                )
                raise PromptError(
                    f"prompt template of {self.provider} path {self.model!r} needs {need} "
                    f"({len(args)} positional, keywords {sorted(kwargs)}); write literal "
                    "braces as {{ and }}"
                ) from None
            except ValueError as exc:
                raise PromptError(f"prompt template is malformed: {exc}") from None
            return [{"role": "user", "content": text}]
        built = self.prompt(*args, **kwargs)
        if isinstance(built, str):
            return [{"role": "user", "content": built}]
        if not isinstance(built, Sequence) or not built:
            raise PromptError(
                "a prompt callable must return a non-empty list of messages "
                f"({{'role': ..., 'content': ...}}) or a string, got {type(built).__name__}"
            )
        out: Messages = []
        for m in built:
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise PromptError(
                    f"each message must be a mapping with 'role' and 'content', got {m!r:.80}"
                )
            out.append(dict(m))
        return out

    # -- the call --------------------------------------------------------------------
    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the SDK's create call for one run."""
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Result:
        request = self.request(args, kwargs)
        client = self._sync_client()
        try:
            response = self._send(client, request)
        except json.JSONDecodeError as exc:
            raise self._malformed(f"the response body is not JSON ({exc})") from None
        return self.result(response)

    async def acall(self, *args: Any, **kwargs: Any) -> Result:
        """The async twin of calling the path: the async client, awaited natively."""
        request = self.request(args, kwargs)
        client = self._async_client()
        try:
            if self.timeout is None:
                response = await self._asend(client, request)
            else:
                # The SDK timeout applies per phase (connect, write, each read); this caps
                # the whole call too. Either way the kind recorded is `timeout`.
                response = await asyncio.wait_for(self._asend(client, request), self.timeout)
        except json.JSONDecodeError as exc:
            raise self._malformed(f"the response body is not JSON ({exc})") from None
        return self.result(response)

    def _malformed(self, why: str) -> MalformedResponseError:
        return MalformedResponseError(f"{self.provider} {self.model!r}: malformed response: {why}")

    def _send(self, client: Any, request: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def _asend(self, client: Any, request: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _read(self, response: Any) -> tuple[str | None, Usage, str | None]:
        """(text, usage, why-empty) from an SDK response."""
        raise NotImplementedError

    def result(self, response: Any) -> Result:
        """Turn an SDK response into a Result, or raise with the spent usage attached."""
        if isinstance(response, (str, bytes)):
            # The SDKs hand back the body as text when it is not declared JSON.
            raise self._malformed(f"expected JSON, got text ({len(response)} chars)")
        text, usage, why = self._read(response)
        if text is None or not text.strip():
            exc = OutputValidationError(
                why or "output is empty", text or "", kind=ErrorKind.EMPTY.value
            )
            exc.usage = usage  # type: ignore[attr-defined]
            raise exc
        if self.schema is None:
            return Result(text, usage)
        try:
            value = parse_output(text, self.schema)
        except OutputValidationError as exc:
            exc.usage = usage  # type: ignore[attr-defined]
            raise
        return Result(value, usage)


class _OpenAICall(_ProviderCall):
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
        usage = Usage(
            input_tokens=_as_int(getattr(u, "prompt_tokens", None)),
            output_tokens=_as_int(getattr(u, "completion_tokens", None)),
            model=self.model,
        )
        choices = getattr(response, "choices", None)
        if choices is None:
            raise self._malformed("no 'choices' in the body")
        if not choices:
            return None, usage, "response has no choices"
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        refusal = getattr(message, "refusal", None)
        why = f"model refused: {str(refusal)[:200]}" if refusal else None
        return (text if isinstance(text, str) else None), usage, why


class _AnthropicCall(_ProviderCall):
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
        usage = Usage(
            input_tokens=_as_int(getattr(u, "input_tokens", None)),
            output_tokens=_as_int(getattr(u, "output_tokens", None)),
            model=self.model,
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


def _build(
    call: _ProviderCall,
    *,
    name: str | None,
    timeout: float | None,
    client: Any,
    async_client: Any,
    retry: RetryPolicy | _Inherit | None,
    breaker: CircuitBreaker | _Inherit | None,
    rate_limit: RateLimit | None,
) -> Path:
    path_name = call.model if name is None else name.replace("{model}", call.model)
    # With only a sync client there is no async one to await; arun() then runs the sync
    # call in a worker thread rather than create a client pointed somewhere else.
    # With only an async client, the async call is the path's function (use arun()).
    if client is not None and async_client is None:
        fn: Callable[..., Any] = call
        afn = None
    elif client is None and async_client is not None:
        fn, afn = call.acall, None
    else:
        fn, afn = call, call.acall
    return Path(
        fn,
        name=path_name,
        model=call.model,
        timeout=timeout,
        retry=retry,
        breaker=breaker,
        rate_limit=rate_limit,
        afn=afn,
        enforces_timeout=True,
        metadata={"provider": call.provider},
    )


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
        runs the sync call in a worker thread; with only ``async_client``, use ``arun``).
    system:
        A system prompt, sent as the first message.
    name:
        The path name (default: the model); ``"{model}"`` in it is replaced by the model.
        Give different names to paths over one model with different parameters.
    retry, breaker, rate_limit:
        The path's resilience settings (see :class:`~adaptive_router.paths.Path`).
    **params:
        Extra request parameters (``temperature=0.2``, ``max_tokens=300``,
        ``response_format={"type": "json_object"}``…).

    Example::

        cold = openai_path("gpt-4o", "Extract: {text}", temperature=0.0, name="gpt-4o-cold")
        warm = openai_path("gpt-4o", "Extract: {text}", temperature=0.8, name="gpt-4o-warm")
        router = Router([cold, warm], success_fn=bool, task="extract")
        router.run(text="2x widget to Berlin")   # -> the reply text
    """
    call = _OpenAICall(
        _check_model(model),
        _check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"openai_path {model!r} timeout", timeout),
        client=client,
        async_client=async_client,
        system=system,
        params=_check_params(params, _RESERVED, "openai"),
    )
    return _build(
        call,
        name=name,
        timeout=call.timeout,
        client=client,
        async_client=async_client,
        retry=retry,
        breaker=breaker,
        rate_limit=rate_limit,
    )


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

    Example::

        claude = anthropic_path(
            "claude-3-5-sonnet-20241022",
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
    call = _AnthropicCall(
        _check_model(model),
        _check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"anthropic_path {model!r} timeout", timeout),
        client=client,
        async_client=async_client,
        system=system,
        params=_check_params(params, _RESERVED | {"max_tokens", "system"}, "anthropic"),
        max_tokens=max_tokens,
    )
    return _build(
        call,
        name=name,
        timeout=call.timeout,
        client=client,
        async_client=async_client,
        retry=retry,
        breaker=breaker,
        rate_limit=rate_limit,
    )
