"""Provider paths with a schema: JSON extracted from the reply, validated, repaired.

`openai_path` and `anthropic_path` call the real SDKs (here against the bundled fake
provider: no API key, no network), pull the JSON out of the model's reply, validate it
with a pydantic schema and report their own tokens and cost. A reply that fails the
schema is the error kind `invalid_output`: evidence against the path, and the next path
is tried. With `repair=True`, an invalid answer gets one follow-up in the same
conversation ("reply with the corrected JSON only") before it counts as a failure.

    python examples/provider_paths.py
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from adaptive_router import Learning, Router
from adaptive_router.providers import anthropic_path, openai_path, repair_counter
from adaptive_router.testing import (
    FakeProvider,
    RecordedRequest,
    Step,
    json_reply,
    malformed_json,
    mix,
)

PROMPT = "Extract the order as JSON with qty, item and city: {text}"
REQUESTS = 200


class Order(BaseModel):
    qty: int
    item: str
    city: str


ORDER = {"qty": 2, "item": "widget", "city": "Berlin"}


def claude_answer(request: RecordedRequest) -> Step:
    """Claude's first answer has a trailing comma (invalid JSON); asked to correct it, it
    answers valid JSON."""
    messages = request.body["messages"]
    if len(messages) > 1:  # the repair follow-up: the first answer and the error came back
        return json_reply(ORDER, fence=None)
    return malformed_json()


def main() -> None:
    with FakeProvider() as fake:
        # GPT-4o: valid JSON in a fenced block 80% of the time, broken JSON otherwise.
        fake.default("gpt-4o", mix((json_reply(ORDER), 4), (malformed_json(), 1), seed=5))
        fake.default("claude-sonnet-4-6", fake.respond(claude_answer))
        gpt = openai_path("gpt-4o", PROMPT, schema=Order, client=fake.openai_client())
        claude = anthropic_path(
            "claude-sonnet-4-6",
            PROMPT,
            schema=Order,
            client=fake.anthropic_client(),
            name="claude",
            repair=True,
        )
        with Router(
            [gpt, claude],
            success_fn=lambda order: isinstance(order, Order),
            task="order-extraction",
            store="memory://",
            learning=Learning(seed=1),
        ) as router:
            results = [router.run("2x widget to Berlin") for _ in range(REQUESTS)]
            stats = {s.path: s for s in router.stats(timedelta(hours=1))}

    print(f"result: {results[-1]!r}")
    print(f"all results are orders: {all(r == Order(**ORDER) for r in results)}")
    for name in ("gpt-4o", "claude"):
        s = stats[name]
        invalid = s.errors.get("invalid_output", 0)
        print(f"{name}: attempts={s.attempts} successes={s.successes} invalid_output={invalid}")
    counter = repair_counter(claude)
    print(f"claude repairs: sent={counter.sent} fixed={counter.fixed}")


if __name__ == "__main__":
    main()
