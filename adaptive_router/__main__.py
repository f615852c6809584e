"""The ``adaptive-router`` console script (and ``python -m adaptive_router``).

Outside :mod:`adaptive_router.cli` on purpose: importing that package needs the ``cli``
extra, and without it a console script pointing into it would die in a chained
traceback before any code of ours could say which extra to install.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line, or say in one line which extra it needs (exit status 1)."""
    try:
        from adaptive_router.cli import main as cli_main
    except ImportError as exc:
        if "extra" not in str(exc):  # not a missing extra: a real bug, shown whole
            raise
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    cli_main(argv)


if __name__ == "__main__":
    main()
