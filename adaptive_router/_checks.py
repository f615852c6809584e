"""The project's single copy of each validator and redactor.

Redaction works on text, not on parsed URLs: a URL that does not parse (or a message
that merely quotes one) must still lose its secrets, and a redactor must never raise.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from datetime import timedelta

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import MAX_TOKENS

__all__ = [
    "MASK",
    "MAX_ERROR_CHARS",
    "check_callables",
    "error_text",
    "first_line",
    "redact",
    "redact_keys",
    "redact_url",
    "reported_count",
    "seconds",
    "short",
    "url_secrets",
]

#: Error strings are cut to this length in outcomes and logs.
MAX_ERROR_CHARS = 500

#: What a secret is replaced by.
MASK = "***"

# Separators in their plain and percent-escaped forms: a URL quoted inside another URL's
# query (or logged escaped) carries ``%3A%2F%2F``, ``%40``, ``%3F``, ``%26``, ``%3D``.
_SCHEME_SEP = r"(?::|%3A)(?:/|%2F){2}"
_COLON = r"(?::|%3A)"
_AT = r"(?:@|%40)"
# Characters that end a URL inside text: whitespace, quotes and brackets.
_END = r"\s'\"<>()\[\]{}"

_TOKEN_END_RE = re.compile(rf"[{_END}]")
# Schemes whose user info alone may be a password (``redis://secret@host``).
_PASSWORD_ONLY_RE = re.compile(r"(?<![a-z0-9+.\-])(?:redis|rediss|valkey|valkeys)$", re.IGNORECASE)
# (scheme separator, colon, at, host) for plain URLs and for percent-escaped ones: a URL
# is escaped throughout or not at all, so a ``%40`` in a plain URL is a value's character.
_FORMS = tuple(
    (
        re.compile(sep, re.IGNORECASE),
        re.compile(colon, re.IGNORECASE),
        re.compile(at, re.IGNORECASE),
        re.compile(host, re.IGNORECASE),
    )
    for sep, colon, at, host in (
        ("://", ":", "@", r"[a-z0-9.\-_\[\]~:]*(?:[/?#]|$)"),
        ("%3A%2F%2F", "%3A", "%40", r"(?:[a-z0-9.\-_~]|%3A|%5B|%5D)*(?:%2F|%3F|%23|[/?#&]|$)"),
    )
)


def _userinfo_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the passwords in ``scheme://user:password@host`` (any scheme, escaped or
    not). The password runs from the first colon after ``://`` to the last ``@`` that a
    host follows (else the token's last ``@``), so a raw ``@`` or ``/`` in it (SQLAlchemy
    accepts both) is masked whole; one scan per token and form keeps this linear."""
    spans: list[tuple[int, int]] = []
    for sep_re, colon_re, at_re, host_re in _FORMS:
        pos = 0
        for sep in sep_re.finditer(text):
            if sep.start() < pos:
                continue
            end_match = _TOKEN_END_RE.search(text, sep.end())
            end = end_match.start() if end_match else len(text)
            pos = end
            ats = list(at_re.finditer(text, sep.end(), end))
            if not ats:
                continue
            at = next((a for a in reversed(ats) if host_re.match(text, a.end(), end)), ats[-1])
            colon = colon_re.search(text, sep.end(), at.start())
            if colon is not None:
                spans.append((colon.end(), at.start()))
            elif _PASSWORD_ONLY_RE.search(text, 0, sep.start()) and at.start() > sep.end():
                # redis://secret@host: Redis's own URLs put the password there (AUTH
                # with no user name), so a lone user info is masked whole.
                spans.append((sep.end(), at.start()))
    return spans


# key=value pairs after ``?``, ``&``, ``;`` or whitespace (libpq keyword DSNs, messages).
_PAIR = re.compile(
    r"(?P<sep>^|[?&;\s]|%3F|%26)"
    r"(?P<key>(?:(?!%3D|%26)[^=&;?#\s'\"])+)"
    r"(?P<eq>=|%3D)"
    rf"(?P<value>(?:(?!%26)[^&;#{_END}])*)",
    re.IGNORECASE,
)
# Parameter names whose values are secrets: password, sslpassword, passwd, pwd, token,
# access_token, api_key, apikey, x-api-key, secret, client_secret, auth, credentials,
# signature, private_key, session…
_SECRET_KEY = re.compile(
    r"pass|pwd|secret|token|api[_\-.]?key|auth|credential|signature|private|session|^key$|^sig$",
    re.IGNORECASE,
)


def _unquote(text: str) -> str:
    """``text`` percent-decoded until stable (double escaping included), bounded."""
    for _ in range(4):
        decoded = urllib.parse.unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _pair_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the values of secret-looking ``key=value`` parameters."""
    spans = []
    for m in _PAIR.finditer(text):
        value = m["value"]
        if value and _SECRET_KEY.search(_unquote(m["key"])):
            # Punctuation ending a sentence around the URL ("cannot reach URL: why") stays.
            trail = 1 if value[-1] in ":,." and len(value) > 1 else 0
            spans.append((m.start("value"), m.end("value") - trail))
    return spans


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Every secret's span, overlaps merged. Both detectors read the original text, so
    neither can hide a secret from the other (a ``%40`` in a query value is taken for the
    user info's ``@``, say)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(_userinfo_spans(text) + _pair_spans(text)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact_url(url: object) -> str:
    """``url`` (or any text quoting URLs) with every secret masked as ``***``.

    Masks the password of ``scheme://user:password@host`` for any scheme and the values
    of secret-looking parameters (``password``, ``sslpassword``, ``token``, ``api_key``,
    ``secret``…), plain or percent-escaped. Accepts a :class:`sqlalchemy.engine.URL`
    and never raises: anything else is converted with ``str`` first.
    """
    try:
        render = getattr(url, "render_as_string", None)
        text = render(hide_password=False) if callable(render) else str(url)
        out, last = [], 0
        for start, end in _secret_spans(text):
            out += [text[last:start], MASK]
            last = end
        return "".join([*out, text[last:]])
    except Exception:
        # A redactor that raises would turn a log line or an error into a new failure.
        return "<unprintable url>"


def url_secrets(url: object) -> list[str]:
    """The secrets ``url`` carries (user-info password, secret parameters), in the
    forms they may be quoted in (raw and percent-escaped); never raises."""
    found: set[str] = set()
    try:
        render = getattr(url, "render_as_string", None)
        text = render(hide_password=False) if callable(render) else str(url)
        for start, end in _userinfo_spans(text) + _pair_spans(text):
            found.add(text[start:end])
    except Exception:
        return []
    forms: set[str] = set()
    for secret in found:
        plain = _unquote(secret)
        forms.update({secret, plain, urllib.parse.quote_plus(plain), urllib.parse.quote(plain)})
    # Longest first, so a secret's escaped form is replaced before a shorter raw one.
    return sorted((f for f in forms if f and f != MASK), key=len, reverse=True)


def redact(text: object, *urls: object) -> str:
    """``text`` with URL secrets masked, and each secret of ``urls`` masked wherever it
    appears (a driver's message may quote a password outside any URL); never raises."""
    try:
        out = redact_url(text)
        for url in urls:
            if url is None or url == "":
                continue
            for secret in url_secrets(url):
                out = out.replace(secret, MASK)
        return out
    except Exception:
        return "<unprintable text>"


def seconds(value: timedelta | float | int | None, name: str, *, allow_none: bool) -> float | None:
    """A duration setting as float seconds: a ``timedelta`` or a finite number > 0 (or
    None when ``allow_none``); else a :class:`ConfigurationError` naming ``name``."""
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} is required")
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta (e.g. timedelta(minutes=10)) or seconds, "
            f"got {type(value).__name__}"
        )
    if not (secs > 0 and math.isfinite(secs)):
        raise ConfigurationError(f"{name} must be positive, got {value!r}")
    return secs


def check_callables(**named: object) -> None:
    """A :class:`ConfigurationError` naming the first of ``named`` that is not callable
    (a clock, a sleep: a component would otherwise fail at its first use, mid-request)."""
    for name, fn in named.items():
        if not callable(fn):
            raise ConfigurationError(f"{name} must be a callable, got {fn!r}")


def reported_count(value: object) -> int | None:
    """A token count read from an SDK response: an int in [0, :data:`MAX_TOKENS`], else
    None (unknown). A missing, negative, fractional, absurdly large or non-numeric count
    from a provider (or a server that only looks like one) is never recorded as given,
    and never raises."""
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else None


# API keys as providers quote them in errors: OpenAI's 401 says "Incorrect API key
# provided: sk-proj-abcd****wxyz" (and a proxy may echo the whole key); Anthropic's keys
# are sk-ant-…. A bearer token is masked wherever it is quoted.
_API_KEY = re.compile(r"(?<![A-Za-z0-9])(?:sk|pk|rk)-[A-Za-z0-9][A-Za-z0-9_\-*]{7,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._\-~+/=*]{8,}")


def redact_keys(text: str) -> str:
    """``text`` with API-key-looking tokens (``sk-…``, ``pk-…``, ``rk-…``, even partly
    masked) and bearer tokens replaced by ``***``; never raises."""
    try:
        if "-" not in text and "earer" not in text:  # the common case: nothing to look at
            return text
        return _BEARER.sub(lambda m: m[1] + MASK, _API_KEY.sub(MASK, text))
    except Exception:
        return "<unprintable text>"


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` cut to :data:`MAX_ERROR_CHARS`, API keys quoted in it masked
    (:func:`redact_keys`), for outcomes and logs; never raises."""
    try:
        text = redact_keys(f"{type(exc).__name__}: {exc}")
    except Exception:  # an exception whose __str__ itself fails must not break the request
        text = f"{type(exc).__name__}: <unprintable>"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def short(text: str, limit: int = 120) -> str:
    """The first line of an error text, cut to ``limit`` characters: for log messages."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a DBAPI error's original, when wrapped),
    else its type name."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__
