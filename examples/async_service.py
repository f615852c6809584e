"""An asyncio service: many requests at once through `await router.arun(...)`.

Provider paths use the SDKs' async clients under `arun`; waits (retries, rate limits)
are asyncio sleeps, so the event loop never blocks. Outcomes go to a SQLite file in the
background (batch durability) and `close()` writes what is left. The models are the
bundled fake provider, answering with some latency: no API key, no network.

    python examples/async_service.py
"""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta

from adaptive_router import AllPathsFailed, Learning, Path, Router
from adaptive_router.providers import anthropic_path, openai_path
from adaptive_router.testing import FakeProvider, error, mix, reply

PROMPT = "Summarise in five words: {text}"
REQUESTS = 120
CONCURRENCY = 20
DB_FILE = pathlib.Path("async_service.db")
DB = f"sqlite:///{DB_FILE}"


async def serve(router: Router, texts: list[str]) -> list[str | None]:
    """Answer every text, at most CONCURRENCY at a time, as a web handler would."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def handle(text: str) -> str | None:
        async with gate:
            try:
                return str(await router.arun(text))
            except AllPathsFailed:
                return None

    return await asyncio.gather(*(handle(t) for t in texts))


def main() -> None:
    for leftover in DB_FILE.parent.glob(DB_FILE.name + "*"):
        leftover.unlink()  # every run starts from nothing
    with FakeProvider() as fake:
        # GPT-4o refuses a quarter of the requests with HTTP 400 (never retried: a client
        # error fails the same way again); both answer after 5-20 ms.
        fake.default(
            "gpt-4o",
            mix(
                (reply("a short summary, five words"), 3),
                (error(400), 1),
                seed=2,
                latency=(0.005, 0.02),
            ),
        )
        fake.default(
            "claude-sonnet-4-6",
            mix((reply("five words, also a summary"), 1), latency=(0.005, 0.02)),
        )
        paths = [
            openai_path(
                "gpt-4o",
                PROMPT,
                async_client=fake.async_openai_client(),
                client=fake.openai_client(),
            ),
            anthropic_path(
                "claude-sonnet-4-6",
                PROMPT,
                name="claude",
                async_client=fake.async_anthropic_client(),
                client=fake.anthropic_client(),
            ),
        ]
        router = Router(
            paths,
            success_fn=bool,
            task="summaries",
            store=DB,
            fallback=Path(lambda text: text[:40], name="truncate", timeout=None, cost_usd=0.0),
            learning=Learning(seed=4),
        )
        texts = [f"request {i}: a long text to summarise" for i in range(REQUESTS)]
        answers = asyncio.run(serve(router, texts))
        router.close()  # writes the outcomes still buffered

    # A fresh router on the same file reads back what was stored.
    with Router(paths, success_fn=bool, task="summaries", store=DB) as reader:
        stats = reader.stats(timedelta(hours=1))
    attempts = sum(s.attempts for s in stats)
    print(f"answered {sum(a is not None for a in answers)} of {REQUESTS} requests")
    for s in sorted(stats, key=lambda s: s.path):
        print(f"{s.path}: attempts={s.attempts} successes={s.successes} errors={s.errors}")
    print(f"stored attempts={attempts} http calls={len(fake.requests)}")


if __name__ == "__main__":
    main()
