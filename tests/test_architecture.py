"""The dependency rules of the whole package, read from the source (imports at module
level and inside functions, relative imports resolved): no import circles, lower layers
never import the apps on top, the router's collaborators never import its facade, and
modules stay small."""

from __future__ import annotations

import ast

from test_layout import MODULES, import_cycles, imports_of

PACKAGE = "adaptive_router"
FACADE = f"{PACKAGE}.router.router"

#: No circle is tolerated (the list stays here so that a future exception is explicit).
KNOWN_CYCLES: list[set[str]] = []

#: Apps and adapters on top: nothing below them may import them.
HIGHER = ("providers", "integrations", "judges", "cli", "demo", "testing")
HIGHER += ("dashboard",)
LOWER = ("router", "policies", "ope", "metering", "feedback", "stores", "observe", "resilience")

KNOWN_LARGE: set[str] = set()
MAX_MODULE_LINES = 800
#: The facade's code: class Router without its docstrings (which document every
#: parameter for help(Router) and the API docs).
MAX_ROUTER_LINES = 400


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == f"{PACKAGE}.{p}" or module.startswith(f"{PACKAGE}.{p}.") for p in prefixes)


GRAPH = {m: imports_of(m) for m in MODULES}


#: The layers, bottom up (the README's design diagram). A module may import its own layer
#: and the ones below, never one above. A unit is a top-level module or package, except
#: the decision records (Beta and contextual), which the outcome records embed: they are
#: vocabulary, not policy.
LAYERS: list[set[str]] = [
    # vocabulary: records, errors, validators, fork hooks, feature hashing
    {"version", "errors", "outcomes", "_checks", "_imports", "forks", "log_throttle"}
    | {"features", "policies.logged_decision", "policies.contextual_decision"},
    # mechanisms without I/O, and the things a path is made of
    {"policies", "resilience", "observe", "metering", "paths", "validation"},
    # persistence and what reads or completes it
    {"stores", "migrations", "ope", "feedback", "reports"},
    # the router
    {"router"},
    # apps and adapters on top, and the package face
    {"providers", "integrations", "judges", "dashboard", "simulation", "demo", "testing"}
    | {"cli", "__main__", ""},
]


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:1] == ["policies"] and parts[1:2] in (["logged_decision"], ["contextual_decision"]):
        return f"policies.{parts[1]}"
    return parts[0] if parts else ""


def _layer(module: str) -> int:
    unit = _unit(module)
    found = [i for i, layer in enumerate(LAYERS) if unit in layer]
    assert found, f"{module} ({unit!r}) is in no layer: add it to LAYERS and the README"
    return found[0]


def test_every_import_points_down_the_layers() -> None:
    up = sorted(
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        for dep in deps
        if dep.startswith(PACKAGE) and _layer(dep) > _layer(m)
    )
    assert up == []


def test_no_import_circles_beyond_the_known_ones() -> None:
    cycles = import_cycles(GRAPH)
    unknown = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert unknown == []


def test_the_router_policy_and_stores_never_import_the_apps_on_top() -> None:
    bad = sorted(
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        if _under(m, LOWER)
        for dep in deps
        if _under(dep, HIGHER)
    )
    assert bad == []


def test_the_routers_collaborators_never_import_the_facade() -> None:
    inside = [m for m in MODULES if m.startswith(f"{PACKAGE}.router.")]
    assert len(inside) >= 8  # the router package's modules are all seen
    bad = sorted(
        f"{m} -> {dep}"
        for m in inside
        if m != FACADE
        for dep in GRAPH[m]
        # Importing the package runs its __init__, which imports the facade.
        if dep in (FACADE, f"{PACKAGE}.router")
    )
    assert bad == []


def test_modules_stay_small_and_the_router_is_a_facade() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES and m not in KNOWN_LARGE} == {}
    tree = ast.parse(MODULES[FACADE].read_text())
    (router,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Router"]
    assert router.end_lineno is not None
    lines = router.end_lineno - router.lineno + 1 - _docstring_lines(router)
    assert lines <= MAX_ROUTER_LINES, f"class Router is {lines} lines of code"


def _docstring_lines(cls: ast.ClassDef) -> int:
    """Lines taken by the docstrings of ``cls`` and of its methods."""
    total = 0
    for node in [cls, *cls.body]:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
                and body[0].end_lineno is not None
            ):
                total += body[0].end_lineno - body[0].lineno + 1
    return total


def test_the_rules_can_fail() -> None:
    """The checks see what they must: imports inside functions, relative imports and a
    circle through a package's __init__."""
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": set[str]()}
    assert import_cycles(graph) == [{"p", "p.a", "p.b"}]
    # router/__init__ imports the facade with an absolute import; the facade imports its
    # collaborators: both edges are seen.
    assert FACADE in GRAPH[f"{PACKAGE}.router"]
    assert f"{PACKAGE}.router.attempts" in GRAPH[FACADE]
    # providers.models imports the router inside a function: the walk sees that edge too.
    assert any(d.startswith(f"{PACKAGE}.router") for d in GRAPH[f"{PACKAGE}.providers.models"])
    assert _under(f"{PACKAGE}.router.attempts", LOWER)
    assert _layer(f"{PACKAGE}.policies.logged_decision") < _layer(f"{PACKAGE}.policies.thompson")
    assert _layer(f"{PACKAGE}.router.attempts") > _layer(f"{PACKAGE}.feedback.pending")
    assert not _under(f"{PACKAGE}.routerx", LOWER)
