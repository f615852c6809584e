"""The ``adaptive-router`` command line (console script ``adaptive_router.cli:main``).

:mod:`.app` holds the Typer app and ``main``; :mod:`.common` what every command shares;
the commands are grouped by what they show: :mod:`.posteriors` (``posteriors``,
``stats``), :mod:`.reports` (``costs``, ``plot``), :mod:`.check`, :mod:`.runs` (``demo``,
``simulate``), :mod:`.dashboard` and :mod:`.db` (``db upgrade``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptive_router._checks import redact, redact_url
from adaptive_router._imports import lazy_names, needs_extra

with needs_extra("cli", "The adaptive-router command line"):
    import rich  # noqa: F401
    import typer  # noqa: F401

from adaptive_router.cli.app import app, main
from adaptive_router.cli.check import check_dict, load_target, read_samples
from adaptive_router.cli.common import (
    ENV_DB,
    CLIError,
    parse_duration,
    parse_prior,
    resolve_url,
)
from adaptive_router.cli.db import db_app
from adaptive_router.cli.posteriors import read_posteriors

if TYPE_CHECKING:
    from adaptive_router.reports.summary import posterior_dict, stats_dict
    from adaptive_router.router import stored_half_life

# The library's names load with their modules, not with the command line's --help.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "adaptive_router.reports.summary": ("posterior_dict", "stats_dict"),
        "adaptive_router.router": ("stored_half_life",),
    },
)

__all__ = [
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
