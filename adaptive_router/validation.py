"""Parse JSON out of LLM text and validate it with pydantic.

Models wrap JSON in markdown fences, put prose around it, or stop mid-object
when they run out of tokens. :func:`extract_json` finds the JSON a model meant
to give, without repairing it: a trailing comma or a truncated object is an
error, not something to guess at. :func:`parse_output` adds pydantic
validation and either returns a fully valid object or raises
:class:`OutputValidationError` (kind ``invalid_output``, or ``empty`` when the
model said nothing), which the router counts as a failed attempt.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, Literal, TypeVar, cast, get_origin, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from adaptive_router.outcomes import ErrorKind

__all__ = ["OutputValidationError", "extract_json", "parse_output"]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: Raw text longer than this is cut in messages and logs (the full text stays in ``.raw``).
MAX_RAW_CHARS = 200
#: At most this many pydantic errors are spelled out in a message.
MAX_ERRORS_SHOWN = 5

# ```lang\n ... ``` — the language tag is optional, as is the newline after it.
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+.-]*)[ \t]*\r?\n?(?P<body>.*?)```", re.DOTALL)
_JSON_LANGS = frozenset({"", "json", "jsonc", "json5", "javascript", "js"})
_OPENERS = {"{": "}", "[": "]"}
# A "{" or "[" starts a JSON candidate only if what follows can continue JSON, so
# prose such as "use { for objects" or "[see below]" is not taken for JSON.
_START = re.compile(r"\{\s*[\"}]|\[\s*(?:[\"{\[\]\-0-9]|true\b|false\b|null\b)")
_STRING = r'"(?:[^"\\]|\\.)*"'
# Strings (escapes included) and brackets; everything else is skipped by finditer.
# A lone quote is a string that never ends.
_TOKEN = re.compile(rf'{_STRING}|"|[\[\]{{}}]', re.DOTALL)
# Exact JSON tokens, for telling a truncated reply from prose with a stray bracket.
_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*'
_JSON_TOKEN = re.compile(
    rf'{_JSON_STRING}"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{{}}\[\],:]'
)
# The last token of a cut-off reply: a string, number or literal that stops at the end.
_PARTIAL_STRING = re.compile(rf"{_JSON_STRING}(?:\\(?:u[0-9a-fA-F]{{0,3}})?)?\Z")
_PARTIAL_SCALAR = re.compile(
    r"(?:-?(?:0|[1-9]\d*)(?:\.\d*)?(?:[eE][+-]?\d*)?|-"
    r"|t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?)\Z"
)
#: Stray "{" / "[" in prose looked past before giving up (bounds the scanning work).
MAX_STRAY_OPENERS = 20

JsonKind = Literal["object", "array"]
_OPENER_KIND: dict[str, JsonKind] = {"{": "object", "[": "array"}


class OutputValidationError(ValueError):
    """Model output that is empty, not JSON, or not valid for the expected schema.

    Attributes
    ----------
    kind:
        ``"empty"`` for empty or whitespace-only text, else ``"invalid_output"``
        (the :class:`~adaptive_router.outcomes.ErrorKind` values).
    raw:
        The complete text that was parsed.
    reason:
        Why it was rejected, without the raw text.
    errors:
        pydantic's error list (without input values) for schema failures, else ``None``.
    """

    def __init__(
        self,
        reason: str,
        raw: str,
        *,
        kind: str = ErrorKind.INVALID_OUTPUT.value,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.reason = reason
        self.raw = raw
        self.kind = kind
        self.errors = errors
        super().__init__(f"{reason}; raw output ({len(raw)} chars): {truncate(raw)!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are lost by the default exception pickling.
        return (_rebuild_error, (self.reason, self.raw, self.kind, self.errors))


def _rebuild_error(
    reason: str, raw: str, kind: str, errors: list[dict[str, Any]] | None
) -> OutputValidationError:
    return OutputValidationError(reason, raw, kind=kind, errors=errors)


def truncate(text: str, limit: int = MAX_RAW_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marking the cut with its full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more chars]"


def extract_json(text: str | None) -> Any:
    """Return the JSON value an LLM's ``text`` contains.

    Tried in order: the whole text; each markdown code fence (with or without a
    language tag); the first complete ``{...}`` or ``[...]`` in the text, with
    any prose around it ignored. Strict JSON only: trailing commas, comments,
    single quotes and ``NaN`` are rejected rather than repaired, and an object
    cut off before its end (a truncated reply) is an error, never a partial
    result.

    Raises :class:`OutputValidationError` (kind ``"empty"`` for empty or
    whitespace text, ``"invalid_output"`` otherwise).
    """
    raw = _as_text(text)
    value, _ = _find(raw, None)
    return value


@overload
def parse_output(text: str | None, schema: type[M], *, strict: bool | None = ...) -> M: ...
@overload
def parse_output(text: str | None, schema: TypeAdapter[T], *, strict: bool | None = ...) -> T: ...
@overload
def parse_output(text: str | None, schema: type[T], *, strict: bool | None = ...) -> T: ...
@overload
def parse_output(text: str | None, schema: None = ..., *, strict: bool | None = ...) -> Any: ...


def parse_output(text: str | None, schema: Any = None, *, strict: bool | None = None) -> Any:
    """Extract JSON from ``text`` (see :func:`extract_json`) and validate it against ``schema``.

    ``schema`` is a pydantic model class, any type pydantic can validate
    (``list[Item]``, ``dict[str, int]``, a ``TypedDict``…), a ``TypeAdapter``,
    or ``None`` for plain JSON. Validation uses pydantic's JSON mode on the
    extracted JSON text; ``strict`` is passed through.

    When the schema is a model (a JSON object), the first JSON *object* in the
    text is used, so a ``[1]`` citation in the prose before it is not mistaken
    for the answer.

    Returns a fully valid value or raises :class:`OutputValidationError`; it
    never returns a partially valid object.
    """
    raw = _as_text(text)
    if schema is None:
        return _find(raw, None)[0]
    _, candidate = _find(raw, _json_kind(schema))
    try:
        if isinstance(schema, TypeAdapter):
            return schema.validate_json(candidate, strict=strict)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate_json(candidate, strict=strict)
        return _adapter(schema).validate_json(candidate, strict=strict)
    except ValidationError as exc:
        errors = cast(list[dict[str, Any]], exc.errors(include_url=False, include_input=False))
        raise _fail(_describe(exc.title, errors), raw, errors=errors) from None


def _json_kind(schema: Any) -> JsonKind | None:
    """The kind of JSON value ``schema`` validates, when that is plain to see."""
    # TypedDict classes are dict subclasses at runtime, so they count as objects here.
    if isinstance(schema, type) and issubclass(schema, (BaseModel, dict)):
        return "object"
    origin = get_origin(schema) or schema
    if origin in (dict, Mapping, MutableMapping):
        return "object"
    if origin in (list, tuple, set, frozenset, Sequence, MutableSequence):
        return "array"
    return None


@functools.lru_cache(maxsize=256)
def _cached_adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


def _adapter(schema: Any) -> TypeAdapter[Any]:
    # Building a TypeAdapter compiles a validator: cache it for hashable schemas.
    try:
        return _cached_adapter(schema)
    except TypeError:
        return TypeAdapter(schema)


def _describe(title: str, errors: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg', '')}"
        for e in errors[:MAX_ERRORS_SHOWN]
    )
    more = f"; and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
    n = len(errors)
    return f"output does not match {title}: {n} validation error{'s' * (n != 1)}: {shown}{more}"


def _as_text(text: object) -> str:
    if text is None:
        # SDKs give None for a message with no content; that is an empty answer.
        raise _fail("output is empty", "", kind=ErrorKind.EMPTY.value)
    if not isinstance(text, str):
        raise TypeError(f"expected the model's output as str, got {type(text).__name__}")
    if not text.strip():
        raise _fail("output is empty", text, kind=ErrorKind.EMPTY.value)
    return text


def _fail(
    reason: str,
    raw: str,
    *,
    kind: str = ErrorKind.INVALID_OUTPUT.value,
    errors: list[dict[str, Any]] | None = None,
) -> OutputValidationError:
    logger.info(
        "LLM output rejected: %s; raw output (%d chars): %r",
        reason,
        len(raw),
        truncate(raw),
        extra={"kind": kind, "raw_chars": len(raw)},
    )
    return OutputValidationError(reason, raw, kind=kind, errors=errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(s: str) -> Any:
    return json.loads(s, parse_constant=_reject_constant)


def _kind_of(value: Any) -> JsonKind | None:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return None


def _find(raw: str, want: JsonKind | None) -> tuple[Any, str]:
    """The first JSON value in ``raw`` (of kind ``want`` when scanning) and its text."""
    stripped = raw.strip().lstrip("\ufeff")
    first_error: str | None = None

    def note(exc: ValueError | RecursionError) -> None:
        nonlocal first_error
        if first_error is None:
            first_error = f"invalid JSON: {exc}"

    # The whole text: used even if its kind is not the one wanted, so that a
    # JSON array answered for an object schema fails validation with a clear reason.
    # Its parse error is not kept: for text with prose it only says "Extra data",
    # and the spans below report the error of the JSON itself.
    try:
        return _loads(stripped), stripped
    except (ValueError, RecursionError):
        pass

    for match in _FENCE.finditer(raw):
        if match.group("lang").lower() not in _JSON_LANGS:
            continue
        body = match.group("body").strip()
        if not body:
            continue
        try:
            value = _loads(body)
        except (ValueError, RecursionError) as exc:
            note(exc)
            continue
        if want is None or _kind_of(value) == want:
            return value, body

    pos, skipped = 0, 0
    while (start := _next_start(raw, pos)) >= 0:
        end = _span_end(raw, start)
        if end is None:
            if _is_json_prefix(raw[start:]):
                raise _fail(
                    first_error
                    or f"JSON starting at character {start} is never closed (truncated output?)",
                    raw,
                )
            if skipped >= MAX_STRAY_OPENERS:
                raise _fail(
                    first_error
                    or f"no complete JSON found (gave up after {skipped} unclosed brackets)",
                    raw,
                )
            # Not a JSON prefix, so a stray bracket in prose: look past it.
            skipped += 1
            pos = start + 1
            continue
        # Skip the whole span, never look inside it: the inner object of a broken
        # outer one is not the answer.
        pos = end
        candidate = raw[start:end]
        if want is not None and _OPENER_KIND[candidate[0]] != want:
            continue
        try:
            return _loads(candidate), candidate
        except (ValueError, RecursionError) as exc:
            note(exc)

    if first_error is not None:
        raise _fail(first_error, raw)
    what = f"JSON {want}" if want else "JSON object or array"
    raise _fail(f"no {what} found in the output", raw)


def _next_start(text: str, pos: int) -> int:
    """Index of the next ``{`` or ``[`` at or after ``pos`` that can start JSON, else -1."""
    match = _START.search(text, pos)
    return match.start() if match else -1


def _span_end(text: str, start: int) -> int | None:
    """End of the bracketed span opening at ``start``; ``None`` if it never closes.

    Brackets inside JSON strings do not count. A closer of the wrong type ends
    the span (prose like ``{x]``), which then fails to parse as JSON.
    """
    stack: list[str] = []
    for token in _TOKEN.finditer(text, start):
        t = token.group()
        if t[0] == '"':
            if len(t) == 1:
                return None  # a string that never ends
            continue
        if t in _OPENERS:
            stack.append(_OPENERS[t])
        elif t != stack.pop() or not stack:
            return token.end()
    return None


def _is_json_prefix(text: str) -> bool:
    """Can ``text`` be continued into valid JSON, i.e. is it a cut-off JSON value?

    A truncated reply is a prefix of JSON; prose with a stray bracket is not.
    """
    closers = {"{": "}", "[": "]"}
    stack: list[str] = []
    expect = "value"  # value | value_or_close | key | key_or_close | colon | comma_or_close
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            return bool(stack)
        if expect in ("value", "value_or_close") and (
            _PARTIAL_STRING.match(text, pos) or _PARTIAL_SCALAR.match(text, pos)
        ):
            return True
        if expect in ("key", "key_or_close") and _PARTIAL_STRING.match(text, pos):
            return True
        token = _JSON_TOKEN.match(text, pos)
        if token is None:
            return False
        t, pos = token.group(), token.end()
        if expect in ("value", "value_or_close"):
            if t in closers:
                stack.append(t)
                expect = "key_or_close" if t == "{" else "value_or_close"
                continue
            if t == "]" and expect == "value_or_close":
                stack.pop()
            elif t in ("}", "]", ",", ":"):
                return False
        elif expect in ("key", "key_or_close"):
            if t.startswith('"'):
                expect = "colon"
                continue
            if t != "}" or expect != "key_or_close":
                return False
            stack.pop()
        elif expect == "colon":
            if t != ":":
                return False
            expect = "value"
            continue
        elif t == ",":
            expect = "key" if stack[-1] == "{" else "value"
            continue
        elif t == closers[stack[-1]]:
            stack.pop()
        else:
            return False
        # A value (or a container) just ended.
        if not stack:
            return False  # complete JSON: not what an unclosed span is
        expect = "comma_or_close"
