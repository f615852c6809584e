"""The package layout: the resilience and simulation packages keep every public name
of the modules they replaced, stay small, and sit in no import circle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import adaptive_router

ROOT = Path(adaptive_router.__file__).parent
PACKAGES = (
    "adaptive_router.resilience",
    "adaptive_router.simulation",
    "adaptive_router.cli",
    "adaptive_router.observe",
    "adaptive_router.demo",
    "adaptive_router.providers",
)

# Every public name `adaptive_router.resilience` and `adaptive_router.simulation` had as
# single modules (their __all__, plus public aliases defined there).
OLD_ALL = {
    "adaptive_router.resilience": [
        "BreakerOpenError",
        "BreakerState",
        "CallTimeoutError",
        "CircuitBreaker",
        "FullJitter",
        "RETRYABLE",
        "RateLimit",
        "RateLimitExceeded",
        "RetryPolicy",
        "RetryState",
        "abandoned_calls",
        "acall_with_timeout",
        "call_with_timeout",
        "classify",
        "redact_url",
        "retry_after",
        "to_daemon_thread",
    ],
    "adaptive_router.simulation": [
        "Change",
        "Environment",
        "EpsilonGreedy",
        "FinalPath",
        "Oracle",
        "SimulationResult",
        "StaticOrder",
        "StepAware",
        "UCB1",
        "UniformRandom",
        "abrupt",
        "adaptation_lag",
        "adaptation_lags",
        "bernoulli_kl",
        "compare",
        "drift",
        "lai_robbins_bound",
        "lai_robbins_constant",
        "outcome_table",
        "policy_label",
        "recovery",
        "rngs",
        "simulate",
        "stationary",
    ],
}
# adaptive_router.cli had no __all__: its public functions that other code may use.
OLD_ALL["adaptive_router.cli"] = [
    "ENV_DB",
    "CLIError",
    "app",
    "check_dict",
    "db_app",
    "load_target",
    "main",
    "parse_duration",
    "parse_prior",
    "posterior_dict",
    "read_posteriors",
    "read_samples",
    "redact",
    "redact_url",
    "resolve_url",
    "stats_dict",
    "stored_half_life",
]
# A new package (the five modules keep their old names as aliases): what it offers.
OLD_ALL["adaptive_router.observe"] = [
    "Alert",
    "AlertKind",
    "Alerts",
    "CallbackObserver",
    "MetricsServer",
    "Observer",
    "Observers",
    "PrometheusMetrics",
    "Tracing",
    "serve_metrics",
]
OLD_ALL["adaptive_router.providers"] = [
    "MalformedResponseError",
    "MissingCredentialsError",
    "PromptError",
    "RepairCounter",
    "anthropic_path",
    "model_path",
    "openai_path",
    "provider_of",
    "repair_counter",
    "router_from_models",
]
# adaptive_router.demo had no __all__: the names it offers as a package.
OLD_ALL["adaptive_router.demo"] = [
    "ADAPT_REQUESTS",
    "CITIES",
    "CLAUDE",
    "DEFAULT_DB",
    "DEFAULT_HALF_LIFE",
    "DEFAULT_LIVE_REQUESTS",
    "DEFAULT_REQUESTS",
    "DEFAULT_SEED",
    "DEGRADED",
    "DemoProgress",
    "DemoSummary",
    "FAKE_TIMEOUT_S",
    "FALLBACK",
    "GPT",
    "HANG_S",
    "ITEMS",
    "LIVE_RETRY_INITIAL_S",
    "LIVE_TIMEOUT_S",
    "LIVE_WINDOW",
    "MIN_LIVE_REQUESTS",
    "MIN_REQUESTS",
    "MODELS",
    "NUMBER_WORDS",
    "Order",
    "PROMPT",
    "PathProgress",
    "PhaseSummary",
    "RESET_S",
    "SHIFT_THRESHOLD",
    "SHIFT_WINDOW",
    "SimulatedModel",
    "SimulatedOutage",
    "TASK",
    "behave",
    "is_valid_order",
    "make_order",
    "parse_lenient",
    "parse_strict",
    "print_summary",
    "progress_table",
    "requests_to_shift",
    "run_demo",
    "run_with_display",
    "sqlite_file",
]
# Public names added since (the old ones must all stay).
ADDED: dict[str, list[str]] = {
    "adaptive_router.resilience": ["MissingCredentialsError", "auth_advice"],
    "adaptive_router.simulation": [
        "BlendedScore",
        "RatioOracle",
        "all_fixed_orders",
        "quality_first",
    ],
}
OLD_ALIASES = {
    "adaptive_router.resilience": ["BreakerListener"],
    "adaptive_router.simulation": ["BoolArray", "Engine"],
    "adaptive_router.cli": [],
    "adaptive_router.observe": [],
    "adaptive_router.demo": [],
    "adaptive_router.providers": ["Messages", "Prompt", "REPAIR_PROMPT"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The package's modules that ``name`` imports anywhere (functions included): for
    ``from a import b`` the module ``a.b`` when there is one, else ``a``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def in_packages(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_packages_keep_every_public_name(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(OLD_ALL[package] + ADDED.get(package, []))
    missing = [n for n in OLD_ALL[package] + OLD_ALIASES[package] if not hasattr(module, n)]
    assert missing == []


def test_no_module_of_the_packages_is_over_800_lines() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items() if in_packages(m)}
    assert len(sizes) >= 12  # the two packages' modules are all seen
    assert {m: n for m, n in sizes.items() if n > 800} == {}


def test_the_packages_are_in_no_import_circle() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    circles = [sorted(c) for c in import_cycles(graph) if any(in_packages(m) for m in c)]
    assert circles == []


def test_the_cycle_finder_finds_circles_and_imports_inside_functions() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set[str]()}
    assert import_cycles(graph) == [{"a", "b", "c"}]
    # engine.py imports the kernel inside a function only: the walk must see that edge.
    assert "adaptive_router.simulation.kernel" in imports_of("adaptive_router.simulation.engine")
    assert "adaptive_router.resilience.timeouts" in imports_of("adaptive_router.paths")


def test_no_private_name_is_imported_from_the_packages() -> None:
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and in_packages(node.module):
                crossing += [
                    f"{name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and node.module != name
                ]
    assert crossing == []


def test_the_console_script_entry_point_is_the_cli_app() -> None:
    assert (
        importlib.import_module("adaptive_router.cli").main.__module__ == "adaptive_router.cli.app"
    )


def test_observe_sits_below_the_router_and_the_package_face() -> None:
    """tracing.py used to import ``adaptive_router`` (the face, which imports the router)
    for its version: observers must not reach up."""
    above = {"adaptive_router", "adaptive_router.router", "adaptive_router.feedback.reporter"}
    reached = {
        m: sorted(imports_of(m) & above) for m in MODULES if m.startswith("adaptive_router.observe")
    }
    assert {m: r for m, r in reached.items() if r} == {}
    assert "adaptive_router.version" in imports_of("adaptive_router.observe.tracing")


@pytest.mark.parametrize(
    "name",
    [
        "alerts",
        "capture",
        "cli_reports",
        "confidence",
        "costs",
        "evaluation",
        "logged_decision",
        "metrics",
        "objectives",
        "observers",
        "policy",
        "propensity",
        "recorder",
        "reporting",
        "tracing",
    ],
)
def test_moved_modules_left_no_shim_behind(name: str) -> None:
    """Nothing was released under the old flat names, so none is kept: one name per module."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"adaptive_router.{name}")


def test_provider_modules_named_like_the_sdks_do_not_shadow_them() -> None:
    import anthropic
    import openai

    from adaptive_router.providers import anthropic as anthropic_mod
    from adaptive_router.providers import openai as openai_mod

    assert openai.OpenAI.__module__.startswith("openai")
    assert anthropic.Anthropic.__module__.startswith("anthropic")
    assert openai_mod.__name__ == "adaptive_router.providers.openai"
    assert anthropic_mod.__name__ == "adaptive_router.providers.anthropic"
