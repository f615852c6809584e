"""Side effects only while asked for: what a router starts (SDK hooks, threads, an exit
hook, metrics) it ends at close(), and nothing clashes with the application's own."""

from __future__ import annotations

import atexit
import logging
import pathlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from anthropic._base_client import AsyncAPIClient as AnthropicAsync
from anthropic._base_client import SyncAPIClient as AnthropicSync
from openai._base_client import AsyncAPIClient as OpenAIAsync
from openai._base_client import SyncAPIClient as OpenAISync

from adaptive_router import Observability, Outcome, Path, Persistence, Router
from adaptive_router.metering import capture
from adaptive_router.observe.metrics import default_registry
from adaptive_router.stores import open_store
from adaptive_router.testing import FakeProvider, reply

GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-6"
MESSAGES: Any = [{"role": "user", "content": "Extract: order 7"}]
SDK_CLASSES = (OpenAISync, OpenAIAsync, AnthropicSync, AnthropicAsync)


def ours() -> list[str]:
    """The names of the threads adaptive-router runs now."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("adaptive-router"))


@pytest.fixture(autouse=True)
def unhooked() -> Iterator[None]:
    capture.uninstall()  # whatever a router of another test left
    yield
    capture.uninstall()


class ExitHooks:
    """Our exit hooks registered and not unregistered (CPython's count never shrinks)."""

    def __init__(self) -> None:
        self.live: list[Any] = []
        self._register, self._unregister = atexit.register, atexit.unregister
        atexit.register, atexit.unregister = self.register, self.unregister  # type: ignore[assignment]

    def register(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(fn, "func", fn), "__module__", "").startswith("adaptive_router"):
            self.live.append(fn)
        return self._register(fn, *args, **kwargs)

    def unregister(self, fn: Any) -> None:
        self.live[:] = [f for f in self.live if f is not fn]
        self._unregister(fn)


def scenario(tmp: str) -> None:
    """Several routers on SQLite metering real SDK calls (FakeProvider), with metrics and
    heartbeats; a metric of the application's named like ours beside them; then every
    router closed. Run in a fresh interpreter: the thread census counts every thread."""
    exit_hooks = ExitHooks()
    originals = [vars(cls)["request"] for cls in SDK_CLASSES]
    assert ours() == []
    with FakeProvider() as fake:
        fake.default(GPT, reply("gpt", input_tokens=11, output_tokens=3))
        fake.default(CLAUDE, reply("claude", input_tokens=20, output_tokens=5))
        oai, ant = fake.openai_client(), fake.anthropic_client()

        def gpt(text: str) -> str | None:
            out = oai.chat.completions.create(model=GPT, messages=MESSAGES)
            return out.choices[0].message.content

        def claude(text: str) -> str:
            msg = ant.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)
            return msg.content[0].text  # type: ignore[union-attr]

        seen: list[Outcome] = []
        routers = [
            Router(
                [Path(gpt, name="gpt"), Path(claude, name="claude")],
                lambda r: r is not None,
                task=f"effects-{i}",
                store=f"sqlite:///{tmp}/effects-{i}.db",
                fallback=Path(lambda text: "regex", name="regex", timeout=None),
                persistence=Persistence(flush_interval=0.05),
                observability=Observability(heartbeat=0.05, on_outcome=seen.append),
            )
            for i in range(3)
        ]
        mine = prometheus_client.Counter("adaptive_router_requests", "the app's own")
        hooked = zip(SDK_CLASSES, originals, strict=True)
        assert all(vars(c)["request"] is not o for c, o in hooked)  # hooked once, shared
        assert all(
            r.metrics is not None and r.metrics.registry is default_registry() for r in routers
        )
        for r in routers:
            for _ in range(4):
                assert r.run("2x widget") in ("gpt", "claude")
        # Metered through the real SDKs: each attempt's tokens are its path's reply's.
        assert {(o.path, o.input_tokens) for o in seen} <= {("gpt", 11), ("claude", 20)}
        assert len(seen) == 12
        running = ours()
        for kind in ("writer", "heartbeat", "call"):  # call: the timed sync calls' workers
            assert any(n.startswith(f"adaptive-router-{kind}") for n in running), running
        assert len(exit_hooks.live) == 3  # one per router's writer

        # The application's own metric named like ours lives beside the routers' metrics.
        mine.inc()
        assert prometheus_client.REGISTRY.get_sample_value("adaptive_router_requests_total") == 1
        counted = default_registry().get_sample_value(
            "adaptive_router_requests_total", {"task": "effects-0", "success": "true"}
        )
        assert counted == 4.0

        routers[0].close()  # the others still meter: the hooks stay
        hooked = zip(SDK_CLASSES, originals, strict=True)
        assert all(vars(c)["request"] is not o for c, o in hooked)
        for r in routers[1:]:
            r.close()

    assert ours() == [], ours()
    assert [vars(cls)["request"] for cls in SDK_CLASSES] == originals
    assert not capture.installed() and not capture.hooked()
    assert exit_hooks.live == []
    # After the last close, another metric named like ours registers there too.
    prometheus_client.Counter("adaptive_router_attempts", "the app's too").inc(2)
    assert prometheus_client.REGISTRY.get_sample_value("adaptive_router_attempts_total") == 2
    assert prometheus_client.REGISTRY.get_sample_value("adaptive_router_requests_total") == 1


def in_a_fresh_process(scenario_name: str, tmp_path: Any) -> None:
    """Run this module's ``scenario_name(tmp)`` in a fresh interpreter: the thread census
    and the SDK classes are the process's, which other tests share."""
    code = f"import test_side_effects as t; t.{scenario_name}({str(tmp_path)!r}); print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=pathlib.Path(__file__).parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"


def test_after_the_last_close_no_thread_hook_or_metric_clash_remains(tmp_path: Any) -> None:
    in_a_fresh_process("scenario", tmp_path)


def test_a_router_on_its_own_memory_store_starts_no_heartbeat_and_no_writer() -> None:
    """Nothing else can read a store only this router holds: no heartbeat is written."""
    with Router([lambda: 1], bool, task="quiet", store="memory://") as r:
        r.run()
        assert [n for n in ours() if "heartbeat-quiet" in n or "writer[quiet" in n] == []
    shared = open_store("memory://")  # a store the application holds: it may read it
    with Router([lambda: 1], bool, task="shared", store=shared) as r:
        r.run()
        assert "adaptive-router-heartbeat-shared" in ours()
    assert [n for n in ours() if "shared" in n] == []
    shared.close()


def test_a_changed_sdk_internal_turns_metering_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from anthropic import _base_client as anthropic_base

    monkeypatch.setattr(anthropic_base, "AsyncAPIClient", None)  # a future SDK moved it
    monkeypatch.setattr(capture, "_unsupported", set())  # this process's SDK is fine
    original = vars(AnthropicSync)["request"]
    caplog.set_level(logging.WARNING, logger="adaptive_router.metering.capture")
    routers = [Router([lambda: 1], bool, task=f"sdk-{i}", store="memory://") for i in range(2)]
    assert [r.run() for r in routers] == [1, 1]  # built and routing: nothing raised
    assert vars(AnthropicSync)["request"] is original  # anthropic left alone, all of it
    assert hasattr(vars(OpenAISync)["request"], "__wrapped__")  # openai still metered
    lines = [r for r in caplog.records if "usage capture is off for anthropic" in r.message]
    assert len(lines) == 1 and "AsyncAPIClient.request is gone" in lines[0].message
    for r in routers:
        r.close()
    assert not hasattr(vars(OpenAISync)["request"], "__wrapped__")


def test_capture_off_never_touches_the_sdks() -> None:
    original = vars(OpenAISync)["request"]
    with Router(
        [lambda: 1],
        bool,
        task="off",
        store="memory://",
        observability=Observability(capture_usage=False),
    ) as r:
        assert r.run() == 1
        assert vars(OpenAISync)["request"] is original and not capture.installed()


def test_an_explicit_install_outlives_routers_until_uninstall() -> None:
    capture.install()
    with Router([lambda: 1], bool, task="manual", store="memory://") as r:
        r.run()
    assert capture.installed() and hasattr(vars(OpenAISync)["request"], "__wrapped__")
    capture.uninstall()
    assert not hasattr(vars(OpenAISync)["request"], "__wrapped__")


def test_routers_use_the_registry_they_are_given_and_serve_their_own() -> None:
    mine = prometheus_client.CollectorRegistry()
    with Router(
        [lambda: 1],
        bool,
        task="reg",
        store="memory://",
        observability=Observability(metrics_registry=mine),
    ) as r:
        r.run()
        assert r.metrics is not None and r.metrics.registry is mine
        value = mine.get_sample_value(
            "adaptive_router_requests_total", {"task": "reg", "success": "true"}
        )
        assert value == 1.0
        server = r.serve_metrics(port=0)
        assert any(t is server.thread for t in threading.enumerate())
    assert server.closed and not server.thread.is_alive()  # closed with the router


def test_a_router_in_a_fresh_process_leaves_it_as_it_found_it(tmp_path: Any) -> None:
    """No scipy at construction; after close no thread, and no exit hook runs at exit."""
    code = textwrap.dedent(
        """
        import sys, threading
        from adaptive_router import Router
        from adaptive_router.router.recorder import Recorder
        r = Router([lambda: 1], bool, task="t", store=sys.argv[1])
        assert "scipy" not in sys.modules, "scipy imported at construction"
        assert r.run() == 1
        r.close()
        left = [t.name for t in threading.enumerate() if t.name.startswith("adaptive-router")]
        assert left == [], left
        Recorder.close = lambda self: print("an exit hook of ours ran")  # r is still alive
        print("ok")
        """
    )
    url = f"sqlite:///{tmp_path}/fresh.db"
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def wrapped_on_top(tmp: str) -> None:
    """A tracing agent wraps the SDK after a router hooked it: closing the router keeps
    the agent's wrapper (restoring the SDK's own method took it out), and a later router
    meters each call once through the layer it left in place."""
    import wrapt

    with FakeProvider() as fake:
        fake.default(GPT, reply("gpt", input_tokens=11, output_tokens=3))
        oai = fake.openai_client()

        def gpt(text: str) -> str | None:
            return (
                oai.chat.completions.create(model=GPT, messages=MESSAGES).choices[0].message.content
            )

        def router(task: str, seen: list[Outcome]) -> Router:
            return Router(
                [Path(gpt, name="gpt")],
                lambda r: r is not None,
                task=task,
                store="memory://",
                observability=Observability(on_outcome=seen.append),
            )

        traced: list[str] = []

        def tracer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            traced.append("call")
            return wrapped(*args, **kwargs)

        first: list[Outcome] = []
        with router("first", first) as a:
            wrapt.wrap_function_wrapper(OpenAISync, "request", tracer)
            agent = vars(OpenAISync)["request"]
            assert a.run("x") == "gpt"
        assert vars(OpenAISync)["request"] is agent  # the agent's wrapper survived close
        assert not capture.hooked()
        gpt("x")
        assert traced == ["call", "call"]
        second: list[Outcome] = []
        with router("second", second) as b:
            assert b.run("x") == "gpt"
        assert traced == ["call"] * 3
        assert [(o.input_tokens, o.output_tokens) for o in first + second] == [(11, 3), (11, 3)]
        assert vars(OpenAISync)["request"] is agent


def test_closing_keeps_a_wrapper_another_library_put_on_top(tmp_path: Any) -> None:
    in_a_fresh_process("wrapped_on_top", tmp_path)
