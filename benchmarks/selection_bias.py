"""Selection bias in the learned evidence when failures correlate across paths.

The README's *Design* figures. Live Routers on ``memory://`` (no final fallback, default
settings, seeds 0-5), in two worlds:

* **identical**: two (or three) identical paths succeed on 90% of ordinary inputs, each
  failing its own tenth of them; every tenth input is impossible for all. Each path's
  true success rate is 0.81.
* **complementary**: A succeeds on 98% of ordinary inputs and no "hard" one (a tenth of
  the inputs), B on 75% of ordinary and every hard one, C on 85% of ordinary and no hard
  one: A is best on average (0.882; B 0.775, C 0.765), B covers A's failures.

Each world runs twice: with the evidence this version keeps (first attempts apart from
attempts after a failure) and with *mixed* evidence (every attempt folded into one
posterior and every position ranked by it, as versions before migration 0009 did;
reproduced by folding every outcome into the first-attempt state and ranking with a
policy that takes no after-failure evidence). Prints markdown tables:

    .venv/bin/python -m benchmarks.selection_bias
"""

from __future__ import annotations

import contextlib
import logging
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import adaptive_router.stores.memory as memory_module
from adaptive_router import AllPathsFailed, Learning, Path, Router, ThompsonSampling
from adaptive_router.policies.thompson import FloatArray, IntArray
from adaptive_router.stores.base import fold_outcome

SEEDS = range(6)
REQUESTS = 2_000


class MixedThompsonSampling(ThompsonSampling):
    """Thompson Sampling that ranks every position by the one posterior it is given."""

    def rank(  # type: ignore[override]
        self, successes: FloatArray, failures: FloatArray, rng: Any
    ) -> IntArray:
        return super().rank(successes, failures, rng)


@contextlib.contextmanager
def mixed_evidence() -> Iterator[None]:
    """Fold every attempt into the first-attempt state: the earlier versions' evidence."""
    # The memory store's module global, swapped through its namespace: the store looks
    # it up at each call, and it is not part of that module's exports.
    namespace = vars(memory_module)
    split = namespace["fold_evidence"]

    def mixed(ev: Any, o: Any, half_life: float | None) -> None:
        fold_outcome(ev.first, o, half_life)

    namespace["fold_evidence"] = mixed
    try:
        yield
    finally:
        namespace["fold_evidence"] = split


def world(
    rates: dict[str, dict[str, float]],
    kind_of: Callable[[int], str],
    requests: int,
    seed: int,
    mixed: bool,
) -> tuple[Router, list[list[str]]]:
    """Route ``requests`` inputs; returns the router and each request's attempted paths."""

    def make(name: str) -> Path:
        draws = random.Random(f"{seed}-{name}")

        def call(i: int) -> bool:
            return draws.random() < rates[name][kind_of(i)]

        return Path(call, name=name, timeout=None, retry=None)

    router = Router(
        [make(n) for n in rates],
        bool,
        "bias",
        store="memory://",
        learning=Learning(seed=seed, policy=MixedThompsonSampling() if mixed else None),
    )
    for i in range(requests):
        with contextlib.suppress(AllPathsFailed):
            router.run(i)
    by_request: dict[str, list[Any]] = {}
    for o in router.store.outcomes("bias"):
        by_request.setdefault(o.request_id, []).append(o)
    orders = [
        [o.path for o in sorted(a, key=lambda o: o.attempt)]
        for a in sorted(by_request.values(), key=lambda a: min(o.created_at for o in a))
    ]
    return router, orders


def identical(names: tuple[str, ...]) -> list[str]:
    rates = {n: {"impossible": 0.0, "ordinary": 0.9} for n in names}

    def kind(i: int) -> str:
        return "impossible" if i % 10 == 0 else "ordinary"

    rows = []
    for label, ctx in (("mixed (before)", mixed_evidence), ("split (now)", contextlib.nullcontext)):
        means: list[float] = []
        least: list[float] = []
        for seed in SEEDS:
            with ctx():
                router, orders = world(rates, kind, REQUESTS, seed, ctx is mixed_evidence)
            shares = Counter(o[0] for o in orders)
            least.append(min(shares[n] for n in names) / REQUESTS)
            means += [p.mean for p in router.posteriors()]
            router.close()
        rows.append(
            f"| {len(names)} identical | {label} | {min(means):.2f}–{max(means):.2f} | "
            f"{statistics.mean(least):.1%} ({min(least):.1%}–{max(least):.1%}) |"
        )
    return rows


def complementary() -> list[str]:
    rates = {
        "A": {"hard": 0.0, "ordinary": 0.98},
        "B": {"hard": 1.0, "ordinary": 0.75},
        "C": {"hard": 0.0, "ordinary": 0.85},
    }

    def kind(i: int) -> str:
        return "hard" if i % 10 == 3 else "ordinary"

    requests, learned = 3_000, 1_000
    rows = []
    for label, ctx in (("mixed (before)", mixed_evidence), ("split (now)", contextlib.nullcontext)):
        a_first: list[float] = []
        b_next = after_fail = 0
        means: dict[str, list[float]] = {n: [] for n in rates}
        for seed in SEEDS:
            with ctx():
                router, orders = world(rates, kind, requests, seed, ctx is mixed_evidence)
            late = orders[learned:]
            a_first.append(sum(o[0] == "A" for o in late) / len(late))
            after_a = [o for o in late if o[0] == "A" and len(o) > 1]
            b_next += sum(o[1] == "B" for o in after_a)
            after_fail += len(after_a)
            for p in router.posteriors():
                means[p.path].append(p.mean)
            router.close()
        shown = ", ".join(f"{n} {statistics.mean(v):.2f}" for n, v in means.items())
        rows.append(
            f"| {label} | {statistics.mean(a_first):.1%} | {b_next / after_fail:.1%} "
            f"({after_fail:,}) | {shown} |"
        )
    return rows


def main() -> None:
    logging.disable(logging.WARNING)  # every fallback is a WARNING line
    seeds = f"seeds {SEEDS.start}-{SEEDS.stop - 1}"
    print(f"Identical paths, true rate 0.81, {REQUESTS:,} requests, {seeds}:\n")
    print(
        "| paths | evidence | posterior means shown (all paths and seeds) | "
        "least-used path's share of first attempts: mean (min–max) |"
    )
    print("|---|---|---|---|")
    for row in identical(("A", "B")) + identical(("A", "B", "C")):
        print(row)
    print(
        "\nComplementary paths (A 0.882, B 0.775 covering A's hard inputs, C 0.765), 3,000 "
        f"requests, {seeds}, measured after the first 1,000:\n"
    )
    print(
        "| evidence | A first | B next after A failed (requests) | "
        "posterior means shown (seed average) |"
    )
    print("|---|---|---|---|")
    for row in complementary():
        print(row)


if __name__ == "__main__":
    main()
