"""What the package imports only when it is used: public names that load their module on
first access, and the error for an optional dependency that is not installed.

``import adaptive_router`` must stay cheap (an application pays it at every start, a
command line at every ``--help``), so the heavy libraries — numpy for routing, SQLAlchemy
and psycopg for SQL stores, scipy for feature routers and confidence intervals,
genai-prices for prices, Prometheus, OpenTelemetry, Typer and rich — are imported by the
code that needs them, when it runs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = ["install_hint", "lazy_names", "missing_extra", "needs_extra", "require"]


def lazy_names(
    package: str, modules: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A PEP 562 ``__getattr__`` and ``__dir__`` for ``package``: the public names of
    ``modules`` (module -> the names it defines) are imported on first access.

    The package imports the same names under ``if TYPE_CHECKING:``, for type checkers
    and for the architecture test, which sees those edges like any other import. A name
    must not be that of a submodule of the package: importing the submodule would bind
    the module to the name.
    """
    package_module = sys.modules[package]
    source = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = source.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(package_module, name, value)  # later lookups find it without coming here
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(package_module), *source})

    return __getattr__, __dir__


def install_hint(extra: str, feature: str) -> str:
    """The one sentence that says which extra provides ``feature``."""
    return f"{feature} needs the {extra!r} extra: pip install 'adaptive-router[{extra}]'"


def missing_extra(extra: str, feature: str) -> ImportError:
    """The error for ``feature`` when the ``extra`` providing it is not installed."""
    return ImportError(install_hint(extra, feature))


@contextlib.contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Imports in this block come with the ``extra``: a module that is missing raises
    :func:`missing_extra`'s error (the original one chained), naming what to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise missing_extra(extra, feature) from exc


def require(module: str, extra: str, feature: str) -> None:
    """Raise :func:`missing_extra`'s error now when ``module`` is not installed: for a
    feature that imports it later, on first use (it is looked up here, not imported)."""
    if importlib.util.find_spec(module) is None:
        raise missing_extra(extra, feature)
