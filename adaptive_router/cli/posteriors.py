"""``posteriors`` and ``stats``: what the router learned and how its paths did.

Every number comes from the library (the store, ``posteriors_from_states``,
``window_stats``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from adaptive_router._checks import redact_url
from adaptive_router.cli.common import (
    CLIError,
    ContextOption,
    DbOption,
    JsonOption,
    TaskOption,
    console_out,
    fmt_ms,
    fmt_number,
    make_table,
    one_line_errors,
    open_store,
    parse_duration,
    parse_prior,
    print_json,
    resolve_url,
    unknown_task,
    utc_time,
)
from adaptive_router.outcomes import Posterior
from adaptive_router.stores import FeatureEvidence

if TYPE_CHECKING:
    from adaptive_router.policies.pacing import SpendStatus
    from adaptive_router.stores.sql import SQLStore


def read_posteriors(
    store: SQLStore, task: str, prior: tuple[float, float], now: float, context: str = ""
) -> tuple[list[Posterior], float | None]:
    """Posteriors of every path stored for ``task`` (one context's own evidence when
    ``context`` is given) decayed to ``now``, and the half-life."""
    # The library loads with the command, not with the command line's --help.
    from adaptive_router.stores.evidence import posteriors_from_states, stored_half_life

    states = store.load(task, context)
    half_life = stored_half_life(states)
    names = sorted(states)
    return posteriors_from_states(states, names, prior, half_life, now), half_life


def _spend_line(spend: SpendStatus) -> str:
    realized = spend.realized_usd_per_request
    return (
        f"spend target {spend.target_usd_per_request:.6g} USD per request; realized "
        f"{'—' if realized is None else format(realized, '.6g')} USD per request over the "
        f"window ({spend.window_requests:,.0f} requests, decayed; every attempt of a request "
        f"counts); price λ = {spend.price_per_usd:.6g} per USD (0: spending under the "
        f"target); all time {spend.requests:,} requests, {spend.spend_usd:.6g} USD"
    )


def _half_life_text(half_life: float | None) -> str:
    return "no decay" if half_life is None else f"half-life {half_life:g} s"


def posteriors(
    db: DbOption,
    task: TaskOption,
    json_out: JsonOption = False,
    prior: Annotated[
        str, typer.Option("--prior", help="Beta prior 'alpha,beta' the router uses.")
    ] = "1,1",
    context: ContextOption = "",
) -> None:
    """Each path's Beta posteriors now: of its first attempts (alpha, beta, mean, 95%
    interval, counts) and of its attempts after a failure (mean, counts), traffic share, and
    the expected cost and latency per attempt the cost and latency objectives rank by."""
    with one_line_errors(db):
        try:
            prior_ab = parse_prior(prior)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        url = resolve_url(db, must_exist=True)
        with open_store(url) as store:
            now = time.time()
            posts, half_life = read_posteriors(store, task, prior_ab, now, context)
            if not posts:
                if context and task in store.tasks():
                    raise CLIError(f"task {task!r} has no evidence in context {context!r}", 1)
                raise unknown_task(store, task, url)
            from adaptive_router.reports.summary import read_spend, with_spend_penalties

            spend = read_spend(store, task, half_life, now)
            if spend is not None and spend.target_usd_per_request is None:
                spend = None  # no target: nothing is paced
            if not context:
                posts = with_spend_penalties(posts, spend)
            # A feature router ranks the first choice by its linear models instead.
            by_features = isinstance(store, FeatureEvidence) and bool(store.load_features(task))
    if json_out:
        from adaptive_router.reports.summary import posterior_dict

        # A list of paths, as before (each row with its spend_penalty under a target);
        # the target's own figures are in the table's caption and the dashboard's
        # /api/summary ("spend").
        print_json([posterior_dict(p) for p in posts])
        return
    rows = []
    for p in posts:
        lo, hi = p.interval
        after = p.after_failure
        rows.append(
            [
                p.path,
                f"{p.alpha:.2f}",
                f"{p.beta:.2f}",
                f"{p.mean:.3f}",
                f"{lo:.3f}–{hi:.3f}",
                str(p.n),
                str(p.successes),
                str(p.failures),
                f"{after.mean:.3f}",
                str(after.n),
                str(after.successes),
                f"{p.traffic_share:.1%}",
                fmt_number(p.expected_cost_usd, ".6g"),
                fmt_ms(p.expected_latency_ms),
                *([fmt_number(p.spend_penalty, ".4g")] if spend is not None else []),
            ]
        )
    table = make_table(
        f"posteriors · task {task} · {redact_url(url)}",
        (
            "path",
            "alpha",
            "beta",
            "first\nattempt\nmean",
            "95%\ninterval",
            "n",
            "successes",
            "failures",
            "after a\nfailure\nmean",
            "after a\nfailure\nn",
            "after a\nfailure\nsuccesses",
            "traffic\nshare",
            "expected\ncost USD",
            "expected\nlatency ms",
            *(["spend\npenalty\nλ·cost"] if spend is not None else []),
        ),
        rows,
        caption=(
            f"decayed to {utc_time(now)} ({_half_life_text(half_life)}, "
            f"prior {prior_ab[0]:g},{prior_ab[1]:g}). alpha, beta, mean, interval, n, "
            "successes, failures: first attempts (requests this path was tried first on: "
            "every kind of input, its success rate; "
            + (
                "a feature router ranks the first choice by its per-path linear models of "
                "the request's features, whose bias starts from them (Router.posteriors() "
                "shows each path's most influential features); "
                if by_features
                else "the first choice is ranked by them); "
            )
            + "after a failure: its attempts after another path of the request failed (only "
            "the inputs that path failed on; the later positions are ranked by them). n and "
            "the success and failure counts are all-time; traffic share is of recent "
            "attempts, both kinds; expected cost and latency are decayed means per attempt, "
            "— where none was measured; a final fallback's row is its record only: it is "
            "always tried last, never ranked" + ("" if spend is None else ". " + _spend_line(spend))
        ),
    )
    console_out().print(table)


def stats(
    db: DbOption,
    task: TaskOption,
    since: Annotated[
        str, typer.Option("--since", help="Window: 30s, 15m, 1h, 2d, 1w (back from now).")
    ] = "1h",
    json_out: JsonOption = False,
    context: ContextOption = "",
) -> None:
    """Per-path attempts and success rates (all, first attempts, after a failure), timeouts,
    latency, tokens and cost over a window."""
    with one_line_errors(db):
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        url = resolve_url(db, must_exist=True)
        with open_store(url) as store:
            start = time.time() - window.total_seconds()
            rows = store.window_stats(task, start, context=context or None)
            if not rows and task not in store.tasks():
                raise unknown_task(store, task, url)
    if json_out:
        from adaptive_router.reports.summary import stats_dict

        print_json([stats_dict(s) for s in rows])
        return
    if not rows:
        console_out().print(f"no outcomes for task {escape(task)} since {utc_time(start)}")
        return
    table = make_table(
        f"stats · task {task} · since {utc_time(start)} ({since})",
        (
            "path",
            "attempts",
            "successes",
            "success\nrate",
            "first\nattempts",
            "first\nattempt\nsuccess",
            "after a\nfailure\nattempts",
            "after a\nfailure\nsuccess",
            "timeouts",
            "p50\nms",
            "p95\nms",
            "input\ntokens",
            "output\ntokens",
            "cost\nUSD",
        ),
        [
            [
                s.path,
                str(s.attempts),
                str(s.successes),
                fmt_number(s.success_rate, ".1%"),
                str(s.first_attempts),
                fmt_number(s.first_success_rate, ".1%"),
                str(s.after_failure_attempts),
                fmt_number(s.after_failure_success_rate, ".1%"),
                str(s.timeouts),
                fmt_ms(s.latency_p50_ms),
                fmt_ms(s.latency_p95_ms),
                fmt_number(s.input_tokens, "d"),
                fmt_number(s.output_tokens, "d"),
                fmt_number(s.cost_usd, ".4f"),
            ]
            for s in rows
        ],
        caption=(
            "first attempts: requests this path was tried first on (every kind of input: "
            "its success rate); after a failure: its attempts after another path of the "
            "request failed (only the inputs that path failed on); — where there were none"
        ),
    )
    console_out().print(table)
