"""A path: one candidate way of doing the task, with its own settings."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adaptive_router.errors import ConfigurationError

MAX_NAME_LENGTH = 255


@dataclass(eq=False)
class Path:
    """Wraps a callable as a routable path.

    ``name`` defaults to the callable's qualified name and must be unique within
    a router; ``model`` names the model the path calls (used for pricing).
    A bare callable given to :class:`Router` becomes ``Path(fn)``.
    """

    fn: Callable[..., Any]
    name: str | None = None
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigurationError(
                f"paths: {self.fn!r} is not callable; pass a function or Path(fn, name=...)"
            )
        if self.name is None:
            self.name = default_name(self.fn)
        check_name("path name", self.name)
        self.is_async = _is_async(self.fn)

    def __repr__(self) -> str:
        return f"Path(name={self.name!r}, model={self.model!r})"


def default_name(fn: Callable[..., Any]) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        name = type(target).__qualname__
    return str(name)


def check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name or not name.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"{what} is {len(name)} characters; the limit is {MAX_NAME_LENGTH}"
        )
    if "\x00" in name:
        raise ConfigurationError(f"{what} {name!r} contains a NUL byte, which databases reject")
    return name


def _is_async(fn: Callable[..., Any]) -> bool:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - async __call__ objects
    )


def as_path(p: Path | Callable[..., Any]) -> Path:
    if isinstance(p, Path):
        return p
    return Path(p)
