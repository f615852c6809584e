"""Rate limits for repetitive log lines: the first of a kind per window, then a count.

A path that fails on every request would otherwise log on every request; the first line
of each key (e.g. a fallback's ``(from, to, reason)``) per window keeps the reason visible,
and a summary line with the number of lines held back replaces the rest. Metrics and
observers are not throttled: they count every event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from adaptive_router import forks


@dataclass(slots=True)
class _Window:
    started: float
    suppressed: int = 0


class LogThrottle:
    """Decides, per key, which events to log within windows of ``window_s`` seconds of
    ``clock``. Thread-safe; holds one small entry per key seen."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        self.window_s = float(window_s)
        self.clock = clock
        self._windows: dict[Hashable, _Window] = {}
        self._lock = threading.Lock()
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    def admit(self, key: Hashable) -> tuple[bool, int]:
        """``(log_it, held_back)``: whether to log this event, and how many events of the
        key the window that just ended held back (to report in a summary line before it).

        The first event of a key, and the first after its window ended, is logged; the
        others in the window are counted.
        """
        now = self.clock()
        with self._lock:
            w = self._windows.get(key)
            if w is None:
                self._windows[key] = _Window(now)
                return True, 0
            if now - w.started < self.window_s:
                w.suppressed += 1
                return False, 0
            held = w.suppressed
            self._windows[key] = _Window(now)
            return True, held

    def drain(self) -> list[tuple[Hashable, int]]:
        """Keys with events held back in their current window, and their counts (reset):
        for a final summary when the logger's owner closes."""
        with self._lock:
            out = [(k, w.suppressed) for k, w in self._windows.items() if w.suppressed]
            for k, _ in out:
                self._windows[k].suppressed = 0
        return out


class ThrottledLog:
    """Logs through ``logger`` with a :class:`LogThrottle`: each key's first line per
    window, then (when the window has passed, or at :meth:`close`) a summary with the
    count held back."""

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float,
        clock: Callable[[], float],
        on_suppressed: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.logger = logger
        self.throttle = LogThrottle(window_s, clock)
        #: key -> (logger, level, summary format, its args, extra) of the throttled lines.
        self._summaries: dict[
            Hashable, tuple[logging.Logger, int, str, tuple[Any, ...], dict[str, Any]]
        ] = {}
        #: Called with the key of each line held back (e.g. to count them in metrics).
        self.on_suppressed = on_suppressed

    def log(
        self,
        key: Hashable,
        msg: str,
        args: tuple[Any, ...],
        summary: str,
        summary_args: tuple[Any, ...],
        extra: dict[str, Any],
        *,
        level: int = logging.WARNING,
        exc_info: BaseException | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Log ``msg`` the first time per ``key`` and window; ``summary`` is formatted with
        its args + the count held back + the window seconds. ``logger``: another logger
        than this one's for the lines of this key (a collaborator's module logger)."""
        log_it, held = self.throttle.admit(key)
        to = logger if logger is not None else self.logger
        self._summaries[key] = (to, level, summary, summary_args, extra)
        window = self.throttle.window_s
        if held:
            to.log(level, summary, *summary_args, held, window, extra={**extra, "count": held})
        if log_it:
            to.log(level, msg, *args, exc_info=exc_info, extra=extra)
        elif self.on_suppressed is not None:
            self.on_suppressed(key)

    def close(self) -> None:
        """Log the summaries of every window still holding lines back."""
        for key, held in self.throttle.drain():
            to, level, summary, args, extra = self._summaries[key]
            to.log(
                level,
                summary,
                *args,
                held,
                self.throttle.window_s,
                extra={**extra, "count": held},
            )
