"""A worker process for the multi-process tests: routes, or chooses, or reports.

Run as ``python tests/mp_worker.py MODE URL TASK ...``; prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import threading
import time
from datetime import timedelta

from adaptive_router import AllPathsFailed, Learning, Path, Persistence, Result, Router, Usage


def route(url: str, task: str, seed: int, requests: int, threads: int) -> dict[str, object]:
    rng = random.Random(seed)
    lock = threading.Lock()
    rates = {"a": 0.3, "b": 0.6, "c": 0.8}

    def make(name: str) -> Path:
        def call() -> bool | Result:
            with lock:
                ok = rng.random() < rates[name]
                # Path c reports its cost half the time: unknown costs must not count.
                known = name != "c" or rng.random() < 0.5
                cost = rng.random() * 0.01
            return Result(ok, Usage(cost_usd=cost)) if known else ok

        return Path(call, name=name)

    failed = 0
    with Router(
        [make(n) for n in rates],
        bool,
        task,
        store=url,
        half_life=timedelta(seconds=2),
        learning=Learning(seed=seed),
        persistence=Persistence(durability="batch"),
    ) as router:

        def work(n: int) -> None:
            nonlocal failed
            for i in range(n):
                try:
                    # Two contexts: their path_stats rows must be exact under concurrency too.
                    router.run(context="even" if i % 2 == 0 else "odd")
                except AllPathsFailed:
                    with lock:
                        failed += 1

        # Count attempts where they happen, in the paths, independently of the router.
        counting: dict[str, int] = {n: 0 for n in rates}
        for p in router.paths:
            inner = p.fn

            def counted(fn=inner, name=p.name):  # type: ignore[no-untyped-def]
                with lock:
                    counting[name] += 1
                return fn()

            p.fn = counted
        per_thread = requests // threads
        pool = [threading.Thread(target=work, args=(per_thread,)) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    return {"attempts": counting, "failed_requests": failed, "requests": per_thread * threads}


def crash(url: str, task: str, durability: str) -> None:
    """Route forever, printing the count of completed requests; the parent SIGKILLs us.

    Paced to a few thousand requests per second — a busy server of LLM calls. An unpaced
    loop of no-op paths outruns any writer thread that must share the GIL with it.
    """
    with Router(
        [Path(lambda: True, name="a"), Path(lambda: True, name="b")],
        bool,
        task,
        store=url,
        learning=Learning(seed=3),
        persistence=Persistence(durability=durability, flush_interval=0.2),
    ) as router:
        n = 0
        while True:
            router.run()
            n += 1
            time.sleep(0.0002)
            sys.stdout.write(f"{n}\n")
            sys.stdout.flush()


def rate_limited(url: str, task: str, key: str, requests: int) -> dict[str, int]:
    """Route ``requests`` times; the path shares a Redis-backed 60/minute budget."""
    from adaptive_router.resilience import RateLimit

    calls = {"limited": 0}

    def limited() -> str:
        calls["limited"] += 1
        return "primary"

    limit = RateLimit(requests_per_minute=60, storage="redis://127.0.0.1:6379", key=key)
    with Router(
        [Path(limited, name="limited", rate_limit=limit, timeout=None)],
        bool,
        task,
        store=url,
        fallback=Path(lambda: "fallback", name="fb", timeout=None),
    ) as router:
        served = [router.run() for _ in range(requests)]
    return {"calls": calls["limited"], "fallbacks": served.count("fallback")}


def spend(
    url: str, task: str, seed: int, requests: int, barrier: str, workers: int
) -> dict[str, object]:
    """Route ``requests`` single-attempt requests under a spend target on a clock of its
    own (one second a request), then wait until ``workers`` files ``barrier.*`` exist
    (every worker done), refresh and print the spend status priced at one shared time."""
    import os

    from adaptive_router import Budget, Objective

    rng = random.Random(seed)
    prices = {"dear": (0.9, 0.01), "cheap": (0.6, 0.001)}

    def make(name: str) -> Path:
        p, c = prices[name]
        return Path(lambda: Result(rng.random() < p, Usage(cost_usd=c)), name=name)

    clock = {"t": 1_700_000_000.0 + seed * 0.25}
    with Router(
        [make(n) for n in prices],
        bool,
        task,
        store=url,
        objective=Objective(target_usd_per_request=0.004),
        budget=Budget(max_attempts=1),
        half_life=timedelta(hours=1),
        learning=Learning(seed=seed, clock=lambda: clock["t"]),
        persistence=Persistence(durability="batch", refresh_interval=0.05),
    ) as router:
        for _ in range(requests):
            clock["t"] += 1.0
            with contextlib.suppress(AllPathsFailed):
                router.run()
        router.flush()
        with open(f"{barrier}.{seed}", "w") as fh:
            fh.write("done")
        while (
            sum(
                1
                for f in os.listdir(os.path.dirname(barrier))
                if f.startswith(os.path.basename(barrier) + ".")
            )
            < workers
        ):
            time.sleep(0.02)
        clock["t"] = 1_700_000_000.0 + requests + 100.0
        router.refresh()
        return router.spend().to_dict()


def feature_evidence(url: str, task: str, seed: int, requests: int) -> dict[str, object]:
    """Write ``requests`` requests' outcomes with feature vectors straight to the store,
    in batches of 1 to 40, some batches written twice (a retried commit), times jittered
    so batches arrive out of order across workers."""
    import numpy as np

    from adaptive_router.features import SparseVector, encode_features
    from adaptive_router.outcomes import Outcome
    from adaptive_router.stores.sql import SQLStore

    rng = np.random.default_rng(seed)
    dim = 64
    store = SQLStore(url)
    rows: list[Outcome] = []
    for i in range(requests):
        nnz = int(rng.integers(1, 9))
        idx = np.sort(rng.choice(dim, size=nnz, replace=False))
        x = SparseVector(idx.astype(np.intp), rng.normal(size=nnz))
        at = 1_700_000_000.0 + i * 0.5 + rng.uniform(-20.0, 20.0)
        rid = f"w{seed}-{i}"
        path = f"p{int(rng.integers(0, 3))}"
        ctx = "" if i % 3 == 0 else f"c{i % 2}"
        rows.append(
            Outcome(
                rid,
                task,
                path,
                1,
                bool(rng.random() < 0.6),
                created_at=at,
                context=ctx,
                features=encode_features(x, dim),
                score=None,
            )
        )
        if rng.random() < 0.3:  # a later attempt: Beta evidence only
            rows.append(Outcome(rid, task, "p2", 2, True, created_at=at + 0.1, context=ctx))
    written = 0
    try:
        i = 0
        while i < len(rows):
            n = int(rng.integers(1, 41))
            batch = rows[i : i + n]
            written += store.write(batch, 50.0)
            if rng.random() < 0.2:
                written += store.write(batch, 50.0)  # a retry: nothing new
            i += n
    finally:
        store.close()
    return {"written": written, "rows": len(rows)}


def main() -> None:
    mode, url, task = sys.argv[1:4]
    if mode == "features":
        print(json.dumps(feature_evidence(url, task, int(sys.argv[4]), int(sys.argv[5]))))
        return
    if mode == "spend":
        seed, requests = int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(spend(url, task, seed, requests, sys.argv[6], int(sys.argv[7]))))
        return
    if mode == "route":
        seed, requests, threads = (int(x) for x in sys.argv[4:7])
        print(json.dumps(route(url, task, seed, requests, threads)))
    elif mode == "choose":
        with Router(
            [Path(lambda: None, name="a"), Path(lambda: None, name="b")],
            bool,
            task,
            store=url,
            learning=Learning(seed=1),
        ) as router:
            d = router.choose()
        print(json.dumps({"request_id": d.request_id, "path": d.path}))
    elif mode == "report":
        rid = sys.argv[4]
        with Router(
            [Path(lambda: None, name="a"), Path(lambda: None, name="b")],
            bool,
            task,
            store=url,
            learning=Learning(seed=2),
        ) as router:
            ok = router.report(rid, success=True, latency_ms=5.0)
        print(json.dumps({"recorded": ok}))
    elif mode == "ratelimit":
        print(json.dumps(rate_limited(url, task, sys.argv[4], int(sys.argv[5]))))
    elif mode == "crash":
        crash(url, task, sys.argv[4])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
