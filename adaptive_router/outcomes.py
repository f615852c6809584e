"""The records the router produces: outcomes of attempts, decisions, posteriors, stats."""

from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from adaptive_router.policies.contextual_decision import AnyDecision, decode


class ErrorKind(str, Enum):
    """Why an attempt failed. Stored as its string value."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    CLIENT_ERROR = "client_error"
    AUTH_ERROR = "auth_error"
    """The provider refused the credentials (HTTP 401/403, the SDKs' authentication and
    permission errors) or there was no API key: a configuration error, not the path's.
    Never retried and never evidence; the path's breaker opens in this process."""
    EMPTY = "empty"
    INVALID_OUTPUT = "invalid_output"
    REJECTED = "rejected"
    INVALID_SUCCESS = "invalid_success"
    INVALID_SCORE = "invalid_score"
    BREAKER_OPEN = "breaker_open"
    EXCEPTION = "exception"
    EXPIRED = "expired"
    SUCCESS_FN_ERROR = "success_fn_error"
    """``success_fn`` or ``score_fn`` raised: the judge's bug, not the path's. Recorded
    (and the next path tried, since the result went unjudged) but never evidence."""
    MAX_ATTEMPTS = "max_attempts"
    """Skipped: the request's ``max_attempts`` learned paths were already tried."""
    REQUEST_TIMEOUT = "request_timeout"
    """Skipped: the request's ``request_timeout`` was used up."""
    OVER_BUDGET = "over_budget"
    """Skipped: the path's expected cost exceeds what is left of ``max_cost_usd``."""


#: How the error note of an unjudged result begins (see :attr:`Outcome.unjudged`): a
#: stored row says it too, so a replay of the rows folds it as the live store did.
UNJUDGED = "score unknown"
#: Kinds that say nothing about the path: recorded, but never folded into its posterior
#: (a judge that raised; refused or missing credentials, which would otherwise drain a
#: healthy model's evidence for every process sharing the store).
NOT_EVIDENCE = frozenset({ErrorKind.SUCCESS_FN_ERROR.value, ErrorKind.AUTH_ERROR.value})
#: Kinds of attempts that got no billable answer from the provider (an error status or a
#: refused connection): they cost $0, known. A client-side timeout is not among them: the
#: provider may have finished, and billed, the call.
UNBILLED = frozenset(
    k.value
    for k in (
        ErrorKind.SERVER_ERROR,
        ErrorKind.RATE_LIMITED,
        ErrorKind.CONNECTION,
        ErrorKind.CLIENT_ERROR,
        ErrorKind.AUTH_ERROR,
    )
)


@dataclass(slots=True)
class Outcome:
    """One attempt of one path for one request.

    ``kind`` is ``None`` for a success and an :class:`ErrorKind` value otherwise.
    ``created_at`` is epoch seconds from the router's clock.
    """

    request_id: str
    task: str
    path: str
    attempt: int
    success: bool
    kind: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    created_at: float = 0.0
    metadata: dict[str, Any] | None = None
    retries: int = 0
    skipped: bool = False
    """True for a path passed over (breaker open, rate limit exhausted): never stored."""
    score: float | None = None
    """The 0-1 score from ``score_fn`` (None when the router uses ``success_fn``)."""
    context: str = ""
    """The routing context ("" = none); its evidence also counts for the whole task."""
    model: str | None = None
    """The model the attempt was priced at: the one its calls reported (when they all used
    one), else the path's ``model``; None when unknown."""
    cache_read_tokens: int | None = None
    """Of ``input_tokens``, those served from the prompt cache (None: not reported)."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the prompt cache (None: not reported)."""
    propensity: float | None = None
    """Probability that the router attempted this path first, given the evidence it routed
    on (see :mod:`adaptive_router.policies.propensity`). Set on the first attempt of a routed
    request only, and filled in after the fact (computed in batches, or by ``evaluate()``);
    None for later attempts, the final fallback, ``choose()``/``report()`` decisions and
    policies other than Thompson Sampling."""
    decision_data: bytes | None = None
    """The evidence the first attempt's routing decision used, encoded
    (:meth:`LoggedDecision.to_bytes`, as stored in ``outcomes.decision``); None where
    ``propensity`` is always None. Read it as :attr:`decision`. Kept encoded: a plain
    ``bytes`` costs the writer nothing to store and the garbage collector nothing to
    track while rows wait in the write buffer."""
    features: bytes | None = None
    """The request's hashed feature vector a contextual router decided on
    (:func:`adaptive_router.features.encode_features`), on its first attempt; stored in
    ``outcomes.features`` and folded into the path's linear statistics
    (``feature_stats``). None without features."""

    @property
    def decision(self) -> AnyDecision | None:
        """The evidence the first attempt's routing decision used (decoded from
        :attr:`decision_data` on each access): a
        :class:`~adaptive_router.policies.logged_decision.LoggedDecision` (Beta
        posteriors), or a :class:`~adaptive_router.policies.contextual_decision.GaussianDecision`
        for a feature router; None where ``propensity`` is always None."""
        data = self.decision_data
        return None if data is None else decode(data)

    @decision.setter
    def decision(self, value: AnyDecision | None) -> None:
        self.decision_data = None if value is None else value.to_bytes()

    @property
    def reward(self) -> float:
        """The evidence this outcome adds to the posterior: the score, else 1 or 0.

        A fractional reward is the fractional Beta update: α += s, β += 1 - s.
        """
        if self.score is not None:
            return self.score
        return 1.0 if self.success else 0.0

    @property
    def unjudged(self) -> bool:
        """Whether the result passed without a verdict (``score_fn`` returned None): its
        score is the posterior mean it was ranked by, noted in ``error``."""
        return self.kind is None and self.error is not None and self.error.startswith(UNJUDGED)

    def evidence_keys(self) -> tuple[str, ...]:
        """The path_stats contexts this outcome updates: the task level, and its context;
        none for a kind that is no evidence about the path (see ``NOT_EVIDENCE``). An
        unjudged result in a named context updates that context alone: its score is the
        context's mean, which folded there leaves every mean as it was, while folded at
        the task level it would pull the task's mean (and every context borrowing it)
        toward this context's."""
        if self.kind in NOT_EVIDENCE:
            return ()
        if not self.context:
            return ("",)
        return (self.context,) if self.unjudged else ("", self.context)


#: The most tokens one attempt can report or be expected to use: far above any model's
#: context, and low enough that sums of them stay within a database's 64-bit integers
#: (an hourly rollup adds millions) and a count times a price stays a finite float.
MAX_TOKENS = 10**12
#: The largest amount (dollars, milliseconds) one attempt or report can carry: sums of
#: such amounts stay finite.
MAX_AMOUNT = 1e12


def check_count(name: str, value: object) -> int | None:
    """A token count: an int in [0, :data:`MAX_TOKENS`] (numpy's too, as a plain int) or
    None; a ValueError naming ``name`` and what it accepts otherwise (bools, floats,
    strings refused)."""
    if value is None:
        return None
    n = -1 if isinstance(value, bool) or not isinstance(value, numbers.Integral) else int(value)
    if not 0 <= n <= MAX_TOKENS:
        raise ValueError(f"{name} must be an int in [0, 10**12] or None, got {reprlib.repr(value)}")
    return n


def check_amount(name: str, value: object) -> float | None:
    """An amount (dollars, milliseconds): a finite number in [0, :data:`MAX_AMOUNT`] (as a
    float) or None; a ValueError naming ``name`` and what it accepts otherwise (NaN,
    infinities, bools and numeric strings refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number in [0, 1e12] or None, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond any float
        v = math.inf
    if not (math.isfinite(v) and 0 <= v <= MAX_AMOUNT):
        raise ValueError(
            f"{name} must be a finite number in [0, 1e12] or None, got {reprlib.repr(value)}"
        )
    return v


#: Usage's token fields, checked by :func:`check_count`.
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
#: The longest model name a store holds.
MAX_MODEL_LENGTH = 255


def check_model(name: str, value: object) -> str | None:
    """A model name: a str of at most :data:`MAX_MODEL_LENGTH` characters, or None."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_MODEL_LENGTH):
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} is {len(value)} characters; the limit is {MAX_MODEL_LENGTH}")
    raise ValueError(f"{name} must be a str or None, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What an attempt consumed. Provider paths fill it from the SDK response; any path
    may report its own by returning a :class:`Result` (or raising with ``.usage`` set).

    Checked when built: token counts are ints >= 0 (numpy ints become plain ints),
    ``cost_usd`` a finite number >= 0 (made a float), ``model`` a str; anything else
    (NaN, infinities, negatives, fractional tokens, bools, numeric strings) raises a
    ValueError naming the field. ``None`` is always accepted: unknown, never 0.
    """

    input_tokens: int | None = None
    """Every prompt token, cached or not (OpenAI's ``prompt_tokens``; Anthropic's
    ``input_tokens`` + ``cache_creation_input_tokens`` + ``cache_read_input_tokens``)."""
    output_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    cache_read_tokens: int | None = None
    """Of ``input_tokens``, those served from the provider's prompt cache (cheaper)."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the prompt cache (Anthropic bills these higher)."""

    def __post_init__(self) -> None:
        if not _usage_ok(self):
            for name in TOKEN_FIELDS:
                object.__setattr__(self, name, check_count(f"Usage.{name}", getattr(self, name)))
            object.__setattr__(self, "cost_usd", check_amount("Usage.cost_usd", self.cost_usd))
            check_model("Usage.model", self.model)


def _usage_ok(u: Usage) -> bool:
    """Whether ``u``'s fields are plain valid values (every provider's case): one type
    check per field, unrolled, so building a Usage costs next to nothing."""
    n = u.input_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = u.output_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = u.cache_read_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = u.cache_write_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    c, m = u.cost_usd, u.model
    if c is not None and not (type(c) is float and 0.0 <= c <= MAX_AMOUNT):
        return False
    return m is None or (type(m) is str and len(m) <= MAX_MODEL_LENGTH)


def checked_usage(usage: object) -> Usage | None:
    """``usage`` as a valid :class:`Usage` (None stays None), for what a path reports: a
    ``Usage`` whose fields are valid as it is, one whose checks were skipped (a subclass,
    fields set past ``__post_init__``) checked again field by field. Raises ValueError
    naming the field, or TypeError for anything that is no ``Usage`` (a dict, say)."""
    if usage is None:
        return None
    if not isinstance(usage, Usage):
        raise TypeError(
            f"usage must be an adaptive_router.Usage or None, got {type(usage).__name__}"
        )
    if _usage_ok(usage):
        return usage
    return Usage(**{f: getattr(usage, f) for f in _USAGE_ATTRS})


_USAGE_ATTRS = (*TOKEN_FIELDS, "cost_usd", "model")


@dataclass(frozen=True, slots=True)
class Result:
    """A path's return value plus its usage. The router records the usage and hands
    ``value`` (not the wrapper) to ``success_fn`` and to the caller."""

    value: Any
    usage: Usage = field(default_factory=Usage)
    metadata: dict[str, Any] | None = None
    """Stored on the attempt's outcome (``Outcome.metadata``), e.g. ``{"repairs": 1}``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision from :meth:`Router.choose`.

    ``path`` is the name of the path to call first; ``order`` the full ranking
    (learned paths by sampled θ, then the fallback) to use if it fails.
    """

    request_id: str
    path: str
    order: tuple[str, ...]
    created_at: float


def _interval(alpha: float, beta: float) -> tuple[float, float]:
    from scipy.stats import beta as beta_dist

    lo, hi = beta_dist.ppf([0.025, 0.975], alpha, beta)
    return float(lo), float(hi)


@dataclass(frozen=True, slots=True)
class PositionPosterior:
    """A path's Beta posterior at one position (decay applied): its first attempts, or
    its attempts made after another path of the same request failed.

    ``alpha``/``beta`` are the prior plus the decayed successes/failures; ``n``,
    ``successes`` and ``failures`` are all-time counts of that position's attempts;
    ``updated_at`` is its newest attempt's time (None: none yet).
    """

    alpha: float
    beta: float
    n: int
    successes: int
    failures: int
    updated_at: float | None

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def interval(self) -> tuple[float, float]:
        """Central 95% credible interval."""
        return _interval(self.alpha, self.beta)


#: The after-failure posterior of a path with none yet, under the default prior.
_NO_AFTER_FAILURE = PositionPosterior(1.0, 1.0, 0, 0, 0, None)


@dataclass(frozen=True, slots=True)
class Posterior:
    """A path's current Beta posteriors as the router sees them (decay applied).

    ``alpha``, ``beta``, ``mean``, ``interval``, ``n``, ``successes``, ``failures`` and
    ``updated_at`` are its **first-attempt** evidence: requests whose first executed path
    it was, i.e. every kind of input the task gets. That is what the first choice is ranked
    by, and its mean estimates the path's success rate. ``after_failure`` is the same for
    its attempts made after another path of the request failed: only the inputs that path
    failed on, often the hard ones, so its mean is usually lower and is not the path's
    success rate; the later positions of an order are ranked by it.
    """

    path: str
    alpha: float
    beta: float
    n: int
    successes: int
    failures: int
    traffic_share: float
    """The path's share of recent (decayed) attempts, both positions, fallbacks included."""
    updated_at: float | None
    #: Decayed mean cost (USD) and latency (ms) per attempt (both positions), else the
    #: path's prior (``Path.expected_cost_usd`` / ``expected_latency_ms``), else None.
    expected_cost_usd: float | None = None
    expected_latency_ms: float | None = None
    after_failure: PositionPosterior = _NO_AFTER_FAILURE
    """The posterior of the attempts made after another path of the request failed."""
    spend_penalty: float | None = None
    """Under a spend target: λ·c, what the path's cost per attempt c takes off its drawn
    success probability when paths are ranked by ``θ - λ·c`` (None without a target)."""
    features: tuple[tuple[str, float], ...] = ()
    """A feature router's most influential features for this path: ``(name, weight)`` by
    |posterior mean weight|, largest first (the weight adds to the path's predicted
    success when the feature is 1). A hashed bucket is named by a feature seen in it
    (``"#<index>"`` before one was); empty without features."""

    @property
    def mean(self) -> float:
        """First-attempt posterior mean."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def interval(self) -> tuple[float, float]:
        """Central 95% credible interval of the first-attempt posterior."""
        return _interval(self.alpha, self.beta)

    @property
    def first(self) -> PositionPosterior:
        """The first-attempt posterior as a :class:`PositionPosterior` (the same numbers
        as ``alpha``, ``beta``, ``n``, ...)."""
        return PositionPosterior(
            self.alpha, self.beta, self.n, self.successes, self.failures, self.updated_at
        )


@dataclass(frozen=True, slots=True)
class PathWindowStats:
    """Aggregates of one path's outcomes over a time window."""

    path: str
    attempts: int
    successes: int
    timeouts: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    input_tokens: int | None
    """Summed over the attempts that reported them; None when none did (unknown, not 0)."""
    output_tokens: int | None
    cost_usd: float | None
    first_attempts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    mean_score: float | None = None
    """Mean 0-1 score of scored attempts (routers with ``score_fn``), else None."""
    first_successes: int = 0
    """Of ``first_attempts`` (attempts that were their request's first), the successes."""

    @property
    def success_rate(self) -> float:
        """Successes per attempt, both positions together (NaN without attempts)."""
        return self.successes / self.attempts if self.attempts else math.nan

    @property
    def after_failure_attempts(self) -> int:
        """Attempts made after another path of their request failed."""
        return self.attempts - self.first_attempts

    @property
    def after_failure_successes(self) -> int:
        """Of ``after_failure_attempts``, the successes."""
        return self.successes - self.first_successes

    @property
    def first_success_rate(self) -> float:
        """Successes per first attempt: the path's success rate on the inputs the task
        gets (NaN without first attempts)."""
        return self.first_successes / self.first_attempts if self.first_attempts else math.nan

    @property
    def after_failure_success_rate(self) -> float:
        """Successes per attempt made after another path failed: on the inputs that path
        failed on, not the path's success rate (NaN without such attempts)."""
        n = self.after_failure_attempts
        return self.after_failure_successes / n if n else math.nan
