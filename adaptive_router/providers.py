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

With ``repair=True`` (and a schema) an answer that fails validation gets one follow-up
in the same conversation asking the model to correct it (:func:`repair_counter` counts
them). :func:`router_from_models` builds a router from model names (``"gpt-4o"``,
``"claude-3-5-sonnet-20241022"``), choosing the provider by the name's prefix.

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

import abc
import asyncio
import inspect
import json
import logging
import os
import re
import string
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from adaptive_router.capture import suppress as suppress_capture
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind, Result, Usage
from adaptive_router.paths import INHERIT, Path, _Inherit
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout
from adaptive_router.validation import OutputValidationError, parse_output

if TYPE_CHECKING:
    from adaptive_router.router import Router

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

logger = logging.getLogger(__name__)

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


def _check_repair(repair: object, schema: object, model: str) -> int:
    """``repair=`` as a number of follow-up requests (``True`` = 1, ``False`` = 0)."""
    if isinstance(repair, bool):
        n = int(repair)
    elif isinstance(repair, int) and repair >= 0:
        n = repair
    else:
        raise ConfigurationError(
            f"repair must be True/False or a number of follow-ups >= 0, got {repair!r}"
        )
    if n and schema is None:
        raise ConfigurationError(
            f"path {model!r}: repair= needs schema=: without a schema the text is the result "
            "and there is nothing to validate or repair"
        )
    return n


def _add_usage(spent: Usage | None, usage: Usage) -> Usage:
    """``usage`` plus what earlier requests of the same attempt spent."""
    if spent is None:
        return usage

    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    cost = (
        None
        if spent.cost_usd is None and usage.cost_usd is None
        else (spent.cost_usd or 0.0) + (usage.cost_usd or 0.0)
    )
    return Usage(
        input_tokens=add(spent.input_tokens, usage.input_tokens),
        output_tokens=add(spent.output_tokens, usage.output_tokens),
        cost_usd=cost,
        model=usage.model or spent.model,
        cache_read_tokens=add(spent.cache_read_tokens, usage.cache_read_tokens),
        cache_write_tokens=add(spent.cache_write_tokens, usage.cache_write_tokens),
    )


def _attach(exc: BaseException, usage: Usage | None, repairs: int) -> None:
    """Put the attempt's spent tokens (and repairs made) on an exception for the router."""
    try:
        if usage is not None and not isinstance(getattr(exc, "usage", None), Usage):
            exc.usage = usage  # type: ignore[attr-defined]
        if repairs:
            exc.outcome_metadata = {"repairs": repairs}  # type: ignore[attr-defined]
    except AttributeError:  # an exception class with __slots__: nothing to attach to
        pass


class _Exchange:
    """One attempt's conversation with the provider — the request to send, the tokens
    spent and repairs made so far — shared by the sync and async calls, which differ
    only in how they send."""

    __slots__ = ("call", "repairs", "request", "spent")

    def __init__(self, call: _ProviderCall, request: dict[str, Any]) -> None:
        self.call = call
        self.request = request
        self.spent: Usage | None = None
        self.repairs = 0

    def send_failed(self, exc: Exception) -> BaseException:
        """The exception to raise for a failed send, carrying the tokens spent so far."""
        if isinstance(exc, json.JSONDecodeError):
            error = self.call._malformed(f"the response body is not JSON ({exc})")
            _attach(error, self.spent, self.repairs)
            return error
        _attach(exc, self.spent, self.repairs)
        return exc

    def received(self, response: Any) -> Result | None:
        """The validated result, or None when a repair request is to be sent next."""
        try:
            return self.call.result(response, spent=self.spent, repairs=self.repairs)
        except OutputValidationError as exc:
            follow_up = self.call.repair_request(self.request, exc, self.repairs)
            if follow_up is None:
                raise
            self.request = follow_up
            self.spent = getattr(exc, "usage", None)
            self.repairs += 1
            return None


# ``Result(value, usage, metadata=...)`` once outcomes.Result carries metadata (the
# router then stores it on the outcome row); until then the count stays on the path.
_RESULT_HAS_METADATA = "metadata" in getattr(Result, "__dataclass_fields__", {})


def _result(value: Any, usage: Usage, repairs: int) -> Result:
    if repairs and _RESULT_HAS_METADATA:
        extra: dict[str, Any] = {"metadata": {"repairs": repairs}}
        return Result(value, usage, **extra)
    return Result(value, usage)


#: The follow-up user message of a repair; ``{error}`` is the validation error,
#: ``{schema}`` the JSON schema sentence (empty when the schema has none to show).
REPAIR_PROMPT = (
    "Your answer above could not be used: {error}.{schema}\n"
    "Reply with the corrected JSON only: no explanation, no code fence."
)
#: A JSON schema longer than this is not quoted in the repair message.
MAX_REPAIR_SCHEMA_CHARS = 4000


def _schema_sentence(schema: Any) -> str:
    try:
        from pydantic import TypeAdapter

        adapter = schema if isinstance(schema, TypeAdapter) else TypeAdapter(schema)
        text = json.dumps(adapter.json_schema(), separators=(",", ":"))
    except Exception:  # a schema pydantic cannot describe: the error alone must do
        return ""
    if len(text) > MAX_REPAIR_SCHEMA_CHARS:
        return ""
    return f" The JSON must match this JSON schema: {text}"


class RepairCounter:
    """How often a provider path asked its model to correct an invalid answer.

    ``sent``: follow-up requests sent; ``fixed``: those whose answer then validated;
    ``failed``: the rest (still invalid, or the follow-up request itself failed).
    Thread-safe; read it with :func:`repair_counter` (``repair_counter(path).fixed``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._fixed = 0

    def __repr__(self) -> str:
        return f"RepairCounter(sent={self.sent}, fixed={self.fixed}, failed={self.failed})"

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def fixed(self) -> int:
        return self._fixed

    @property
    def failed(self) -> int:
        with self._lock:
            return self._sent - self._fixed

    def _count(self, *, sent: int = 0, fixed: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._fixed += fixed


class _ProviderCall(abc.ABC):
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
        repair: int = 0,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.schema = schema
        self.timeout = timeout
        self.system = system
        self.params = params
        #: Follow-up requests allowed per attempt when the answer fails validation.
        self.repair = repair
        #: Repairs made by this path (see :class:`RepairCounter`).
        self.repairs = RepairCounter()
        self._schema_text: str | None = None
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

    @abc.abstractmethod
    def _new_client(self, *, is_async: bool) -> Any:
        """A client of the provider's SDK built from the environment."""

    def _missing_credentials(self) -> MissingCredentialsError:
        return MissingCredentialsError(
            f"{self.provider} path {self.model!r}: no API key; set {self.env_key} in the "
            "environment or pass client=/async_client="
        )

    # -- prompt ----------------------------------------------------------------------
    def messages(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Messages:
        """The chat messages for one run's arguments (the system prompt excluded)."""
        if isinstance(self.prompt, str):
            args, kwargs = self._bind(args, kwargs)
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

    def _bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional run arguments for a template with named placeholders: one argument
        fills the one placeholder not given by keyword (``run("2x widget")`` for
        ``"...: {text}"``); anything else is an error, since ``str.format`` would drop it."""
        assert isinstance(self.prompt, str)
        if not args:
            return args, kwargs
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.prompt) if f is not None]
        except ValueError as exc:
            raise PromptError(f"prompt template is malformed: {exc}") from None
        names = list(dict.fromkeys(re.split(r"[.\[]", f, maxsplit=1)[0] for f in fields))
        if any(n == "" or n.isdigit() for n in names):
            return args, kwargs  # the template takes positional arguments itself
        open_ = [n for n in names if n not in kwargs]
        if len(args) == 1 and len(open_) == 1:
            return (), {**kwargs, open_[0]: args[0]}
        shown = ", ".join(f"{{{n}}}" for n in names) or "no placeholders"
        raise PromptError(
            f"prompt template of {self.provider} path {self.model!r} has {shown}; "
            f"{len(args)} positional argument(s) fit only a template with exactly one "
            "placeholder left to fill: pass them by keyword"
            + (f", e.g. run({', '.join(f'{n}=...' for n in names)})" if names else "")
        )

    # -- the call --------------------------------------------------------------------
    @abc.abstractmethod
    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the SDK's create call for one run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Result:
        exchange = _Exchange(self, self.request(args, kwargs))
        client = self._sync_client()
        while True:
            try:
                with suppress_capture():  # this path reads the response's usage itself
                    response = self._send(client, exchange.request)
            except Exception as exc:
                error = exchange.send_failed(exc)
                if error is exc:
                    raise
                raise error from None
            result = exchange.received(response)
            if result is not None:
                return result

    async def acall(self, *args: Any, **kwargs: Any) -> Result:
        """The async twin of calling the path: the async client, awaited natively."""
        exchange = _Exchange(self, self.request(args, kwargs))
        client = self._async_client()
        while True:
            try:
                with suppress_capture():  # this path reads the response's usage itself
                    if self.timeout is None:
                        response = await self._asend(client, exchange.request)
                    else:
                        # The SDK timeout applies per phase (connect, write, each read); this
                        # caps the whole request too. Either way the kind recorded is `timeout`.
                        response = await asyncio.wait_for(
                            self._asend(client, exchange.request), self.timeout
                        )
            except Exception as exc:
                error = exchange.send_failed(exc)
                if error is exc:
                    raise
                raise error from None
            result = exchange.received(response)
            if result is not None:
                return result

    # -- repair ----------------------------------------------------------------------
    def repair_message(self, exc: OutputValidationError) -> str:
        """The user turn asking the model to correct an answer that failed validation."""
        if self._schema_text is None:
            self._schema_text = _schema_sentence(self.schema)
        return REPAIR_PROMPT.format(error=exc.reason, schema=self._schema_text)

    def repair_request(
        self, request: dict[str, Any], exc: OutputValidationError, done: int
    ) -> dict[str, Any] | None:
        """The follow-up request for an invalid answer, or ``None`` when none is due: repair
        is off or used up, or the answer was empty (nothing to correct)."""
        if done >= self.repair or exc.kind != ErrorKind.INVALID_OUTPUT.value:
            return None
        self.repairs._count(sent=1)
        logger.info(
            "repairing invalid output of %s path %s",
            self.provider,
            self.model,
            extra={"model": self.model, "provider": self.provider, "reason": exc.reason},
        )
        messages = [
            *request["messages"],
            # The model's own answer as the assistant turn, then the correction request.
            {"role": "assistant", "content": exc.raw},
            {"role": "user", "content": self.repair_message(exc)},
        ]
        return {**request, "messages": messages}

    def _malformed(self, why: str) -> MalformedResponseError:
        return MalformedResponseError(f"{self.provider} {self.model!r}: malformed response: {why}")

    @abc.abstractmethod
    def _send(self, client: Any, request: dict[str, Any]) -> Any:
        """Send one request with the sync client."""

    @abc.abstractmethod
    async def _asend(self, client: Any, request: dict[str, Any]) -> Any:
        """Send one request with the async client."""

    @abc.abstractmethod
    def _read(self, response: Any) -> tuple[str | None, Usage, str | None]:
        """(text, usage, why-empty) from an SDK response."""

    def result(self, response: Any, *, spent: Usage | None = None, repairs: int = 0) -> Result:
        """Turn an SDK response into a Result, or raise with the spent usage attached.

        ``spent`` is the usage of earlier requests of the same attempt (before a repair),
        added to this response's; ``repairs`` the follow-ups sent so far.
        """
        if isinstance(response, (str, bytes)):
            # The SDKs hand back the body as text when it is not declared JSON.
            error = self._malformed(f"expected JSON, got text ({len(response)} chars)")
            _attach(error, spent, repairs)
            raise error
        try:
            text, usage, why = self._read(response)
        except MalformedResponseError as error:
            _attach(error, spent, repairs)
            raise
        usage = _add_usage(spent, usage)
        if text is None or not text.strip():
            exc = OutputValidationError(
                why or "output is empty", text or "", kind=ErrorKind.EMPTY.value
            )
            exc.usage = usage  # type: ignore[attr-defined]
            _attach(exc, None, repairs)
            raise exc
        if self.schema is None:
            return Result(text, usage)
        try:
            value = parse_output(text, self.schema)
        except OutputValidationError as exc:
            exc.usage = usage  # type: ignore[attr-defined]
            _attach(exc, None, repairs)
            raise
        if repairs:
            self.repairs._count(fixed=1)
        return _result(value, usage, repairs)


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
        details = getattr(u, "prompt_tokens_details", None)
        usage = Usage(
            input_tokens=_as_int(getattr(u, "prompt_tokens", None)),
            output_tokens=_as_int(getattr(u, "completion_tokens", None)),
            model=self.model,
            # Part of prompt_tokens, billed at the cached rate.
            cache_read_tokens=_as_int(getattr(details, "cached_tokens", None)),
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
        # Anthropic's input_tokens leaves out the cached part of the prompt; Usage counts
        # every prompt token, as OpenAI does, and says which were cache reads and writes.
        uncached = _as_int(getattr(u, "input_tokens", None))
        written = _as_int(getattr(u, "cache_creation_input_tokens", None))
        read = _as_int(getattr(u, "cache_read_input_tokens", None))
        usage = Usage(
            input_tokens=None if uncached is None else uncached + (written or 0) + (read or 0),
            output_tokens=_as_int(getattr(u, "output_tokens", None)),
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
        metadata=(
            {"provider": call.provider, "repairs": call.repairs}
            if call.repair
            else {"provider": call.provider}
        ),
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
    repair: bool | int = False,
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
    repair:
        With ``schema``: when an answer is not valid JSON for the schema (kind
        ``invalid_output``), send the model its answer back with the validation error
        and ask for corrected JSON only — ``True`` once, ``N`` up to N times — in the
        same conversation and the same attempt: one outcome, whose tokens are those of
        every request, and each request has ``timeout``. An empty answer is not
        repaired; a follow-up that fails (429, 5xx, timeout…) fails the attempt with its
        own kind, so the router's retry policy decides what happens next. Counted in
        :func:`repair_counter`. Default ``False``.
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
    call = _OpenAICall(
        _check_model(model),
        _check_prompt(prompt),
        schema=schema,
        timeout=check_timeout(f"openai_path {model!r} timeout", timeout),
        client=client,
        async_client=async_client,
        system=system,
        params=_check_params(params, _RESERVED, "openai"),
        repair=_check_repair(repair, schema, model),
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
    repair: bool | int = False,
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
        repair=_check_repair(repair, schema, model),
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


def repair_counter(path: Path) -> RepairCounter:
    """The :class:`RepairCounter` of a provider path built with ``repair=``.

    ``repair_counter(path).fixed`` is how many invalid answers a follow-up turned into
    valid ones. Raises ``ValueError`` for a path without repair.
    """
    counter = path.metadata.get("repairs")
    if not isinstance(counter, RepairCounter):
        raise ValueError(
            f"path {path.name!r} has no repair counter: build it with "
            "openai_path(..., repair=True) or anthropic_path(..., repair=True)"
        )
    return counter


# -- paths from model names ------------------------------------------------------------
#: Model names served by OpenAI's chat completions API: gpt-4o, gpt-4.1-mini, gpt-5,
#: chatgpt-4o-latest, o1, o3-mini, o4-mini, and fine-tunes of those ("ft:gpt-4o-mini:...").
_OPENAI_MODEL = re.compile(r"(?:ft:)?(?:gpt-|chatgpt-|o\d+(?:$|[-:]))", re.IGNORECASE)
_ANTHROPIC_MODEL = re.compile(r"claude-", re.IGNORECASE)
_PROVIDER_PREFIXES = ("openai:", "anthropic:")


def provider_of(model: str) -> tuple[str, str]:
    """``(provider, model)`` for a model name: ``"openai"`` for ``gpt-*``, ``chatgpt-*``,
    ``o1``/``o3``/``o4``… (and ``ft:`` fine-tunes of them), ``"anthropic"`` for
    ``claude-*``. An explicit ``"openai:<model>"`` or ``"anthropic:<model>"`` names the
    provider of any other model (e.g. one served by an OpenAI-compatible server).

    Raises ``ValueError`` for a name it cannot place.
    """
    name = _check_model(model)
    for prefix in _PROVIDER_PREFIXES:
        if name.lower().startswith(prefix):
            rest = _check_model(name[len(prefix) :])
            return prefix[:-1], rest
    if _OPENAI_MODEL.match(name):
        return "openai", name
    if _ANTHROPIC_MODEL.match(name):
        return "anthropic", name
    raise ValueError(
        f"cannot tell which provider serves model {name!r}: OpenAI models start with "
        "'gpt-', 'chatgpt-' or 'o1'/'o3'/'o4', Anthropic models with 'claude-'; name the "
        f"provider explicitly ('openai:{name}' for an OpenAI-compatible server, "
        f"'anthropic:{name}') or build the path with openai_path/anthropic_path"
    )


def model_path(
    model: str,
    prompt: Prompt,
    *,
    clients: Mapping[str, Any] | None = None,
    async_clients: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """:func:`openai_path` or :func:`anthropic_path` for ``model``, by its name (see
    :func:`provider_of`).

    ``clients`` / ``async_clients`` map ``"openai"`` and ``"anthropic"`` to SDK clients
    (missing ones are created from the environment on first use); other keyword
    arguments go to the path builder (``schema=``, ``timeout=``, ``repair=``,
    ``temperature=``…).
    """
    provider, name = provider_of(model)
    build = openai_path if provider == "openai" else anthropic_path
    for what, given in (("clients", clients), ("async_clients", async_clients)):
        unknown = sorted(set(given or {}) - {"openai", "anthropic"})
        if unknown:
            raise ConfigurationError(
                f"{what} keys must be 'openai' and/or 'anthropic', got {unknown}"
            )
    kwargs.setdefault("client", (clients or {}).get(provider))
    kwargs.setdefault("async_client", (async_clients or {}).get(provider))
    return build(name, prompt, **kwargs)


def _not_none(value: Any) -> bool:
    return value is not None


def router_from_models(
    models: Sequence[str | Path],
    prompt: Prompt,
    schema: Any = None,
    success_fn: Callable[[Any], Any] | None = None,
    *,
    task: str,
    clients: Mapping[str, Any] | None = None,
    async_clients: Mapping[str, Any] | None = None,
    system: str | None = None,
    timeout: float | None = 30.0,
    repair: bool | int = False,
    path_options: Mapping[str, Mapping[str, Any]] | None = None,
    **router_kwargs: Any,
) -> Router:
    """A :class:`~adaptive_router.router.Router` over provider paths built from model names.

    ::

        router = router_from_models(
            ["gpt-4o", "claude-3-5-sonnet-20241022"],
            prompt="Extract the order as JSON: {text}",
            schema=Order,
            task="order-extraction",
        )
        order = router.run(text="2x widget to Berlin")

    Each name becomes :func:`openai_path` or :func:`anthropic_path` (chosen by
    :func:`provider_of`; ``"openai:<model>"`` / ``"anthropic:<model>"`` name the provider
    of any other model) with the same ``prompt``, ``schema``, ``system``, ``timeout``
    and ``repair``; ``path_options`` adds keyword arguments per model name (``{"gpt-4o":
    {"temperature": 0.2}, "claude-3-5-sonnet-20241022": {"max_tokens": 2000}}``). A
    :class:`~adaptive_router.paths.Path` in ``models`` is used as it is.

    ``clients`` / ``async_clients`` map ``"openai"`` and ``"anthropic"`` to SDK clients
    (e.g. pointed at a proxy or a test server); missing ones come from the environment.
    ``success_fn`` defaults to "the (validated) result is not None" unless
    ``score_fn=`` is given. Other keyword arguments go to ``Router`` (``store=``,
    ``fallback=``, ``half_life=``, ``seed=``…); ``timeout`` is the built paths' own.
    """
    from adaptive_router.router import Router

    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence) or not models:
        raise ConfigurationError(
            "models must be a non-empty list of model names such as ['gpt-4o', "
            "'claude-3-5-sonnet-20241022']"
        )
    options = dict(path_options or {})
    names = {m for m in models if isinstance(m, str)}
    unused = sorted(set(options) - names)
    if unused:
        raise ConfigurationError(f"path_options names models not in models: {unused}")
    paths: list[Path] = []
    for model in models:
        if isinstance(model, Path):
            paths.append(model)
            continue
        if not isinstance(model, str):
            raise ConfigurationError(
                f"models must hold model names (str) or Path objects, got {model!r}"
            )
        kwargs: dict[str, Any] = {
            "schema": schema,
            "system": system,
            "timeout": timeout,
            "repair": repair,
            **options.get(model, {}),
        }
        paths.append(
            model_path(model, prompt, clients=clients, async_clients=async_clients, **kwargs)
        )
    if success_fn is None and router_kwargs.get("score_fn") is None:
        success_fn = _not_none
    return Router(paths, success_fn, task, **router_kwargs)
