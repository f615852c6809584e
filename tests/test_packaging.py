"""The Python the project claims is the Python its dependencies and tools are set for."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

PYPROJECT = tomllib.loads(
    (pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
)


def _floor(spec: str) -> Version:
    (lower,) = [s for s in SpecifierSet(spec) if s.operator == ">="]
    return Version(lower.version)


def test_claimed_python_floor_is_what_dependencies_need_and_tools_check() -> None:
    floor = _floor(PYPROJECT["project"]["requires-python"])
    # genai-prices carries the price data; a Python it does not support would get an old one.
    needs = importlib.metadata.metadata("genai-prices")["Requires-Python"]
    assert floor >= _floor(needs), f"requires-python {floor} < genai-prices' {needs}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{floor.major}{floor.minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"{floor.major}.{floor.minor}"
    assert sys.version_info[:2] >= (floor.major, floor.minor)


# -- the wheel carries the experiments: `adaptive-router simulate` works when installed -------

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGED = "adaptive_router.simulation.experiments"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The project built as a wheel, the way a user gets it (pip's isolated hatchling build)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (whl,) = out.glob("adaptive_router-*.whl")
    return whl


def test_wheel_ships_the_experiments_and_nothing_imports_the_checkout_folder(
    wheel: pathlib.Path,
) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        sources = {n: z.read(n).decode() for n in names if n.endswith(".py")}
    expected = {f"adaptive_router/simulation/experiments/{n}.py" for n in EXPERIMENT_FILES}
    assert expected <= names, expected - names
    assert not any(n.startswith("simulations/") for n in names)
    importers = [
        name
        for name, text in sources.items()
        for node in ast.walk(ast.parse(text))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "simulations")
        or (
            isinstance(node, ast.Import)
            and any(a.name.split(".")[0] == "simulations" for a in node.names)
        )
    ]
    assert importers == []


EXPERIMENT_FILES = (
    "__init__",
    "_common",
    "chapelle_li",
    "degradation",
    "half_life_sweep",
    "ope_obd",
    "peers",
)


def test_installed_wheel_runs_simulate_from_another_directory(
    wheel: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A fresh venv (not editable) with the wheel; the dependencies come from this venv's
    site-packages through a plain path line (so no registry is needed and the editable
    install's import hook is not loaded). scripts/check_wheel.sh does the full
    ``pip install '.[cli,plot]'`` into an empty venv."""
    env_dir = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=60
    )
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]
    (pathlib.Path(site) / "project_deps.pth").write_text(deps + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(py), "-c", "import adaptive_router; print(adaptive_router.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(site), where  # the wheel's copy, not the checkout's

    cli = subprocess.run(
        [str(env_dir / "bin" / "adaptive-router"), "simulate", "chapelle_li", "--quick"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert (work / "results" / "chapelle_li-quick.md").is_file()
    assert (work / "results" / "chapelle_li-quick.png").stat().st_size > 10_000
    assert "| ε | policy |" in cli.stdout

    mod = subprocess.run(
        [str(py), "-m", f"{PACKAGED}.chapelle_li", "--quick", "--out", "here"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mod.returncode == 0, mod.stderr
    assert (work / "here" / "chapelle_li-quick.md").read_text() in mod.stdout


def test_results_go_to_the_checkout_folder_else_to_results(tmp_path: pathlib.Path) -> None:
    from adaptive_router.simulation.experiments._common import default_results_dir

    assert default_results_dir(tmp_path) == tmp_path / "results"
    (tmp_path / "simulations" / "results").mkdir(parents=True)
    assert default_results_dir(tmp_path) == tmp_path / "simulations" / "results"
    assert default_results_dir(ROOT) == ROOT / "simulations" / "results"


# -- the SDK floors pyproject claims are the versions `make test-sdk-floors` tests ----------


def _requirements() -> dict[str, str]:
    """Every requirement of the project (base and extras), name -> specifier text."""
    project = PYPROJECT["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    specs: dict[str, set[str]] = {}
    for line in lines:
        req = Requirement(line)
        specs.setdefault(req.name, set()).add(str(req.specifier))
    return {name: ",".join(sorted(s)) for name, s in specs.items()}


def test_sdk_floors_in_pyproject_are_the_pinned_versions_the_floor_tests_install() -> None:
    pins = {}
    floors_file = pathlib.Path(__file__).with_name("sdk_floors.txt")
    for line in floors_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip()] = Version(version.strip())
    assert set(pins) == {"openai", "anthropic", "litellm"}
    requirements = _requirements()
    for name, pinned in pins.items():
        spec = requirements[name]
        assert _floor_of(spec) == pinned, f"pyproject's {name}{spec} vs sdk_floors.txt {pinned}"
        assert pinned in SpecifierSet(spec)


def _floor_of(spec: str) -> Version:
    floors = {
        Version(s.version)
        for part in spec.split(",")
        for s in SpecifierSet(part)
        if s.operator == ">="
    }
    (floor,) = floors
    return floor


# -- what the base install holds, and the extras ------------------------------------------

#: Not a runtime extra: tests, benchmarks, peer comparisons, the documentation site.
TOOL_EXTRAS = ("dev", "bench", "peers", "docs", "all")


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def test_all_is_every_runtime_extra_and_dev_holds_them_all() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    runtime = {e: reqs for e, reqs in extras.items() if e not in TOOL_EXTRAS}
    assert {"postgres", "cli", "openai", "anthropic", "metrics", "tracing"} <= set(runtime)
    every = sorted({r for reqs in runtime.values() for r in reqs})
    assert sorted(extras["all"]) == every
    assert set(every) <= set(extras["dev"])  # the tests exercise every extra
    # No extra repeats a base requirement, and the base holds no driver, app or SDK.
    assert _names(PYPROJECT["project"]["dependencies"]).isdisjoint(_names(every))


ROUTING = """
import json, os, sys, tempfile
from adaptive_router import Observability, Path, Result, Router, Usage
from adaptive_router.resilience import RateLimit

def answer():
    return Result(42, Usage(1_000, 200, model="gpt-4o"))

db = os.path.join(tempfile.mkdtemp(), "routing.db")
path = Path(answer, name="a", rate_limit=RateLimit(requests_per_minute=600))
with Router([path], bool, "t", store=f"sqlite:///{db}",
            observability=Observability(metrics=False)) as router:
    assert router.run() == 42
    assert router.costs().cost_usd > 0
    router.stats()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_routing_needs_only_the_base_install() -> None:
    """A SQLite router that rate-limits, retries, prices, reports costs and computes its
    propensities imports no package an extra provides."""
    done = subprocess.run(
        [sys.executable, "-c", ROUTING], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    used = set(json.loads(done.stdout))
    extras = PYPROJECT["project"]["optional-dependencies"]
    provided = _names([r for e, reqs in extras.items() if e not in TOOL_EXTRAS for r in reqs])
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in provided for d in dists)
    }
    assert {"psycopg", "typer", "openai", "prometheus_client", "matplotlib"} <= modules
    assert sorted(used & modules) == []
    assert {"numpy", "sqlalchemy", "genai_prices", "limits", "tenacity"} <= used
    # A Beta propensity needs numpy only (scipy stays a base dependency: feature routers,
    # confidence intervals).
    assert "scipy" not in used
