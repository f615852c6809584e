"""Import cost: what importing the package, starting a router and asking the command line
for help load, each in a fresh interpreter (``sys.modules`` tells; no timings here:
``benchmarks/startup.py`` measures them), and the error a missing extra gives."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from adaptive_router._imports import install_hint, missing_extra, needs_extra

#: Libraries the package must not import until they are used.
HEAVY = (
    "alembic",
    "anthropic",
    "genai_prices",
    "langchain_core",
    "limits",
    "litellm",
    "matplotlib",
    "numba",
    "openai",
    "opentelemetry",
    "prometheus_client",
    "psycopg",
    "pydantic",
    "redis",
    "rich",
    "scipy",
    "sqlalchemy",
    "starlette",
    "typer",
    "uvicorn",
)


def run_python(code: str) -> str:
    """stdout of ``code`` run by a fresh interpreter (which must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def loaded_after(code: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of ``names`` (top-level packages) are imported once ``code`` has run."""
    report = f"print(json.dumps(sorted(n for n in {names!r} if n in sys.modules)))"
    probe = f"{textwrap.dedent(code)}\nimport json, sys\n{report}\n"
    return list(json.loads(run_python(probe).splitlines()[-1]))


def test_importing_the_package_loads_none_of_the_heavy_libraries() -> None:
    assert loaded_after("import adaptive_router") == []
    # numpy too: the router's vocabulary (errors, outcomes) needs none.
    assert loaded_after("import adaptive_router", ("numpy",)) == []


def test_the_lazy_names_are_the_real_objects() -> None:
    out = run_python(
        """
        import adaptive_router
        names = sorted(adaptive_router.__all__)
        missing = [n for n in names if n not in dir(adaptive_router)]
        from adaptive_router.router.router import Router
        from adaptive_router.stores.sql import SQLStore
        import adaptive_router.stores as stores
        print(missing, adaptive_router.Router is Router, stores.SQLStore is SQLStore)
        print(all(getattr(adaptive_router, n) is not None for n in names))
        try:
            adaptive_router.Nothing
        except AttributeError as exc:
            print(exc)
        """
    )
    assert out.splitlines() == [
        "[] True True",
        "True",
        "module 'adaptive_router' has no attribute 'Nothing'",
    ]


@pytest.mark.parametrize(
    "package",
    ["adaptive_router", "adaptive_router.stores", "adaptive_router.demo", "adaptive_router.cli"],
)
def test_importing_a_submodule_first_shadows_no_public_name(package: str) -> None:
    """A lazy name that were also a submodule's would become the module once the
    submodule is imported: every submodule is imported here before any name is read."""
    out = run_python(
        f"""
        import importlib, pkgutil, types
        package = importlib.import_module({package!r})
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{{package.__name__}}.{{info.name}}")
        print([n for n in package.__all__ if isinstance(getattr(package, n), types.ModuleType)])
        """
    )
    assert out.strip() == "[]"


ROUTER = """
from adaptive_router import Observability, Router
def answer():
    return 42
router = Router([answer], success_fn=bool, task="t", store="memory://"{extra})
"""


#: Metrics are on by default: with prometheus-client installed (the tests' install) a
#: router imports it, since it is in use.
METRICS = ["prometheus_client"] if importlib.util.find_spec("prometheus_client") else []


def test_a_default_router_on_memory_loads_no_sql_prices_tracing_or_scipy() -> None:
    assert loaded_after(ROUTER.format(extra="")) == METRICS
    assert loaded_after(ROUTER.format(extra=", observability=Observability(metrics=False)")) == []


def test_a_propensity_loads_no_scipy() -> None:
    """The first request's propensity is computed off the request (by the background
    thread, or by close() for what it had not done yet) with numpy alone: scipy would
    add ~20 MB to every routing process that logs decisions."""
    code = ROUTER.format(extra="") + textwrap.dedent(
        """
        assert router.run() == 42
        router.close()
        (first,) = router.store.outcomes("t")
        assert first.propensity == 1.0, first.propensity  # one path: computed, and exact
        """
    )
    assert loaded_after(code) == METRICS


def test_the_command_lines_help_loads_no_database_model_or_metrics_stack() -> None:
    loaded = loaded_after(
        """
        from adaptive_router.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        """
    )
    assert loaded == ["rich", "typer"]


def test_a_store_for_postgresql_says_which_extra_to_install() -> None:
    out = run_python(
        """
        import sys
        sys.modules["psycopg"] = None  # not installed
        from adaptive_router import Router
        try:
            Router([lambda: 1], bool, "t", store="postgresql://postgres@127.0.0.1:5432/test")
        except ImportError as exc:
            print(exc)
            print(type(exc.__cause__).__name__)
        """
    )
    assert out.splitlines() == [
        "PostgreSQL support needs the 'postgres' extra: pip install 'adaptive-router[postgres]'",
        "ModuleNotFoundError",
    ]


@pytest.mark.parametrize(
    ("missing", "code", "extra"),
    [
        ("typer", "import adaptive_router.cli", "cli"),
        ("alembic", "import adaptive_router.migrations", "cli"),
        ("openai", "from adaptive_router.providers import openai_path as p\np('m', 'x')", "openai"),
        (
            "anthropic",
            "from adaptive_router.providers import anthropic_path as p\np('m', 'x')",
            "anthropic",
        ),
        ("starlette", "import adaptive_router.dashboard.app", "dashboard"),
        (
            "langchain_core",
            "from adaptive_router.integrations import as_runnable\nas_runnable(None)",
            "langchain",
        ),
        ("litellm", "from adaptive_router.providers import litellm_path", "litellm"),
        # Asked for by name, tracing without OpenTelemetry was silently off.
        (
            "opentelemetry",
            "from adaptive_router import Observability\nObservability(tracing=True)",
            "tracing",
        ),
        (
            "redis",
            "from adaptive_router.resilience import RateLimit\nRateLimit(5, storage='redis://')",
            "redis",
        ),
    ],
)
def test_each_missing_extra_is_named(missing: str, code: str, extra: str) -> None:
    out = run_python(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # not installed
        try:
            exec({code!r})
        except ImportError as exc:
            print(exc)
        """
    )
    assert out.strip().endswith(
        f"needs the {extra!r} extra: pip install 'adaptive-router[{extra}]'"
    )


def test_the_hint_is_one_sentence_and_only_a_missing_module_becomes_it() -> None:
    assert install_hint("plot", "Plotting") == (
        "Plotting needs the 'plot' extra: pip install 'adaptive-router[plot]'"
    )
    assert isinstance(missing_extra("plot", "Plotting"), ImportError)
    with (
        pytest.raises(ImportError, match=r"^X needs the 'x' extra") as caught,
        needs_extra("x", "X"),
    ):
        import adaptive_router_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
    # An installed module that fails for another reason keeps its own error.
    with pytest.raises(ImportError, match="broken driver"), needs_extra("x", "X"):
        raise ImportError("broken driver")


@pytest.mark.parametrize(
    ("missing", "command", "extra", "what"),
    [
        ("matplotlib", ["simulate", "degradation", "--quick"], "plot", "adaptive-router simulate"),
        ("openai", ["demo", "--requests", "10"], "openai", "The demo"),
        ("anthropic", ["demo", "--requests", "10"], "anthropic", "The demo"),
    ],
)
def test_a_command_names_the_extra_it_needs_before_it_runs(
    missing: str, command: list[str], extra: str, what: str, tmp_path: pathlib.Path
) -> None:
    # simulate ran every run first, then failed on "No module named 'matplotlib'".
    where = "--out" if command[0] == "simulate" else "--db"
    args = [*command, where, str(tmp_path / "out")]
    out = run_python(
        f"""
        import sys, time
        sys.modules[{missing!r}] = None  # not installed
        from typer.testing import CliRunner
        from adaptive_router.cli import app
        started = time.monotonic()
        r = CliRunner().invoke(app, {args!r})
        print(r.exit_code, round(time.monotonic() - started, 1))
        print(r.output.strip())
        """
    )
    status, text = out.strip().split("\n", 1)
    assert status.split()[0] == "1" and float(status.split()[1]) < 5.0
    assert text == (
        f"error: ImportError: {what} needs the {extra!r} extra: "
        f"pip install 'adaptive-router[{extra}]'"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_console_script_without_the_cli_extra_says_so_in_one_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['typer'] = None\n"
            "from adaptive_router.__main__ import main\nmain(['--help'])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: The adaptive-router command line needs the 'cli' extra: "
        "pip install 'adaptive-router[cli]'\n"
    )
