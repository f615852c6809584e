"""The end-to-end demo: real SDK paths, a provider that degrades, traffic that moves.

Task: extract ``{"quantity", "item", "city"}`` from short order texts such as
``"2x widget to Berlin"``. Three paths:

- ``openai_path("gpt-4o", ...)`` and ``anthropic_path("claude-sonnet-4-6", ...)``,
  the real ``openai`` and ``anthropic`` SDK clients with a pydantic schema, a short
  timeout, jittered retries and a circuit breaker each;
- a regex as the final fallback: it handles the canonical ``"<n>x <item> to <city>"``
  form but not the few free-form orders ("could you ship three gizmo to Oslo please").

By default both models are served by a :class:`~adaptive_router.testing.FakeProvider`
that the demo starts on loopback: seeded, answering with the order the prompt asks for
(Claude in a fenced code block with prose around it), and failing now and then as real
APIs do (429 with Retry-After, 500, 529 overloaded, empty or malformed answers). Halfway
through, GPT-4o degrades: mostly 500s, with hangs past the timeout, dropped connections
and garbage. The router retries, the breaker opens, Thompson Sampling moves the traffic
to Claude — and the live table shows it.

Time for the router (posterior decay, timestamps) and the breakers is simulated, one
second per request, and anchored so the last request happens at the real current time:
afterwards ``adaptive-router posteriors`` and ``stats --since …`` read the demo's SQLite
file as if the traffic had just happened. With a fixed seed a run is reproducible: the
fake draws in request order and every HTTP call finishes far inside its timeout, or
hangs far past it.

``live=True`` calls the real APIs instead (``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY``
must be set; it costs a little money): real clocks, and since the real GPT-4o will not
degrade on cue, from the drop on most of its calls are failed on purpose, before any
request is sent, with a simulated server error.
"""

from typing import TYPE_CHECKING

from adaptive_router._imports import lazy_names

if TYPE_CHECKING:
    from adaptive_router.demo.defaults import (
        DEFAULT_DB,
        DEFAULT_LIVE_REQUESTS,
        DEFAULT_REQUESTS,
        DEFAULT_SEED,
        TASK,
    )
    from adaptive_router.demo.display import print_summary, progress_table, run_with_display
    from adaptive_router.demo.run import run_demo, sqlite_file
    from adaptive_router.demo.scenario import (
        ADAPT_REQUESTS,
        CITIES,
        CLAUDE,
        DEFAULT_HALF_LIFE,
        DEGRADED,
        FAKE_TIMEOUT_S,
        FALLBACK,
        GPT,
        HANG_S,
        ITEMS,
        LIVE_RETRY_INITIAL_S,
        LIVE_TIMEOUT_S,
        LIVE_WINDOW,
        MIN_LIVE_REQUESTS,
        MIN_REQUESTS,
        MODELS,
        NUMBER_WORDS,
        PROMPT,
        RESET_S,
        SHIFT_THRESHOLD,
        SHIFT_WINDOW,
        Order,
        SimulatedModel,
        SimulatedOutage,
        behave,
        is_valid_order,
        make_order,
        parse_lenient,
        parse_strict,
    )
    from adaptive_router.demo.summary import (
        DemoProgress,
        DemoSummary,
        PathProgress,
        PhaseSummary,
        requests_to_shift,
    )

# Each name loads its module on first use: the command line reads the defaults without
# loading the demo (numpy, pydantic, the fake provider, the router, the SDKs).
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "adaptive_router.demo.defaults": (
            "DEFAULT_DB",
            "DEFAULT_LIVE_REQUESTS",
            "DEFAULT_REQUESTS",
            "DEFAULT_SEED",
            "TASK",
        ),
        "adaptive_router.demo.display": ("print_summary", "progress_table", "run_with_display"),
        "adaptive_router.demo.run": ("run_demo", "sqlite_file"),
        "adaptive_router.demo.scenario": (
            "ADAPT_REQUESTS",
            "CITIES",
            "CLAUDE",
            "DEFAULT_HALF_LIFE",
            "DEGRADED",
            "FAKE_TIMEOUT_S",
            "FALLBACK",
            "GPT",
            "HANG_S",
            "ITEMS",
            "LIVE_RETRY_INITIAL_S",
            "LIVE_TIMEOUT_S",
            "LIVE_WINDOW",
            "MIN_LIVE_REQUESTS",
            "MIN_REQUESTS",
            "MODELS",
            "NUMBER_WORDS",
            "PROMPT",
            "RESET_S",
            "SHIFT_THRESHOLD",
            "SHIFT_WINDOW",
            "Order",
            "SimulatedModel",
            "SimulatedOutage",
            "behave",
            "is_valid_order",
            "make_order",
            "parse_lenient",
            "parse_strict",
        ),
        "adaptive_router.demo.summary": (
            "DemoProgress",
            "DemoSummary",
            "PathProgress",
            "PhaseSummary",
            "requests_to_shift",
        ),
    },
)

__all__ = [
    "ADAPT_REQUESTS",
    "CITIES",
    "CLAUDE",
    "DEFAULT_DB",
    "DEFAULT_HALF_LIFE",
    "DEFAULT_LIVE_REQUESTS",
    "DEFAULT_REQUESTS",
    "DEFAULT_SEED",
    "DEGRADED",
    "FAKE_TIMEOUT_S",
    "FALLBACK",
    "GPT",
    "HANG_S",
    "ITEMS",
    "LIVE_RETRY_INITIAL_S",
    "LIVE_TIMEOUT_S",
    "LIVE_WINDOW",
    "MIN_LIVE_REQUESTS",
    "MIN_REQUESTS",
    "MODELS",
    "NUMBER_WORDS",
    "PROMPT",
    "RESET_S",
    "SHIFT_THRESHOLD",
    "SHIFT_WINDOW",
    "TASK",
    "DemoProgress",
    "DemoSummary",
    "Order",
    "PathProgress",
    "PhaseSummary",
    "SimulatedModel",
    "SimulatedOutage",
    "behave",
    "is_valid_order",
    "make_order",
    "parse_lenient",
    "parse_strict",
    "print_summary",
    "progress_table",
    "requests_to_shift",
    "run_demo",
    "run_with_display",
    "sqlite_file",
]
