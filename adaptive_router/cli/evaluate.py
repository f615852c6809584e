"""``evaluate``: what another policy would have scored on a task's logged traffic.

Every number comes from :func:`adaptive_router.evaluation.evaluate`.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Annotated, Any

import typer
from rich.markup import escape

from adaptive_router._checks import redact_url
from adaptive_router.cli.common import (
    CLIError,
    DbOption,
    JsonOption,
    TaskOption,
    console_err,
    console_out,
    make_table,
    one_line_errors,
    open_store,
    parse_duration,
    print_json,
    resolve_url,
    unknown_task,
)
from adaptive_router.evaluation import (
    METHODS,
    REWARDS,
    Evaluation,
    LowEffectiveSampleSize,
)
from adaptive_router.evaluation import (
    evaluate as evaluate_store,
)


def parse_target(text: str) -> str | dict[str, float]:
    """``--target``: a path or objective name, or a JSON object ``{"path": probability}``."""
    text = text.strip()
    if not text.startswith("{"):
        if not text:
            raise ValueError("--target is empty: give a path name, an objective or JSON")
        return text
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(
            f'--target {text!r} is not valid JSON; write e.g. \'{{"gpt-4o": 0.5, "claude": 0.5}}\''
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()
    ):
        raise ValueError('--target JSON must map path names to probabilities: {"path": 1.0}')
    return {str(k): float(v) for k, v in data.items()}


def evaluate(
    db: DbOption,
    task: TaskOption,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="A path name (always first), an objective (success, cost, latency) or "
            'JSON {"path": probability, ...}.',
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window: 30s, 15m, 1h, 2d, 1w (default: everything)."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help=f"Estimator: {', '.join(METHODS)}.")
    ] = "snips",
    reward: Annotated[str, typer.Option("--reward", help=f"Reward: {', '.join(REWARDS)}.")] = (
        "success"
    ),
    json_out: JsonOption = False,
) -> None:
    """Estimate a target policy's success rate (or cost, latency) on the logged requests."""
    with one_line_errors(db):
        try:
            window = parse_duration(since) if since is not None else None
            goal = parse_target(target)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        if method not in METHODS:
            raise CLIError(f"--method must be one of {', '.join(METHODS)}, got {method!r}", 2)
        if reward not in REWARDS:
            raise CLIError(f"--reward must be one of {', '.join(REWARDS)}, got {reward!r}", 2)
        url = resolve_url(db, must_exist=True)
        with open_store(url) as store:
            if task not in store.tasks():
                raise unknown_task(store, task, url)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", LowEffectiveSampleSize)
                try:
                    result = evaluate_store(
                        store,
                        task,
                        goal,
                        window=window,
                        method=method,  # type: ignore[arg-type]  # checked above
                        reward=reward,
                        now=time.time(),
                    )
                except ValueError as exc:
                    raise CLIError(str(exc), 1) from None
    low_ess = [str(w.message) for w in caught if issubclass(w.category, LowEffectiveSampleSize)]
    if json_out:
        print_json({**result.as_dict(), "warnings": low_ess})
        return
    for message in low_ess:
        console_err().print(f"[yellow]warning:[/] {escape(message)}")
    console_out().print(_table(result, task, url))


def _table(result: Evaluation, task: str, url: str) -> Any:
    e = result.estimate
    unit = {"success": "", "attempt_cost": " USD", "cost": " USD"}.get(result.reward, " ms")
    rows = [
        [
            escape(result.target),
            f"{e.value:.4g}{unit}",
            f"{e.low:.4g} – {e.high:.4g}",
            f"{result.logged:.4g}{unit}",
            f"{e.n:,}",
            f"{e.effective_sample_size:,.0f}",
        ]
    ]
    return make_table(
        f"evaluate · task {task} · {result.reward} · {e.method} · {redact_url(url)}",
        ("target", "estimate", "95% interval", "logged", "rows", "effective\nsample size"),
        rows,
        caption=(
            f"{result.without_propensity} requests without a logged decision skipped, "
            f"{result.missing_reward} without a known reward; {result.computed} propensities "
            "computed now. 'logged' is what the router got on the same rows."
        ),
    )
