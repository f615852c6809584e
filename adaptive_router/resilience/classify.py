"""Error kinds: which :class:`~adaptive_router.outcomes.ErrorKind` an exception is, and
how long the server asked us to wait (``Retry-After``).

One mapping serves the router's records, the retry policy and the breaker, so an SDK
error, an HTTP status and a builtin timeout are classified alike everywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from adaptive_router.outcomes import ErrorKind
from adaptive_router.resilience.credentials import missing_credentials

__all__ = ["RETRYABLE", "classify", "retry_after"]


#: Kinds worth trying again: the same request may well succeed a moment later.
RETRYABLE: frozenset[ErrorKind] = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION}
)


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

# Exception classes are looked up in sys.modules instead of imported: an exception from a
# library that was never imported cannot exist, and importing openai/anthropic here would
# add seconds to every `import adaptive_router`, even for users of neither.
_TIMEOUT_NAMES: tuple[tuple[str, str], ...] = (
    ("httpx", "TimeoutException"),
    ("httpx2", "TimeoutException"),  # what openai>=3 and anthropic>=2 are built on
    ("openai", "APITimeoutError"),
    ("anthropic", "APITimeoutError"),
    ("requests", "Timeout"),
)
_CONNECTION_NAMES: tuple[tuple[str, str], ...] = (
    ("httpx", "NetworkError"),
    ("httpx", "RemoteProtocolError"),  # "server disconnected without sending a response"
    ("httpx", "ProxyError"),
    ("httpx2", "NetworkError"),
    ("httpx2", "RemoteProtocolError"),
    ("httpx2", "ProxyError"),
    ("openai", "APIConnectionError"),
    ("anthropic", "APIConnectionError"),
    ("requests", "ConnectionError"),
)
# Refused credentials by type (LiteLLM's classes of the same names subclass openai's).
_AUTH_NAMES: tuple[tuple[str, str], ...] = (
    ("openai", "AuthenticationError"),
    ("openai", "PermissionDeniedError"),
    ("anthropic", "AuthenticationError"),
    ("anthropic", "PermissionDeniedError"),
)
_BUILTIN_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,  # a distinct class before Python 3.11
    concurrent.futures.TimeoutError,  # likewise
)
_BUILTIN_CONNECTION: tuple[type[BaseException], ...] = (ConnectionError, socket.gaierror)

# The error "type" in an SDK error body. It matters when the HTTP status does not: Anthropic
# reports an overload that happens mid-stream as an SSE error event on a 200 response, so
# the SDK raises APIStatusError with status_code 200 and type "overloaded_error".
_ERROR_TYPE_KINDS: dict[str, ErrorKind] = {
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.SERVER_ERROR,
    "api_error": ErrorKind.SERVER_ERROR,
    "server_error": ErrorKind.SERVER_ERROR,
    "service_unavailable": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
    "invalid_request_error": ErrorKind.CLIENT_ERROR,
    "authentication_error": ErrorKind.AUTH_ERROR,
    "permission_error": ErrorKind.AUTH_ERROR,
    "invalid_api_key": ErrorKind.AUTH_ERROR,
    "not_found_error": ErrorKind.CLIENT_ERROR,
    "billing_error": ErrorKind.CLIENT_ERROR,
    "insufficient_quota": ErrorKind.CLIENT_ERROR,
}

# A 429 that means "out of money", not "slow down": waiting does not help, so it must not
# burn the retry budget (OpenAI sends 429 insufficient_quota; Anthropic 429 with these
# error codes when a spend limit is reached).
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
    }
)

_MAX_CAUSE_DEPTH = 5


def classify(exc: BaseException) -> ErrorKind:
    """Map an exception to the :class:`ErrorKind` the router records and retries on.

    In order: an exception with a ``kind`` attribute holding an ErrorKind (or its value)
    is that kind (this is how to classify your own exceptions); timeouts (builtin,
    asyncio, httpx/httpx2, SDK ``APITimeoutError``) are ``timeout``; the SDKs'
    authentication and permission errors (openai, anthropic, and LiteLLM's, which
    subclass openai's) and a missing API key in the SDKs' words are ``auth_error``; an
    HTTP status (``status_code`` on the exception or its ``response``) decides next: 401
    and 403 ``auth_error``, 429 ``rate_limited`` (but a quota/spend-limit 429 is
    ``client_error``), 408 ``timeout``, 5xx including Anthropic's 529 ``server_error``,
    other 4xx ``client_error``; then the SDK error body's type (mid-stream errors arrive
    with a 200 status); then connection failures are ``connection``. Anything else is
    ``exception``. When an exception is unrecognised, its explicit cause
    (``raise ... from err``) is classified instead, so wrapping an SDK error keeps its kind.
    """
    current: BaseException | None = exc
    for _ in range(_MAX_CAUSE_DEPTH):
        if current is None:
            break
        kind = _classify_one(current)
        if kind is not ErrorKind.EXCEPTION:
            return kind
        current = current.__cause__
    return ErrorKind.EXCEPTION


def _classify_one(exc: BaseException) -> ErrorKind:
    declared = _declared_kind(exc)
    if declared is not None:
        return declared
    if isinstance(exc, _BUILTIN_TIMEOUTS + _loaded_classes(_TIMEOUT_NAMES)):
        return ErrorKind.TIMEOUT
    # Before the status: LiteLLM reports the openai SDK's "Missing credentials" as a 500.
    if isinstance(exc, _loaded_classes(_AUTH_NAMES)) or missing_credentials(exc):
        return ErrorKind.AUTH_ERROR
    status = _status_code(exc)
    if status is not None:
        by_status = _kind_for_status(status, exc)
        if by_status is not None:
            return by_status
    by_type = _kind_from_error_body(exc)
    if by_type is not None:
        return by_type
    if isinstance(exc, _BUILTIN_CONNECTION + _loaded_classes(_CONNECTION_NAMES)):
        return ErrorKind.CONNECTION
    return ErrorKind.EXCEPTION


def _loaded_classes(names: Iterable[tuple[str, str]]) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name, attr in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, attr, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _safe_attr(obj: object, name: str) -> Any:
    # Some exception properties raise when unset (httpx's RequestError.request does).
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _declared_kind(exc: BaseException) -> ErrorKind | None:
    kind = _safe_attr(exc, "kind")
    if isinstance(kind, ErrorKind):
        return kind
    if isinstance(kind, str):
        try:
            return ErrorKind(kind)
        except ValueError:
            return None
    return None


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _status_code(exc: BaseException) -> int | None:
    for value in (
        _safe_attr(exc, "status_code"),  # openai/anthropic APIStatusError
        _safe_attr(_safe_attr(exc, "response"), "status_code"),  # httpx/requests HTTPError
        _safe_attr(exc, "status"),  # aiohttp ClientResponseError
    ):
        status = _as_status(value)
        if status is not None:
            return status
    return None


def _error_codes(exc: BaseException) -> set[str]:
    codes = {_safe_attr(exc, "code"), _safe_attr(exc, "error_code")}
    # Older SDKs (anthropic before 2.x) leave the code in the parsed body only: OpenAI's
    # {"code": ...}, Anthropic's {"error": {"details": {"error_code": ...}}}.
    body = _safe_attr(exc, "body") if hasattr(exc, "body") else None
    if isinstance(body, Mapping):
        codes.add(body.get("code"))
        inner = body.get("error")
        if isinstance(inner, Mapping):
            codes.add(inner.get("code"))
            details = inner.get("details")
            if isinstance(details, Mapping):
                codes.add(details.get("error_code"))
    return {c for c in codes if isinstance(c, str)}


def _kind_for_status(status: int, exc: BaseException) -> ErrorKind | None:
    if status == 429:
        if _error_codes(exc) & _QUOTA_CODES:
            return ErrorKind.CLIENT_ERROR
        return ErrorKind.RATE_LIMITED
    if status == 408:
        return ErrorKind.TIMEOUT
    if status in (401, 403):
        return ErrorKind.AUTH_ERROR
    if 500 <= status <= 599:
        return ErrorKind.SERVER_ERROR
    if 400 <= status <= 499:
        return ErrorKind.CLIENT_ERROR
    return None


def _kind_from_error_body(exc: BaseException) -> ErrorKind | None:
    # Only SDK API errors carry a `body`; an arbitrary `.type` attribute means nothing.
    if not hasattr(exc, "body"):
        return None
    body = _safe_attr(exc, "body")
    candidates: list[object] = [_safe_attr(exc, "type"), *_error_codes(exc)]
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            candidates.append(inner.get("type"))
        candidates.append(body.get("type"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate in _ERROR_TYPE_KINDS:
            return _ERROR_TYPE_KINDS[candidate]
    return None


def retry_after(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from the exception's response headers.

    Reads ``retry-after-ms`` (OpenAI, milliseconds) first, then ``Retry-After`` as
    seconds or an HTTP date (relative to ``now``, epoch seconds, default ``time.time()``).
    Returns ``None`` when there is no usable header; never a negative number.
    """
    headers = _safe_attr(_safe_attr(exc, "response"), "headers")
    if headers is None:
        headers = _safe_attr(exc, "headers")
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        seconds = _parse_seconds(millis)
        if seconds is not None:
            return seconds / 1000.0
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds
    import email.utils  # an HTTP date is rare: ~10 ms of import not paid at start

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are always GMT
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
        if value is None:
            # A plain dict is case-sensitive; HTTP header names are not.
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    except Exception:
        return None
    return value.strip() if isinstance(value, str) else None


def _parse_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
