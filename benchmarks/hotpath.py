"""The hot path: what a provider path and a call timeout add to one ``Router.run``.

Three comparisons, each made of *pairs* timed back to back in one loop (the order inside
a pair alternates), so a slow phase of this shared machine slows both sides of a pair;
each figure is the median of the paired differences, and the best of ``ROUNDS`` rounds
is reported (every round in the note).

(a) ``openai_path`` against a plain function that makes the same SDK call — the same
    ``openai.OpenAI`` client (``with_options(timeout=30, max_retries=0)``, as the path
    configures it), the same request (the template formatted into one user message), the
    reply text returned — both through ``Router.run`` with ``timeout=None``. The client
    talks to a ``MockTransport`` (httpx2's: openai 3 is built on it) that answers a fixed
    completion in-process: no socket, so the figure is the router's and the path's code,
    not the loopback's jitter.
    The path also reads the token usage, prices it and records it; the plain function
    cannot (nothing to read it from), and that work is what the comparison measures.
(b) a no-op sync path with the default timeout (30 s: the call runs on a worker thread
    so the timeout can be enforced) against the same path with ``timeout=None``, beside
    a bare thread hand-off (a ``SimpleQueue`` to a worker and a ``Lock`` back) — the
    floor any enforceable timeout pays.
(c) the ``timeout=None`` overhead (run minus calling the no-op directly, three paths,
    memory store: the ``overhead`` section's setup) of this code against the code *before*
    the architecture change (commit ``BEFORE_COMMIT``, whose run gave the README's 31.6 µs),
    measured in the same run: the old package is extracted from git history into a
    temporary directory and both are timed in child processes, alternating, ``ROUNDS``
    times each (best round reported). An absolute figure from another day and machine
    would compare the machines; this compares the code. Without git history (a shallow
    clone, an sdist) the row says so and is not judged. The judged row runs this code with
    ``log_decisions=False``, the same work as the code before (which logged no decisions);
    an information row beside it runs the default configuration, so what decision logging
    costs per request shows in the same run.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from adaptive_router import Learning, Path, Resilience, Router
from benchmarks.common import (
    PATH_NAMES,
    HandOff,
    Result,
    always_ok,
    fmt_us,
    noop,
    paired,
    quiet_library_logs,
)

SECTION = "hotpath"
ROUNDS = 3
#: The last commit before the architecture change; its run of the ``overhead`` section
#: gave the README's ``run overhead, memory`` = 31.6 µs (2026-11-26).
BEFORE_COMMIT = "cc82048"
#: Allowed slowdown of the ``timeout=None`` overhead against the code before the change.
BEFORE_SLACK = 1.05
PROVIDER_TARGET_US = 15.0
TIMEOUT_SLACK_US = 15.0

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello there", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
).encode()


def mock_client() -> Any:
    """An ``openai.OpenAI`` whose HTTP client answers every request in-process."""
    import openai

    try:  # the HTTP library the installed openai SDK is built on (httpx2 from openai 3)
        import httpx2 as http
    except ImportError:  # pragma: no cover - older SDKs use httpx
        import httpx as http  # type: ignore[no-redef]

    def answer(request: Any) -> Any:
        return http.Response(200, content=_COMPLETION, headers={"content-type": "application/json"})

    client = openai.DefaultHttpxClient(transport=http.MockTransport(answer))
    return openai.OpenAI(
        api_key="bench-key", base_url="http://bench.invalid/v1", http_client=client
    )


def _med_us(x: np.ndarray) -> float:
    return float(np.median(x)) / 1000.0


def _best(rounds: list[float]) -> tuple[float, str]:
    return min(rounds), ", ".join(fmt_us(v) for v in rounds)


def _routers_a() -> tuple[Router, Router, Callable[[], Any]]:
    from adaptive_router.providers import openai_path

    client = mock_client()
    sdk = client.with_options(timeout=30.0, max_retries=0)
    template = "Say hello to {text}"

    def plain(text: str) -> str | None:
        reply = sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": template.format(text=text)}]
        )
        content: str | None = reply.choices[0].message.content
        return content

    provider = Router(
        [openai_path("gpt-4o", template, client=client)],
        always_ok,
        task="bench-provider",
        store="memory://",
        learning=Learning(seed=1),
        resilience=Resilience(timeout=None),
    )
    direct = Router(
        [Path(plain, name="plain", timeout=None)],
        always_ok,
        task="bench-plain",
        store="memory://",
        learning=Learning(seed=1),
        resilience=Resilience(timeout=None),
    )
    return provider, direct, lambda: plain("bench")


def _routers_bc() -> tuple[Router, Router]:
    with_timeout = Router(
        [Path(noop, name=n) for n in PATH_NAMES],
        always_ok,
        task="bench-timeout",
        store="memory://",
        learning=Learning(seed=2),
    )
    without = Router(
        [Path(noop, name=n, timeout=None) for n in PATH_NAMES],
        always_ok,
        task="bench-no-timeout",
        store="memory://",
        learning=Learning(seed=3),
    )
    return with_timeout, without


#: Run by a child process as ``python -c CHILD ROOT N``: imports ``adaptive_router`` from
#: ``ROOT`` and prints the median of (``run()`` − the bare no-op) over ``N`` interleaved
#: pairs, in µs. Only the API both versions share (``Path(timeout=None)``, a memory store).
CHILD = """
import json, logging, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from adaptive_router import Path, Router
logging.disable(logging.CRITICAL)
def noop():
    return True
extra = json.loads(sys.argv[3])  # Persistence options (log_decisions)
try:
    from adaptive_router import Learning, Persistence
except ImportError:  # the code from before the option groups
    kw = {"seed": 3, **extra}
else:
    kw = {"learning": Learning(seed=3), "persistence": Persistence(**extra)}
router = Router([Path(noop, name=n, timeout=None) for n in ("p0", "p1", "p2")],
                lambda r: True, task="bench-before", store="memory://", **kw)
n = int(sys.argv[2])
for _ in range(n // 10):
    router.run()
pc = time.perf_counter_ns
diff = np.empty(n, dtype=np.int64)
for i in range(n):
    t0 = pc(); router.run(); t1 = pc(); noop(); t2 = pc()
    diff[i] = (t1 - t0) - (t2 - t1)
router.close()
print(float(np.median(diff)) / 1000.0)
"""


def _extract_before(into: pathlib.Path) -> pathlib.Path | None:
    """The ``adaptive_router`` package of ``BEFORE_COMMIT`` under ``into``, or None
    without the git history to take it from."""
    repo = pathlib.Path(__file__).resolve().parent.parent
    try:
        tar = subprocess.run(
            ["git", "-C", str(repo), "archive", BEFORE_COMMIT, "adaptive_router"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return into


def _child_overhead(root: pathlib.Path, n: int, **router_kw: Any) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(n), json.dumps(router_kw)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,  # the default store path of either version must not touch the checkout
    )
    return float(out.stdout.strip().splitlines()[-1])


def before_and_after(n: int) -> tuple[list[float], list[float], list[float]] | None:
    """``(before, now, now_default)``: the ``timeout=None`` overhead of the code at
    ``BEFORE_COMMIT`` and of this checkout doing the same work (no decision logging, which
    the code before did not have), and of this checkout as configured by default;
    ``ROUNDS`` child runs each, alternating; None without history."""
    here = pathlib.Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="ar-before-") as tmp:
        old = _extract_before(pathlib.Path(tmp))
        if old is None:
            return None
        before: list[float] = []
        now: list[float] = []
        now_default: list[float] = []
        for _ in range(ROUNDS):
            before.append(_child_overhead(old, n))
            now.append(_child_overhead(here, n, log_decisions=False))
            now_default.append(_child_overhead(here, n))
    return before, now, now_default


def run(quick: bool = False) -> list[Result]:
    """Rows (a), (b), (c) with absolute numbers, pass/fail against the issue's targets."""
    quiet_library_logs()
    n_a, n_b = (1_000, 2_000) if quick else (6_000, 20_000)
    provider, direct, sdk_call = _routers_a()
    with_timeout, without = _routers_bc()
    hand_off = HandOff()
    a_diff: list[float] = []
    a_abs: list[tuple[float, float, float]] = []
    b_rows: list[tuple[float, float, float, float]] = []
    try:
        for _ in range(ROUNDS):
            t = paired(
                [
                    lambda: provider.run(text="bench"),
                    lambda: direct.run(text="bench"),
                    sdk_call,
                ],
                n_a,
                max(n_a // 10, 100),
            )
            a_diff.append(_med_us(t[:, 0] - t[:, 1]))
            a_abs.append((_med_us(t[:, 0]), _med_us(t[:, 1]), _med_us(t[:, 2])))
            t = paired(
                [noop, with_timeout.run, without.run, lambda: hand_off(noop)],
                n_b,
                max(n_b // 10, 100),
            )
            b_rows.append(
                (
                    _med_us(t[:, 1] - t[:, 0]),  # default timeout overhead
                    _med_us(t[:, 2] - t[:, 0]),  # timeout=None overhead
                    _med_us(t[:, 3] - t[:, 0]),  # bare hand-off
                    _med_us(t[:, 0]),  # the no-op itself
                )
            )
    finally:
        for r in (provider, direct, with_timeout, without):
            r.close()

    results: list[Result] = []
    best_a, notes_a = _best(a_diff)
    i = a_diff.index(best_a)
    prov_us, plain_us, sdk_us = a_abs[i]
    results.append(
        Result(
            SECTION,
            "provider path − plain function, same SDK call, run(timeout=None)",
            f"≤ {fmt_us(PROVIDER_TARGET_US)}",
            f"{fmt_us(best_a)} (provider {fmt_us(prov_us)}, plain {fmt_us(plain_us)}, "
            f"SDK call alone {fmt_us(sdk_us)})",
            best_a <= PROVIDER_TARGET_US,
            f"{n_a:,} pairs; MockTransport; median of paired differences, best of "
            f"{ROUNDS} rounds ({notes_a})",
        )
    )
    default_ov = min(r[0] for r in b_rows)
    none_ov = min(r[1] for r in b_rows)
    floor = min(r[2] for r in b_rows)
    limit = none_ov + floor + TIMEOUT_SLACK_US
    results.append(
        Result(
            SECTION,
            "no-op sync path, default timeout (30 s): overhead",
            "≤ timeout=None overhead + hand-off + 15 µs",
            f"{fmt_us(default_ov)} (limit {fmt_us(limit)} = {fmt_us(none_ov)} + "
            f"{fmt_us(floor)} + {fmt_us(TIMEOUT_SLACK_US)})",
            default_ov <= limit,
            f"{n_b:,} calls each, interleaved; best of {ROUNDS} rounds "
            f"({', '.join(fmt_us(r[0]) for r in b_rows)})",
        )
    )
    results.append(
        Result(
            SECTION,
            "bare thread hand-off (SimpleQueue + Lock) − direct call",
            "—",
            fmt_us(floor),
            None,
            f"best of {ROUNDS} rounds ({', '.join(fmt_us(r[2]) for r in b_rows)}); "
            f"direct no-op {fmt_us(min(r[3] for r in b_rows))}",
        )
    )
    compared = before_and_after(n_b)
    if compared is None:
        results.append(
            Result(
                SECTION,
                "run overhead, timeout=None, memory store, 3 no-op paths: now vs before",
                f"≤ before × {BEFORE_SLACK}",
                f"{fmt_us(none_ov)} now; before not measured",
                None,
                f"no git history to extract commit {BEFORE_COMMIT} from (shallow clone?)",
            )
        )
        return results
    before, now, now_default = compared
    b_best, n_best, d_best = min(before), min(now), min(now_default)
    results.append(
        Result(
            SECTION,
            "run overhead, timeout=None, memory store, 3 no-op paths: now vs before, "
            "same work (log_decisions=False)",
            f"≤ before × {BEFORE_SLACK}",
            f"{fmt_us(n_best)} now, {fmt_us(b_best)} before ({BEFORE_COMMIT}): "
            f"{(n_best / b_best - 1) * 100:+.1f}%",
            n_best <= b_best * BEFORE_SLACK,
            f"{n_b:,} pairs per child process, both versions in this run, alternating; best "
            f"of {ROUNDS} rounds (now {', '.join(fmt_us(v) for v in now)}; before "
            f"{', '.join(fmt_us(v) for v in before)})",
        )
    )
    results.append(
        Result(
            SECTION,
            "run overhead, timeout=None, memory store, 3 no-op paths: default "
            "(decision logging on) vs before",
            "—",
            f"{fmt_us(d_best)} now, {fmt_us(b_best)} before: {(d_best / b_best - 1) * 100:+.1f}%",
            None,
            "the same child runs, alternating with the two above; what logging each routed "
            f"decision's evidence adds (best of {ROUNDS}: "
            f"{', '.join(fmt_us(v) for v in now_default)})",
        )
    )
    return results


if __name__ == "__main__":
    for row in run():
        print(f"[{row.verdict}] {row.measure}: {row.value}  (target {row.target}; {row.note})")
