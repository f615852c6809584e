"""The demo's world: the task, its orders and parsers, the simulated models and how the
fake provider answers for them (healthy, then degraded)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from adaptive_router.demo.defaults import DEFAULT_DB as DEFAULT_DB
from adaptive_router.demo.defaults import DEFAULT_LIVE_REQUESTS as DEFAULT_LIVE_REQUESTS
from adaptive_router.demo.defaults import DEFAULT_REQUESTS as DEFAULT_REQUESTS
from adaptive_router.demo.defaults import DEFAULT_SEED as DEFAULT_SEED
from adaptive_router.demo.defaults import TASK as TASK
from adaptive_router.outcomes import ErrorKind
from adaptive_router.testing import (
    FakeProvider,
    RecordedRequest,
    Step,
    delay,
    disconnect,
    empty,
    error,
    json_reply,
    malformed_json,
    reply,
    respond,
)

logger = logging.getLogger(__name__)

DEFAULT_HALF_LIFE = timedelta(minutes=2)
GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
#: The path whose provider degrades halfway through.
DEGRADED = GPT
FALLBACK = "regex"
#: Requests in the trailing window of the live table.
LIVE_WINDOW = 100
#: The degraded path counts as abandoned once it gets under this share of first attempts
#: over a window of this many requests.
SHIFT_THRESHOLD = 0.10
SHIFT_WINDOW = 50
#: Requests right after the drop reported as their own phase ("adapting").
ADAPT_REQUESTS = 150
MIN_REQUESTS = 2 * ADAPT_REQUESTS
MIN_LIVE_REQUESTS = 20
#: Per-call timeout of the model paths against the fake (a healthy call takes ~2 ms).
FAKE_TIMEOUT_S = 0.2
LIVE_TIMEOUT_S = 20.0
#: First retry wait bound with --live (real APIs want real back-off; tests shorten it).
LIVE_RETRY_INITIAL_S = 0.5
#: What a hang lasts on the fake: far past the timeout, so it always times out.
HANG_S = 30.0
#: Seconds (simulated: requests) an open breaker waits before letting a probe through.
RESET_S = 60.0

PROMPT = (
    "Extract the order from the text below as a JSON object with the fields "
    "quantity (an integer), item and city. Answer with the JSON only.\n\nOrder: {text}"
)


class Order(BaseModel):
    """What the model paths must return (validated from their JSON)."""

    quantity: int = Field(gt=0)
    item: str = Field(min_length=1)
    city: str = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    """A fake model's per-call success rate before and after the drop."""

    name: str
    before: float
    after: float

    def rate(self, degraded: bool) -> float:
        """Probability that one HTTP call answers with the right order."""
        return self.after if degraded else self.before


MODELS = (
    SimulatedModel(GPT, 0.97, 0.10),
    SimulatedModel(CLAUDE, 0.92, 0.92),
)

ITEMS = ("widget", "gadget", "sprocket", "gizmo", "flange", "bolt pack", "hex key")
CITIES = ("Berlin", "Paris", "Lisbon", "Oslo", "Madrid", "Vienna", "Dublin", "Prague")
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_FREE_FORM = (
    "could you ship {word} {item} to {city} please",
    "{word} {item} for {city}, thanks",
)
_STRICT = re.compile(r"^\s*(\d+)\s*x\s+(.+?)\s+to\s+([A-Z][\w-]*)\s*$")
_LENIENT = re.compile(
    r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")\s*(?:x\s+|\s+)(.+?)\s+(?:to|for)\s+([A-Z][\w-]*)",
    re.IGNORECASE,
)


class SimulatedOutage(RuntimeError):
    """``--live`` only: a GPT-4o call failed on purpose after the drop (no request sent)."""

    kind = ErrorKind.SERVER_ERROR


def make_order(rng: np.random.Generator, free_form: float) -> str:
    """A random order text: mostly ``"<n>x <item> to <city>"``, sometimes free-form."""
    qty = int(rng.integers(1, 11))
    item = ITEMS[int(rng.integers(len(ITEMS)))]
    city = CITIES[int(rng.integers(len(CITIES)))]
    if rng.random() < free_form:
        word = list(NUMBER_WORDS)[qty - 1]
        template = _FREE_FORM[int(rng.integers(len(_FREE_FORM)))]
        return template.format(word=word, item=item, city=city)
    return f"{qty}x {item} to {city}"


def parse_strict(text: str) -> dict[str, Any] | None:
    """The regex fallback: only the canonical ``"<n>x <item> to <city>"`` form."""
    m = _STRICT.match(text)
    if m is None:
        return None
    return {"quantity": int(m.group(1)), "item": m.group(2), "city": m.group(3)}


def parse_lenient(text: str) -> dict[str, Any] | None:
    """What a model manages when it works: number words and "for <city>" too."""
    m = _LENIENT.search(text)
    if m is None:
        return None
    raw = m.group(1).lower()
    qty = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
    return {"quantity": qty, "item": m.group(2), "city": m.group(3)}


def is_valid_order(result: Any) -> bool:
    """The task's success function: an :class:`Order`, or a dict with a positive int
    quantity, an item and a city."""
    if isinstance(result, Order):
        return True  # validated by the schema already
    if not isinstance(result, dict):
        return False
    qty = result.get("quantity")
    return (
        isinstance(qty, int)
        and not isinstance(qty, bool)
        and qty > 0
        and bool(result.get("item"))
        and bool(result.get("city"))
    )


# -- the fake provider's behaviour ----------------------------------------------------------


def _answer(*, fenced: bool, input_tokens: int) -> Step:
    """A model that works: the order the prompt asks for, as JSON."""

    def answer(request: RecordedRequest) -> Step:
        text = request.prompt.rsplit("Order:", 1)[-1].strip()
        order = parse_lenient(text)
        out_tokens = 18 + len(text) // 8
        if order is None:
            return reply("I could not find an order in that text.", input_tokens=input_tokens)
        return json_reply(
            order,
            fence="json" if fenced else None,
            prose="Here is the order:",
            input_tokens=input_tokens,
            output_tokens=out_tokens,
        )

    return respond(answer)


def behave(fake: FakeProvider, model: SimulatedModel, *, degraded: bool, seed: int) -> None:
    failure: list[Step | tuple[Step, float]]
    if model.name == GPT:
        success = _answer(fenced=False, input_tokens=62)
        if degraded:
            failure = [
                (error(500), 4.0),
                (error(503), 1.0),
                (delay(HANG_S), 0.5),
                (disconnect(), 1.0),
                (malformed_json('{"quantity": 2, "item": "widget", "city": '), 1.0),
            ]
        else:
            failure = [(error(429, retry_after=0.01), 2.0), (error(500), 1.0), malformed_json()]
    else:
        success = _answer(fenced=True, input_tokens=71)
        failure = [(error(529), 2.0), (empty(input_tokens=71), 1.0), reply("Sorry, no.")]
    fake.behave(
        model.name,
        model.rate(degraded),
        seed=seed,
        success=success,
        failure=failure,
    )
