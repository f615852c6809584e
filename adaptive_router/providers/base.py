"""What every provider path shares: argument checks, prompt templates, usage and
spend bookkeeping, JSON extraction and the :class:`ProviderCall` base that makes one SDK
request per attempt (sync and async), and :func:`build_path` that wraps a call in a Path.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import json
import logging
import re
import string
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adaptive_router import forks
from adaptive_router._checks import reported_count
from adaptive_router.errors import ConfigurationError
from adaptive_router.metering.capture import suppress as suppress_capture
from adaptive_router.outcomes import ErrorKind, Result, Usage
from adaptive_router.paths import Path, _Inherit, token_pair
from adaptive_router.providers.repair import REPAIR_PROMPT, RepairCounter, schema_sentence
from adaptive_router.providers.request_tokens import PromptTokens
from adaptive_router.resilience import (
    CircuitBreaker,
    MissingCredentialsError,
    RateLimit,
    RetryPolicy,
    classify,
)
from adaptive_router.validation import OutputValidationError, parse_output

logger = logging.getLogger(__name__)

Messages = list[dict[str, Any]]
#: A prompt: a template formatted with the run's arguments, or a callable returning the
#: messages (a list of ``{"role": ..., "content": ...}`` dicts, or one string).
Prompt = str | Callable[..., Sequence[Mapping[str, Any]] | str]

# Request fields the path sets itself; passing them in **params is a mistake.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "timeout"})


class PromptError(ValueError):
    """The prompt could not be built from the run's arguments (a bug in the caller, not
    a provider failure: kind ``exception``, never retried)."""


class MalformedResponseError(RuntimeError):
    """The provider answered 200 with a body that is not a completion (not JSON, an HTML
    page from a proxy, fields missing). Kind ``server_error``: retried, like a 5xx."""

    kind = ErrorKind.SERVER_ERROR


def check_model(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"model must be a non-empty string such as 'gpt-4o', got {model!r}"
        )
    return model


def check_prompt(prompt: object) -> Prompt:
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


def check_params(
    params: Mapping[str, Any], reserved: frozenset[str], provider: str
) -> dict[str, Any]:
    bad = sorted(set(params) & reserved)
    if bad:
        raise ConfigurationError(
            f"{bad} cannot be passed as request parameters: the path sets them itself "
            "(model and timeout are arguments; streaming is not supported)"
        )
    check_sdk_params(provider, params)
    return dict(params)


def check_sdk_params(provider: str, params: Mapping[str, Any]) -> None:
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


#: A token count from a response: an int >= 0, else None (unknown).
as_int = reported_count


def add_usage(spent: Usage | None, usage: Usage) -> Usage:
    """``usage`` plus what earlier requests of the same attempt spent."""
    if spent is None:
        return usage

    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    # Known only when both are: a partial sum shown as the whole would under-count, while
    # None lets the router price the summed tokens (the rule captured_usage follows).
    cost = (
        None
        if spent.cost_usd is None or usage.cost_usd is None
        else spent.cost_usd + usage.cost_usd
    )
    return Usage(
        input_tokens=add(spent.input_tokens, usage.input_tokens),
        output_tokens=add(spent.output_tokens, usage.output_tokens),
        cost_usd=cost,
        model=usage.model or spent.model,
        cache_read_tokens=add(spent.cache_read_tokens, usage.cache_read_tokens),
        cache_write_tokens=add(spent.cache_write_tokens, usage.cache_write_tokens),
    )


def attach_spend(exc: BaseException, usage: Usage | None, repairs: int) -> None:
    """Put the attempt's spent tokens (and repairs made) on an exception for the router."""
    try:
        if usage is not None and not isinstance(getattr(exc, "usage", None), Usage):
            exc.usage = usage  # type: ignore[attr-defined]
        if repairs:
            exc.outcome_metadata = {"repairs": repairs}  # type: ignore[attr-defined]
    except AttributeError:  # an exception class with __slots__: nothing to attach to
        pass


class Exchange:
    """One attempt's conversation with the provider — the request to send, the tokens
    spent and repairs made so far — shared by the sync and async calls, which differ
    only in how they send."""

    __slots__ = ("call", "repairs", "request", "spent")

    def __init__(self, call: ProviderCall, request: dict[str, Any]) -> None:
        self.call = call
        self.request = request
        self.spent: Usage | None = None
        self.repairs = 0

    def send_failed(self, exc: Exception) -> BaseException:
        """The exception to raise for a failed send, carrying the tokens spent so far."""
        if isinstance(exc, json.JSONDecodeError):
            error = self.call._malformed(f"the response body is not JSON ({exc})")
            attach_spend(error, self.spent, self.repairs)
            return error
        attach_spend(exc, self.spent, self.repairs)
        if classify(exc) is ErrorKind.AUTH_ERROR:
            # The path knows where its key comes from: the router's log line says so.
            with contextlib.suppress(AttributeError):  # an exception class with __slots__
                exc.credentials_fix = self.call.credentials_fix()  # type: ignore[attr-defined]
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


def make_result(value: Any, usage: Usage, repairs: int) -> Result:
    if repairs and _RESULT_HAS_METADATA:
        extra: dict[str, Any] = {"metadata": {"repairs": repairs}}
        return Result(value, usage, **extra)
    return Result(value, usage)


#: The follow-up user message of a repair; ``{error}`` is the validation error,
#: ``{schema}`` the JSON schema sentence (empty when the schema has none to show).


class ProviderCall(abc.ABC):
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
        forks.follow(self)

    def __repr__(self) -> str:
        return f"<{self.provider} call model={self.model!r}>"

    def _after_fork_in_child(self) -> None:
        """In a forked child: the clients this call made are dropped (their connection
        pools hold the parent's sockets; the child makes its own at its first call). A
        client the user passed is the user's to make per process."""
        self._lock = threading.Lock()
        if self._given_client is None:
            self._client = None
        self._aclients = weakref.WeakKeyDictionary()

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
        fix = f"set {self.env_key} in the environment or pass client=/async_client="
        return MissingCredentialsError(
            f"{self.provider} path {self.model!r}: no API key; {fix}", fix=fix
        )

    def credentials_fix(self) -> str:
        """What to set when the provider refuses this path's credentials (401/403)."""
        if self._given_client is not None or self._given_async_client is not None:
            return (
                f"check the API key of the client given to {self.provider}_path(client=..., "
                f"async_client=...) and that it may use model {self.model!r}"
            )
        return (
            f"set {self.env_key} to a valid key that may use model {self.model!r}, or pass "
            "client=/async_client="
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
        exchange = Exchange(self, self.request(args, kwargs))
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
        exchange = Exchange(self, self.request(args, kwargs))
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
            self._schema_text = schema_sentence(self.schema)
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

    def _chat_choice(
        self, response: Any, usage: Usage, where: str
    ) -> tuple[str | None, Usage, str | None]:
        """``_read``'s answer for a chat completion (OpenAI's shape, which LiteLLM's
        responses mirror): the first choice's text, ``usage``, and why there is no text
        (no choices, a refusal); no ``choices`` at all in the ``where`` is malformed."""
        choices = getattr(response, "choices", None)
        if choices is None:
            raise self._malformed(f"no 'choices' in the {where}")
        if not choices:
            return None, usage, "response has no choices"
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        refusal = getattr(message, "refusal", None)
        why = f"model refused: {str(refusal)[:200]}" if refusal else None
        return (text if isinstance(text, str) else None), usage, why

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
            attach_spend(error, spent, repairs)
            raise error
        try:
            text, usage, why = self._read(response)
        except MalformedResponseError as error:
            attach_spend(error, spent, repairs)
            raise
        usage = add_usage(spent, usage)
        if text is None or not text.strip():
            exc = OutputValidationError(
                why or "output is empty", text or "", kind=ErrorKind.EMPTY.value
            )
            exc.usage = usage  # type: ignore[attr-defined]
            attach_spend(exc, None, repairs)
            raise exc
        if self.schema is None:
            return Result(text, usage)
        try:
            value = parse_output(text, self.schema)
        except OutputValidationError as exc:
            exc.usage = usage  # type: ignore[attr-defined]
            attach_spend(exc, None, repairs)
            raise
        if repairs:
            self.repairs._count(fixed=1)
        return make_result(value, usage, repairs)


def build_path(
    call: ProviderCall,
    *,
    name: str | None,
    timeout: float | None,
    client: Any,
    async_client: Any,
    retry: RetryPolicy | _Inherit | None,
    breaker: CircuitBreaker | _Inherit | None,
    rate_limit: RateLimit | None,
    expected_tokens: tuple[int, int] | None = None,
    price_each_request: bool = False,
) -> Path:
    path_name = call.model if name is None else name.replace("{model}", call.model)
    tokens: tuple[int, int] | PromptTokens | None = expected_tokens
    if price_each_request is not False:
        tokens = _prompt_tokens(call, path_name, expected_tokens, price_each_request)
    # With only a sync client there is no async one to await; arun() then runs the sync
    # call in a worker thread rather than create a client pointed somewhere else.
    # With only an async client, the async call is the path's function: run() runs it on
    # the shared loop thread (resilience.timeouts.run_coroutine), arun() awaits it.
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
        expected_tokens=tokens,
        metadata=(
            {"provider": call.provider, "repairs": call.repairs}
            if call.repair
            else {"provider": call.provider}
        ),
    )


def _prompt_tokens(
    call: ProviderCall, name: str, expected_tokens: object, price_each_request: object
) -> PromptTokens:
    """``price_each_request=True``'s per-request tokens: each request's prompt counted,
    with ``expected_tokens``' output count (required: a reply's length is not in the
    request)."""
    if price_each_request is not True:
        raise ConfigurationError(
            f"path {name!r}: price_each_request must be True or False, got {price_each_request!r}"
        )
    pair = token_pair(expected_tokens)
    if pair is None:
        raise ConfigurationError(
            f"path {name!r}: price_each_request=True counts each request's input tokens from "
            "its prompt and needs the output tokens a reply is expected to use: give "
            "expected_tokens=(input, output), e.g. (0, 300); got "
            f"expected_tokens={expected_tokens!r}"
        )
    return PromptTokens(call.request, pair[1])
