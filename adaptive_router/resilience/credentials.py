"""Refused or missing credentials (kind ``auth_error``): how the SDKs say there is no API
key, the exception provider paths raise for one, and what to tell the user to set.

A configuration error says nothing about the path: the router records it, never retries
it, keeps it out of the path's evidence, opens the path's breaker in this process and
logs one ERROR line from :func:`auth_advice`. Nothing here reads a key's value.
"""

from __future__ import annotations

from collections.abc import Iterator

from adaptive_router.outcomes import ErrorKind

__all__ = [
    "MISSING_KEY_PHRASES",
    "MissingCredentialsError",
    "auth_advice",
    "missing_credentials",
]

#: How the SDKs say that no key was given, and the variable they read it from: openai
#: ("Missing credentials. Please pass an `api_key`…", raised by the client's constructor;
#: older releases "The api_key client option must be set…") and anthropic (a TypeError
#: at request time, "Could not resolve authentication method…"). Their exception types
#: are too generic to tell.
MISSING_KEY_PHRASES: dict[str, str] = {
    "Missing credentials. Please pass": "OPENAI_API_KEY",
    "api_key client option must be set": "OPENAI_API_KEY",
    "Could not resolve authentication method": "ANTHROPIC_API_KEY",
}

# Where each SDK reads its key, for advice on its errors raised outside a provider path
# (a plain function calling the SDK).
_SDK_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_MAX_CHAIN = 5


class MissingCredentialsError(RuntimeError):
    """No API key for a client created from the environment. Kind ``auth_error``: no
    retry can help, and the path is not to blame. The message names the variable to set
    (``credentials_fix`` holds that advice), never a key."""

    kind = ErrorKind.AUTH_ERROR

    def __init__(self, message: str, *, fix: str) -> None:
        super().__init__(message)
        self.credentials_fix = fix


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, nearest first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and len(seen) < _MAX_CHAIN and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails says nothing we can read
        return ""


def _missing_key_variable(exc: BaseException) -> str | None:
    """The variable an SDK's "no key" message is about (None: not such a message)."""
    text = _text(exc)
    return next((var for phrase, var in MISSING_KEY_PHRASES.items() if phrase in text), None)


def missing_credentials(exc: BaseException) -> bool:
    """Whether ``exc`` itself says that no API key was given (ours, or an SDK's words)."""
    return isinstance(exc, MissingCredentialsError) or _missing_key_variable(exc) is not None


def _status(exc: BaseException) -> int | None:
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def auth_advice(exc: BaseException) -> tuple[str, str]:
    """``(what happened, what to do)`` for an exception classified ``auth_error``, for
    the one log line that names the path: e.g. ``("the provider refused the credentials
    (HTTP 401)", "set OPENAI_API_KEY to a valid key ...")``.

    What to do is, in order: the ``credentials_fix`` a provider path attached (it knows
    its environment variable and whether it was given a client), else the variable of
    the SDK that raised (openai, anthropic; LiteLLM's provider), else a general hint.
    Never quotes the exception's message, which may echo part of a key.
    """
    chain = list(_chain(exc))
    if any(missing_credentials(e) for e in chain):
        what = "no API key"
    else:
        status = next((s for s in map(_status, chain) if s in (401, 403)), None)
        if status == 403:
            what = "the provider refused access with these credentials (HTTP 403)"
        elif status == 401:
            what = "the provider refused the credentials (HTTP 401)"
        else:
            what = "the provider refused the credentials"
    for e in chain:
        fix = getattr(e, "credentials_fix", None)
        if isinstance(fix, str) and fix:
            return what, fix
    for e in chain:
        variable = _missing_key_variable(e)
        if variable is not None:
            return what, f"set {variable} in the environment, or give the client an api_key"
    for e in chain:
        sdk = type(e).__module__.split(".", 1)[0]
        if sdk == "litellm":
            provider = getattr(e, "llm_provider", None)
            where = f" for provider {provider!r}" if isinstance(provider, str) and provider else ""
            return what, (
                f"check the API key LiteLLM uses{where} (its environment variable, or "
                "api_key=) and what it may access"
            )
        if sdk in _SDK_KEYS:
            return what, (
                f"check {_SDK_KEYS[sdk]} (or the api_key of the {sdk} client the path uses) "
                "and what the key may access"
            )
    return what, "check the API key or token the path uses, and what it may access"
