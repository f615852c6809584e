"""Rank by expected cost to a success, and cap what one request may spend.

GPT-4o always gets the order right; GPT-4o-mini gets it right 70% of the time at a
sixteenth of the price (a wrong answer fails the schema: `invalid_output`). By default
the router ranks by the chance of success, so GPT-4o goes first. With `objective="cost"`
it ranks by expected dollars to a success (cost / θ): the mini goes first and GPT-4o
catches its failures. `max_cost_usd` then skips any path
expected to cost more than the request has left: GPT-4o is never called, and the regex
fallback catches the mini's failures. Before anything is measured, each provider path's
cost prior is its model's price for `expected_tokens`. The models are the bundled fake
provider (priced at genai-prices' rates for the real models).

    python examples/cost_objective.py
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, Field

from adaptive_router import Budget, Learning, Path, Router
from adaptive_router.providers import openai_path
from adaptive_router.testing import FakeProvider, mix, reply

PROMPT = "Extract the order as JSON with qty, item and city: {text}"
REQUESTS = 400
TOKENS = (1200, 300)  # (input, output) per call: what the fake reports, and the prior
GOOD = '{"qty": 2, "item": "widget", "city": "Berlin"}'
WRONG = '{"qty": 0, "item": "", "city": ""}'


class Order(BaseModel):
    qty: int = Field(gt=0)
    item: str = Field(min_length=1)
    city: str = Field(min_length=1)


def regex(text: str) -> Order | None:
    m = re.fullmatch(r"(\d+)x (.+) to (\w+)", text)
    return Order(qty=int(m[1]), item=m[2], city=m[3]) if m else None


def run(
    fake: FakeProvider, label: str, objective: str = "success", budget: Budget | None = None
) -> None:
    """Route REQUESTS requests with a fresh router and print what they cost."""
    good = reply(GOOD, input_tokens=TOKENS[0], output_tokens=TOKENS[1])
    wrong = reply(WRONG, input_tokens=TOKENS[0], output_tokens=TOKENS[1])
    fake.default("gpt-4o", good)
    fake.default("gpt-4o-mini", mix((good, 7), (wrong, 3), seed=11))
    client = fake.openai_client()
    paths = [
        openai_path(model, PROMPT, schema=Order, client=client, expected_tokens=TOKENS)
        for model in ("gpt-4o", "gpt-4o-mini")
    ]
    with Router(
        paths,
        success_fn=lambda order: order is not None,
        task=f"orders-{label}",
        store="memory://",
        fallback=Path(regex, name="regex", timeout=None, cost_usd=0.0),
        objective=objective,
        budget=budget,
        learning=Learning(seed=3),
    ) as router:
        if label == "success":  # before any data: each path's price for TOKENS
            for p in router.posteriors():
                print(f"prior {p.path}: expected_cost_usd={p.expected_cost_usd:.5f}")
        for _ in range(REQUESTS):
            router.run("2x widget to Berlin")
        stats = {s.path: s for s in router.stats(timedelta(hours=1))}
        costs = router.costs(timedelta(hours=1))
    print(f"[{label}] usd_per_1000={1000 * costs.cost_usd / costs.requests:.3f}")
    for name in ("gpt-4o", "gpt-4o-mini", "regex"):
        s = stats.get(name)
        first, attempts, ok = (s.first_attempts, s.attempts, s.successes) if s else (0, 0, 0)
        print(f"[{label}] {name}: first_attempts={first} attempts={attempts} successes={ok}")


def main() -> None:
    with FakeProvider() as fake:
        run(fake, "success")  # the default objective
        run(fake, "cost", objective="cost")
        run(fake, "budget", objective="cost", budget=Budget(max_cost_usd=0.005))


if __name__ == "__main__":
    main()
