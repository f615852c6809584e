"""Log lines at INFO for the README's first example with failing paths.

200 requests through GPT-4o, Claude and the regex fallback, the router's defaults
otherwise (retries sleep for 0 s to keep the run short: the lines are the same), in two
scenarios: GPT-4o answers HTTP 500 every time; and both model paths fail every time (as
when their prompt template does not fit the call), so every request falls back. A third
runs 800 requests with both model paths answering HTTP 500 at random, 10% and 15% of
their calls (seeded), so most failures are retried and succeed. Prints
the number of log records the library emitted, by logger and level, so the figures can
be compared across versions:

    .venv/bin/python -m benchmarks.log_volume
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from adaptive_router import Path, Router
from adaptive_router.resilience import RetryPolicy

REQUESTS = 200


class ServerError(Exception):
    status_code = 500


def extract_gpt4o(text: str) -> dict[str, object] | None:
    raise ServerError("HTTP 500: upstream overloaded")


def extract_claude(text: str) -> dict[str, object] | None:
    return {"qty": 2, "item": "widget", "to": text.rsplit(" ", 1)[-1]}


def extract_claude_failing(text: str) -> dict[str, object] | None:
    raise ServerError("HTTP 500: upstream overloaded")


def extract_regex(text: str) -> dict[str, object]:
    return {"qty": 1}


Extract = Callable[[str], "dict[str, object] | None"]


def flaky(rate: float, rng: random.Random) -> Extract:
    def extract(text: str) -> dict[str, object] | None:
        if rng.random() < rate:
            raise ServerError("HTTP 500: upstream overloaded")
        return extract_claude(text)

    return extract


class Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.name, record.levelname)] += 1


def run(
    claude: Extract, label: str, gpt: Extract = extract_gpt4o, requests: int = REQUESTS
) -> None:
    handler = Count()
    lib = logging.getLogger("adaptive_router")
    lib.addHandler(handler)
    lib.setLevel(logging.INFO)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Router(
            [Path(gpt, name="gpt-4o"), Path(claude, name="claude")],
            lambda order: order is not None and "qty" in order,
            "order-extraction",
            store=f"sqlite:///{tmp}/adaptive_router.db",
            fallback=Path(extract_regex, name="regex"),
            half_life=timedelta(minutes=10),
            retry=RetryPolicy(sleep=lambda _s: None),
            seed=1,
        ) as router,
    ):
        for _ in range(requests):
            router.run("2x widget to Berlin")
    lib.removeHandler(handler)
    total = sum(handler.counts.values())
    print(f"{label}, {requests} requests: {total} log records at INFO and above")
    for (name, level), n in sorted(handler.counts.items()):
        print(f"  {n:5d}  {level:8s} {name}")


def main() -> None:
    run(extract_claude, "GPT-4o failing")
    run(extract_claude_failing, "GPT-4o and Claude failing")
    rng = random.Random(11)
    run(flaky(0.15, rng), "10-15% server errors", flaky(0.10, rng), 800)


if __name__ == "__main__":
    main()
