"""Plain functions calling the openai and anthropic SDKs, with their usage metered.

Two paths are ordinary functions that call a model and parse its JSON; nothing in them
reports tokens or cost. The router meters every SDK call an attempt makes (tokens, the
model it was priced at, cost) and stores it with the attempt's outcome, so `costs()` and
`stats()` show what each path spent. The models are the bundled fake provider: no API
key, no network.

    python examples/plain_functions.py
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import anthropic
import openai

from adaptive_router import Learning, Path, Router
from adaptive_router.testing import FakeProvider, mix, reply

ORDER = '{"qty": 2, "item": "widget", "city": "Berlin"}'
REQUESTS = 300
# Each reply's token usage, as the fake provider reports it to the SDKs.
INPUT_TOKENS, OUTPUT_TOKENS = 40, 20


def main() -> None:
    with FakeProvider() as fake:
        # GPT-4o answers prose instead of JSON on a third of the requests; Claude always
        # answers. Every reply reports the same token counts, so the bill is easy to check.
        good = reply(ORDER, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS)
        prose = reply("Sure, which order?", input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS)
        fake.default("gpt-4o", mix((good, 2), (prose, 1), seed=3))
        fake.default("claude-sonnet-4-6", good)
        gpt = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
        claude = anthropic.Anthropic(
            base_url=fake.anthropic_base_url, api_key="sk-fake", max_retries=0
        )

        def messages(text: str) -> list[dict[str, str]]:
            return [{"role": "user", "content": f"The order as JSON (qty, item, city): {text}"}]

        def extract_gpt4o(text: str) -> dict[str, object]:
            answer = gpt.chat.completions.create(model="gpt-4o", messages=messages(text))
            return json.loads(answer.choices[0].message.content or "")

        def extract_claude(text: str) -> dict[str, object]:
            answer = claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=100, messages=messages(text)
            )
            return json.loads(answer.content[0].text)

        def extract_regex(text: str) -> dict[str, object] | None:
            m = re.fullmatch(r"(\d+)x (.+) to (\w+)", text)
            return {"qty": int(m[1]), "item": m[2], "city": m[3]} if m else None

        with Router(
            [Path(extract_gpt4o, name="gpt-4o"), Path(extract_claude, name="claude")],
            success_fn=lambda order: order is not None and "qty" in order,
            task="order-extraction",
            store="memory://",
            # A regex costs nothing: declared, so the cost report is complete.
            fallback=Path(extract_regex, name="regex", timeout=None, cost_usd=0.0),
            learning=Learning(seed=0),
        ) as router:
            for _ in range(REQUESTS):
                router.run("2x widget to Berlin")
            stats = {s.path: s for s in router.stats(timedelta(hours=1))}
            costs = router.costs(timedelta(hours=1))

        print(f"requests: {costs.requests}")
        for name in ("gpt-4o", "claude"):
            s = stats[name]
            print(
                f"{name}: attempts={s.attempts} successes={s.successes} "
                f"input_tokens={s.input_tokens} output_tokens={s.output_tokens} "
                f"cost_usd={s.cost_usd:.6f}"
            )
        print(f"total cost_usd={costs.cost_usd:.6f} complete={costs.unknown_cost_attempts == 0}")
        print(f"http calls: gpt-4o={fake.calls('gpt-4o')} claude={fake.calls('claude-sonnet-4-6')}")


if __name__ == "__main__":
    main()
