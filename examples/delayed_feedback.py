"""Two-phase routing: choose a path now, report whether it worked later.

A support tool drafts replies; whether a draft was good is known only when an agent
sends or rewrites it, minutes later. `router.choose()` picks the path and stores the
pending decision; the application calls the model itself; `router.report(request_id,
...)` records the verdict with the call's tokens (priced at the decision's model), from
this process or, through a `Reporter`, from another one. A second report of the same
decision is ignored, an unknown id raises `UnknownRequestError`, and decisions never
reported within `pending_ttl` count as failures of kind `expired`. The clock is
injected, so "minutes later" takes no time. The models are the bundled fake provider.

    python examples/delayed_feedback.py
"""

from __future__ import annotations

import pathlib
import random
from datetime import timedelta

import anthropic
import openai

from adaptive_router import Learning, Path, Persistence, Reporter, Router, UnknownRequestError
from adaptive_router.testing import FakeProvider, reply

DB_FILE = pathlib.Path("delayed_feedback.db")
TASK = "reply-drafts"
# How often agents send each model's draft unchanged (the verdict the router learns).
ACCEPTED = {"gpt-4o": 0.8, "claude": 0.5}
DECISIONS, BY_REPORTER, NEVER_REPORTED = 60, 5, 5


class Clock:
    """Epoch seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()


def main() -> None:
    for leftover in DB_FILE.parent.glob(DB_FILE.name + "*"):
        leftover.unlink()  # every run starts from nothing
    clock, verdicts = Clock(), random.Random(0)
    with FakeProvider() as fake:
        fake.default("gpt-4o", reply("Thanks, refunded.", input_tokens=300, output_tokens=80))
        fake.default("claude-sonnet-4-6", reply("Refund sent!", input_tokens=300, output_tokens=60))
        gpt = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-fake", max_retries=0)
        claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-fake")

        def draft(path: str, ticket: str) -> tuple[str, int, int]:
            """The application calls the chosen model itself: the draft and its tokens."""
            messages = [{"role": "user", "content": f"Draft a reply to: {ticket}"}]
            if path == "gpt-4o":
                chat = gpt.chat.completions.create(model="gpt-4o", messages=messages)
                usage = chat.usage
                return (
                    chat.choices[0].message.content or "",
                    usage.prompt_tokens,
                    usage.completion_tokens,
                )
            msg = claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=200, messages=messages
            )
            return msg.content[0].text, msg.usage.input_tokens, msg.usage.output_tokens

        # choose() never calls the paths: they name the options (and their models, which
        # price the reported tokens).
        options = [
            Path(lambda: None, name="gpt-4o", model="gpt-4o"),
            Path(lambda: None, name="claude", model="claude-sonnet-4-6"),
        ]
        with Router(
            options,
            success_fn=bool,
            task=TASK,
            store=f"sqlite:///{DB_FILE}",
            learning=Learning(clock=clock, seed=0),
            persistence=Persistence(pending_ttl=timedelta(minutes=30)),
        ) as router:
            pending = []
            for i in range(DECISIONS):
                decision = router.choose()
                _draft, tokens_in, tokens_out = draft(decision.path, f"ticket {i}: refund please")
                accepted = verdicts.random() < ACCEPTED[decision.path]
                pending.append((decision, accepted, tokens_in, tokens_out))

            clock.advance(timedelta(minutes=5))  # the agents act on the drafts
            by_router = pending[: DECISIONS - BY_REPORTER - NEVER_REPORTED]
            recorded = sum(
                router.report(d.request_id, success=ok, input_tokens=i, output_tokens=o)
                for d, ok, i, o in by_router
            )
            first = by_router[0][0]
            again = router.report(first.request_id, success=True)  # a duplicate: ignored

            # Another process learns the rest of the verdicts: a Reporter needs no paths.
            reporter = Reporter(task=TASK, store=f"sqlite:///{DB_FILE}", clock=clock)
            from_reporter = sum(
                reporter.report(d.request_id, success=ok, input_tokens=i, output_tokens=o)
                for d, ok, i, o in pending[len(by_router) : len(by_router) + BY_REPORTER]
            )
            reporter.close()
            try:
                router.report("no-such-request", success=True)
            except UnknownRequestError:
                unknown = "UnknownRequestError"

            # Half an hour on, the last decisions were never reported: the next choose()
            # expires them as failures.
            clock.advance(timedelta(minutes=31))
            late = router.choose()
            router.report(late.request_id, success=True)
            router.refresh()  # read back what the Reporter wrote
            stats = {s.path: s for s in router.stats(timedelta(hours=2))}
            costs = router.costs(timedelta(hours=2))

    print(f"decisions: {DECISIONS + 1}")
    print(f"reported by the router: {recorded}; duplicate recorded: {again}")
    print(f"reported by a Reporter: {from_reporter}")
    print(f"unknown id: {unknown}")
    expired = sum(s.errors.get("expired", 0) for s in stats.values())
    print(f"expired: {expired}")
    for name in ("gpt-4o", "claude"):
        s = stats.get(name)
        if s is not None:
            print(f"{name}: outcomes={s.attempts} successes={s.successes}")
    print(
        f"outcomes stored: {sum(s.attempts for s in stats.values())}; cost_usd={costs.cost_usd:.6f}"
    )


if __name__ == "__main__":
    main()
