"""What usage capture (:mod:`adaptive_router.metering.capture`) adds to an SDK call and a
streamed chunk.

The real ``openai`` and ``anthropic`` clients talk to an ``httpx.MockTransport`` that
answers from prepared bytes, so the figures are the SDK's own work plus capture's, with
no network or server thread. Three modes, visited in turn in every round (interleaved in
one run, so the machine's slow phases hit them alike):

* ``off``: the SDK's own ``request`` (taken from under capture's wrapper);
* ``idle``: installed, the call made outside any scope (what every other caller pays);
* ``metered``: installed, inside ``capture.scope()``.

Within a round the modes alternate call by call; the figure is the median over rounds of
each round's median paired difference (mode minus the adjacent ``off`` call).
Streams: a chat stream of
``CHUNKS`` chunks read to the end; the per-chunk figure is the whole difference divided
by the chunks (so it includes the per-call cost too: an upper bound). These end-to-end
rows are informational: on a shared 2-core machine their noise exceeds the targets. The
verdicts come from capture's own work, timed alone in tight loops: the hook around a stub
``request`` returning a parsed response (per metered call) and the observing generator
(per chunk).

    .venv/bin/python -m benchmarks.metering [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

import anthropic
import openai

try:  # the SDKs moved to httpx2 (the same API) and refuse httpx objects
    import httpx2 as httpx
except ImportError:  # older SDKs take httpx itself
    import httpx  # type: ignore[no-redef]

from adaptive_router.metering import capture
from benchmarks.common import Result, fmt_us

CALL_TARGET_US = 15.0
CHUNK_TARGET_US = 0.5
CHUNKS = 400
#: Typed Any: the SDKs' create() wants their TypedDict message params, a plain dict here.
MESSAGES: Any = [{"role": "user", "content": "Extract: order 7"}]

_CHAT = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
).encode()
_MESSAGE = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }
).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    return b"data: " + json.dumps({**body, "choices": [choice]}).encode() + b"\n\n"


_USAGE = {"prompt_tokens": 10, "completion_tokens": CHUNKS, "total_tokens": 10 + CHUNKS}
_STREAM = (
    b"".join(_chunk({"content": " w"}) for _ in range(CHUNKS - 1))
    + _chunk({}, "stop")
    + b"data: "
    + json.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [],
            "usage": _USAGE,
        }
    ).encode()
    + b"\n\ndata: [DONE]\n\n"
)


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/messages"):
        return httpx.Response(200, content=_MESSAGE, headers={"content-type": "application/json"})
    if b'"stream":true' in request.content.replace(b" ", b""):
        return httpx.Response(200, content=_STREAM, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=_CHAT, headers={"content-type": "application/json"})


def _clients(bare: bool) -> tuple[openai.OpenAI, anthropic.Anthropic]:
    """Clients on the mock transport; ``bare=True``: their ``request`` bypasses capture."""
    transport = httpx.MockTransport(_handler)
    oai_cls: Any = openai.OpenAI
    ant_cls: Any = anthropic.Anthropic
    if bare:
        # The SDK's own method, taken from under capture's wrapper: the "off" mode without
        # uninstalling, whose class-attribute churn would slow every mode alike.
        oai_cls = type("BareOpenAI", (openai.OpenAI,), {"request": _unwrapped(openai)})
        ant_cls = type("BareAnthropic", (anthropic.Anthropic,), {"request": _unwrapped(anthropic)})
    oai = oai_cls(
        api_key="sk-bench",
        base_url="http://bench.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )
    ant = ant_cls(
        api_key="sk-bench",
        base_url="http://bench.invalid",
        max_retries=0,
        http_client=httpx.Client(transport=transport),
    )
    return oai, ant


def _unwrapped(sdk: Any) -> Any:
    method = vars(sdk._base_client.SyncAPIClient)["request"]
    return getattr(method, "__wrapped__", method)


def _load() -> str:
    # End-to-end differences of a few µs drown in the SDK's own time on a busy machine
    # (the "idle" mode, which costs ~1 µs, shows the noise); the hook-alone rows carry
    # the verdicts.
    return f"load average {os.getloadavg()[0]:.1f}"


def _time_ns(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _metered_ns(fn: Callable[[], object]) -> int:
    with capture.scope():  # entering and leaving the scope is the caller's, not timed
        return _time_ns(fn)


def _modes(
    calls: dict[str, Callable[[], object]], rounds: int, n: int
) -> tuple[float, dict[str, list[float]]]:
    """The ``off`` median (ns) and, per mode, each round's median paired difference (ns).

    Within a round the modes alternate call by call (the order rotating), so each
    difference compares calls made microseconds apart.
    """
    diffs: dict[str, list[float]] = {"idle": [], "metered": []}
    offs: list[float] = []
    order = ["off", "idle", "metered"]
    for r in range(rounds):
        paired: dict[str, list[int]] = {"idle": [], "metered": []}
        base: list[int] = []
        for i in range(n):
            k = (r + i) % 3
            took = {
                mode: _metered_ns(calls[mode]) if mode == "metered" else _time_ns(calls[mode])
                for mode in order[k:] + order[:k]
            }
            base.append(took["off"])
            for mode in paired:
                paired[mode].append(took[mode] - took["off"])
        offs.append(statistics.median(base))
        for mode in diffs:
            diffs[mode].append(statistics.median(paired[mode]))
    return statistics.median(offs), diffs


def _isolated_call_ns(
    sdk_name: Literal["openai", "anthropic"], url: str, parsed: Any, n: int = 20_000
) -> float:
    """Capture's hook alone around a stub ``request`` that returns a parsed response: the
    work metering adds to a non-streamed call, without the SDK's and the machine's noise.
    Median over 7 repeats of (hooked - bare) per call."""
    import wrapt

    sdk = importlib.import_module(sdk_name)
    options = sdk._models.FinalRequestOptions.construct(
        method="post", url=url, json_data={"model": parsed.model, "messages": MESSAGES}
    )

    def request(cast_to: Any, options: Any, *, stream: bool = False) -> Any:
        return parsed

    hooked = wrapt.FunctionWrapper(
        request, capture._wrapper(capture._sync_request, capture._Sdk(sdk_name))
    )
    per_call = []
    for _ in range(7):
        with capture.scope() as got:
            t0 = time.perf_counter_ns()
            for _i in range(n):
                request(object, options)
            bare = time.perf_counter_ns() - t0
            t0 = time.perf_counter_ns()
            for _i in range(n):
                hooked(object, options)
            took = time.perf_counter_ns() - t0
        assert len(got.calls) == n and got.calls[0].known
        per_call.append((took - bare) / n)
    return statistics.median(per_call)


def _isolated_attempt_ns(n: int = 5_000) -> float:
    """What the router adds per metered attempt of one non-streamed call: the attempt's
    Bill, its capture scope, the hook, and the usage priced at the call's model (the
    Pricer caches each model's rates, so no ``calc_price`` per call). Median over 7
    repeats of (metered - bare) per call; the Pricer is warmed first, as a router's is
    after its first call of a model."""
    import wrapt

    from adaptive_router.metering.bill import Bill
    from adaptive_router.metering.prices import Pricer

    parsed = openai.types.chat.ChatCompletion.model_validate_json(_CHAT)
    options = openai._models.FinalRequestOptions.construct(
        method="post", url="/chat/completions", json_data={"model": "gpt-4o", "messages": MESSAGES}
    )

    def request(cast_to: Any, options: Any, *, stream: bool = False) -> Any:
        return parsed

    hooked = wrapt.FunctionWrapper(
        request, capture._wrapper(capture._sync_request, capture._Sdk("openai"))
    )
    pricer = Pricer()
    assert pricer.cost("gpt-4o", 10, 2) is not None
    per_call = []
    for _ in range(7):
        t0 = time.perf_counter_ns()
        for _i in range(n):
            request(object, options)
        bare = time.perf_counter_ns() - t0
        t0 = time.perf_counter_ns()
        for _i in range(n):
            bill = Bill(pricer, "gpt-4o")
            with bill:
                hooked(object, options)
            usage = bill.close()
        took = time.perf_counter_ns() - t0
        assert usage is not None and usage.cost_usd is not None
        per_call.append((took - bare) / n)
    return statistics.median(per_call)


def _isolated_hiding_chunk_ns(n: int = 200_000) -> float:
    """The ``include_usage`` generator (checks each chunk for the usage chunk it hides)."""
    chunk = openai.types.chat.ChatCompletionChunk.model_validate_json(
        _chunk({"content": " w"})[len(b"data: ") :].strip()
    )
    items = [chunk] * n
    call = capture.CallUsage("openai", "chat", "m")
    owner = capture.Scope()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _item in iter(items):
            pass
        bare = time.perf_counter_ns() - t0
        t0 = time.perf_counter_ns()
        for _item in capture._observe_hiding(iter(items), call, owner):
            pass
        observed = time.perf_counter_ns() - t0
        best = min(best, (observed - bare) / n)
    return best


def _isolated_chunk_ns(n: int = 200_000) -> float:
    """The observing generator alone, per item, against iterating the same items bare."""
    items = [object()] * n
    call = capture.CallUsage("openai", "chat", "m")
    owner = capture.Scope()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _item in iter(items):
            pass
        bare = time.perf_counter_ns() - t0
        t0 = time.perf_counter_ns()
        for _item in capture._observe(iter(items), call, owner):
            pass
        observed = time.perf_counter_ns() - t0
        best = min(best, (observed - bare) / n)
    return best


def run(quick: bool = False) -> list[Result]:
    """The metering section of the benchmark table."""
    rounds, n, n_stream = (9, 100, 5) if quick else (21, 300, 15)
    capture.install()
    oai, ant = _clients(bare=False)
    bare_oai, bare_ant = _clients(bare=True)

    def chat(client: openai.OpenAI) -> Callable[[], object]:
        return lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def message(client: anthropic.Anthropic) -> Callable[[], object]:
        return lambda: client.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES
        )

    def stream(client: openai.OpenAI) -> Callable[[], object]:
        def read() -> None:
            for _ in client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass

        return read

    for make, wrapped, bare in (
        (chat, oai, bare_oai),
        (message, ant, bare_ant),
        (stream, oai, bare_oai),
    ):
        with capture.scope() as got:  # warm-up, and check what is metered and what not
            make(wrapped)()  # type: ignore[arg-type]
            make(bare)()  # type: ignore[arg-type]
        assert len(got.calls) == 1 and got.calls[0].known, got.calls

    results = []
    for label, make, wrapped, bare in (
        ("openai chat", chat, oai, bare_oai),
        ("anthropic messages", message, ant, bare_ant),
    ):
        fns = {"off": make(bare), "idle": make(wrapped), "metered": make(wrapped)}  # type: ignore[arg-type]
        off, diffs = _modes(fns, rounds, n)
        metered = statistics.median(diffs["metered"]) / 1000
        idle = statistics.median(diffs["idle"]) / 1000
        results.append(
            Result(
                "metering",
                f"{label}: metered call vs capture off, end to end",
                "info",
                fmt_us(metered),
                None,
                f"{_load()}; call itself {fmt_us(off / 1000)}; installed, outside any scope: "
                f"{fmt_us(idle)}; median over {rounds} rounds of {n} paired calls",
            )
        )
    fns = {"off": stream(bare_oai), "idle": stream(oai), "metered": stream(oai)}
    off, diffs = _modes(fns, rounds, n_stream)
    per_chunk = statistics.median(diffs["metered"]) / 1000 / CHUNKS
    results.append(
        Result(
            "metering",
            f"chat stream: metered vs off, per chunk ({CHUNKS} chunks), end to end",
            "info",
            f"{per_chunk * 1000:.0f} ns",
            None,
            f"{_load()}; stream itself {fmt_us(off / 1000)}; whole-stream difference / chunks "
            "(includes the per-call cost)",
        )
    )
    cases: tuple[tuple[str, Literal["openai", "anthropic"], str, Any], ...] = (
        (
            "openai chat",
            "openai",
            "/chat/completions",
            openai.types.chat.ChatCompletion.model_validate_json(_CHAT),
        ),
        (
            "anthropic messages",
            "anthropic",
            "/v1/messages",
            anthropic.types.Message.model_validate_json(_MESSAGE),
        ),
    )
    for label, sdk_name, url, parsed in cases:
        hook_us = _isolated_call_ns(sdk_name, url, parsed) / 1000
        results.append(
            Result(
                "metering",
                f"{label}: capture's hook alone, per metered call",
                f"≤ {CALL_TARGET_US:g} µs",
                fmt_us(hook_us),
                hook_us <= CALL_TARGET_US,
                "wrapt wrapper + scope lookup + usage read + record, around a stub request",
            )
        )
    attempt_us = _isolated_attempt_ns() / 1000
    results.append(
        Result(
            "metering",
            "router attempt: bill + scope + hook + pricing, per metered call",
            f"≤ {CALL_TARGET_US:g} µs",
            fmt_us(attempt_us),
            attempt_us <= CALL_TARGET_US,
            "one non-streamed call per attempt, priced at its model by the cached Pricer",
        )
    )
    hiding = _isolated_hiding_chunk_ns()
    results.append(
        Result(
            "metering",
            "include_usage generator alone, per chunk",
            f"≤ {CHUNK_TARGET_US:g} µs",
            f"{hiding:.0f} ns",
            hiding / 1000 <= CHUNK_TARGET_US,
            "Observability(capture_usage='include_usage'): each chunk checked for the hidden "
            "usage chunk",
        )
    )
    iso = _isolated_chunk_ns()
    results.append(
        Result(
            "metering",
            "observing generator alone, per chunk",
            f"≤ {CHUNK_TARGET_US:g} µs",
            f"{iso:.0f} ns",
            iso / 1000 <= CHUNK_TARGET_US,
            "against bare iteration of the same items, best of 5",
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    for r in run(args.quick):
        print(f"{r.verdict:7} {r.measure:55} {r.value:>10}  (target {r.target}; {r.note})")


if __name__ == "__main__":
    main()
