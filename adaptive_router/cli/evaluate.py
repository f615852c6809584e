"""``evaluate``: what another policy would have scored on a task's logged traffic.

Every number comes from :func:`adaptive_router.ope.evaluation.evaluate`. Below the minimum
effective sample size there is no estimate: the reason goes to stderr and the exit code is
2, unless ``--allow-low-ess`` (then the estimate is printed with a warning). Requests
skipped for an unknown reward are counted on stderr; more than ``--max-missing-reward``
of them is an error.
"""

from __future__ import annotations

import json
import time
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
    fail,
    make_table,
    one_line_errors,
    open_store,
    parse_duration,
    print_json,
    resolve_url,
    unknown_task,
)
from adaptive_router.ope.evaluation import (
    MAX_MISSING_REWARD,
    METHODS,
    REWARDS,
    Evaluation,
)
from adaptive_router.ope.evaluation import (
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
    allow_low_ess: Annotated[
        bool,
        typer.Option(
            "--allow-low-ess",
            help="Print the estimate even below the minimum effective sample size (with a "
            "warning) instead of exiting with code 2.",
        ),
    ] = False,
    max_missing_reward: Annotated[
        float,
        typer.Option(
            "--max-missing-reward",
            help="Largest share of requests that may be skipped for an unknown cost or "
            "latency before refusing.",
        ),
    ] = MAX_MISSING_REWARD,
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
        if not 0.0 <= max_missing_reward <= 1.0:
            raise CLIError(f"--max-missing-reward must be in [0, 1], got {max_missing_reward}", 2)
        url = resolve_url(db, must_exist=True)
        with open_store(url) as store:
            if task not in store.tasks():
                raise unknown_task(store, task, url)
            try:
                result = evaluate_store(
                    store,
                    task,
                    goal,
                    window=window,
                    method=method,  # type: ignore[arg-type]  # checked above
                    reward=reward,
                    now=time.time(),
                    max_missing_reward=max_missing_reward,
                )
            except ValueError as exc:
                raise CLIError(str(exc), 1) from None
    notes = _notes(result, max_missing_reward)
    data = result.as_dict()
    if result.reason is not None and allow_low_ess:
        data["value"] = result.estimate.value
        notes.append(
            f"effective sample size {result.effective_sample_size:.1f} is below the minimum "
            f"{result.min_ess:g}: this estimate rests on a handful of requests and is shown "
            "only because of --allow-low-ess; read the interval, not the point"
        )
    if json_out:
        print_json({**data, "warnings": notes})
    else:
        for note in notes:
            console_err().print(f"[yellow]warning:[/] {escape(note)}")
        if result.reason is None or allow_low_ess:
            console_out().print(_table(result, data["value"], task, url))
    if result.reason is not None and not allow_low_ess:
        fail(result.reason, 2, url)


def _notes(result: Evaluation, limit: float) -> list[str]:
    """Warnings for stderr (and ``warnings`` in ``--json``)."""
    if not result.missing_reward:
        return []
    what = "cost" if result.reward.endswith("cost") else "latency"
    return [
        f"{result.missing_reward} of {result.rows + result.missing_reward} logged requests "
        f"({result.missing_share:.1%}) skipped: unknown {what} (at most "
        f"--max-missing-reward {limit:g} may be)"
    ]


def _table(result: Evaluation, value: float, task: str, url: str) -> Any:
    e = result.estimate
    unit = {"success": "", "attempt_cost": " USD", "cost": " USD"}.get(result.reward, " ms")
    low_ess = " (low ESS)" if result.reason is not None else ""
    rows = [
        [
            escape(result.target),
            f"{value:.4g}{unit}{low_ess}",
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
            "computed now. 'logged' is what the router got on the same rows. The interval is "
            "never narrower than the effective sample size supports; below an effective "
            f"sample size of {result.min_ess:g} there is no estimate without --allow-low-ess."
        ),
    )
