"""Verdicts on a path's result: ``success_fn`` (pass/fail) or ``score_fn`` (0..1)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from adaptive_router._checks import error_text, short
from adaptive_router.feedback.reporter import as_score, as_verdict
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.outcomes import UNJUDGED, ErrorKind
from adaptive_router.paths import Path

__all__ = ["Judge", "Verdict", "is_empty"]

#: ``(kind, error, score)``: kind None means success.
Verdict = tuple[str | None, str | None, float | None]


def is_empty(result: Any) -> bool:
    """None, a blank string or an empty container: a rejection is then ``empty``."""
    if result is None:
        return True
    if isinstance(result, str):
        return not result.strip()
    if isinstance(result, (list, tuple, dict, set, bytes)):
        return len(result) == 0
    return False


class Judge:
    """Applies ``success_fn`` or ``score_fn`` (exactly one is set). ``mean(path, context,
    attempt)`` gives the evidence of an unknown score (the path's posterior mean at the
    attempt's position: first, or after a failure); ``log`` carries
    its lines (throttled for judges that raise) under the router's logger name."""

    def __init__(
        self,
        task: str,
        success_fn: Callable[[Any], Any] | None,
        score_fn: Callable[[Any], Any] | None,
        min_score: float,
        mean: Callable[[Path, str, int], float],
        log: ThrottledLog,
    ) -> None:
        self.task = task
        self.success_fn = success_fn
        self.score_fn = score_fn
        self.min_score = min_score
        self.mean = mean
        self.log = log
        self._warned_invalid = False

    @property
    def name(self) -> str:
        """``"score_fn"`` or ``"success_fn"``: the judge in use, for messages."""
        return "score_fn" if self.score_fn is not None else "success_fn"

    def __call__(
        self, rid: str, path: Path, result: Any, context: str = "", attempt: int = 1
    ) -> Verdict:
        """The verdict on ``result`` of ``path`` for attempt ``attempt`` of request ``rid``."""
        if self.score_fn is not None:
            return self._score(rid, path, result, context, attempt)
        assert self.success_fn is not None
        try:
            verdict = self.success_fn(result)
        except Exception as exc:
            return self._raised("success_fn", rid, path, exc)
        ok = as_verdict(verdict)
        if ok is None:
            error = f"success_fn returned {type(verdict).__name__}, expected bool or 0/1"
            self._warn_invalid(error, path)
            return ErrorKind.INVALID_SUCCESS.value, error, None
        if not ok:
            return (ErrorKind.EMPTY if is_empty(result) else ErrorKind.REJECTED).value, None, None
        return None, None, None

    def _warn_invalid(self, error: str, path: Path) -> None:
        if not self._warned_invalid:
            self._warned_invalid = True
            self.log.logger.warning(
                "%s (path %s of task %s; warned once)",
                error,
                path.name,
                self.task,
                extra={"task": self.task, "path": path.name},
            )

    def _raised(self, which: str, rid: str, path: Path, exc: Exception) -> tuple[str, str, None]:
        """A judge that raised: the judge's bug, not the path's. The attempt is recorded as
        ``success_fn_error`` (no evidence, see ``NOT_EVIDENCE``) and its traceback logged,
        the first per path and window; the rest are counted into a summary line."""
        error = f"{which} raised " + error_text(exc)
        self.log.log(
            ("judge", path.name),
            "%s raised on path %s of task %s: %s (not counted against the path; "
            "the next path is tried)",
            (which, path.name, self.task, short(error_text(exc))),
            "%s raised on path %s of task %s %d more times in the last %g s",
            (which, path.name, self.task),
            {"request_id": rid, "task": self.task, "path": path.name, "error": error},
            level=logging.ERROR,
            exc_info=exc,
        )
        return ErrorKind.SUCCESS_FN_ERROR.value, error, None

    def _score(self, rid: str, path: Path, result: Any, context: str, attempt: int) -> Verdict:
        assert self.score_fn is not None
        try:
            raw = self.score_fn(result)
        except Exception as exc:
            return self._raised("score_fn", rid, path, exc)
        if raw is None:
            # Unknown (e.g. an LLM judge that could not grade): the attempt passes, and its
            # evidence is the path's current posterior mean at the attempt's position, which
            # leaves that mean as it is.
            self.log.logger.info(
                "score unknown: score_fn returned None for path %s of task %s",
                path.name,
                self.task,
                extra={"request_id": rid, "task": self.task, "path": path.name},
            )
            return (
                None,
                f"{UNJUDGED}: score_fn returned None",
                self.mean(path, context, attempt),
            )
        score = as_score(raw)
        if score is None:
            error = f"score_fn returned {raw!r:.60}, expected a number in [0, 1]"
            self._warn_invalid(error, path)
            # Counted as a zero-score failure: a broken scorer must not look like success.
            return ErrorKind.INVALID_SCORE.value, error, 0.0
        if score < self.min_score:
            kind = ErrorKind.EMPTY if is_empty(result) else ErrorKind.REJECTED
            return kind.value, None, score
        return None, None, score
