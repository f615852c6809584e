"""The page: HTML around the charts, built from :func:`~.data.summary`'s numbers.

Every name that comes from the database (task, path, context, host, error kind, alert
text) goes through :func:`html.escape`; the only script is the few lines that fetch the
page's fragment again every few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import adaptive_router.dashboard.svg as svg

__all__ = ["error_box", "fragment", "page"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:10px 18px;display:flex;gap:18px;
align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}header a{color:#cbd5e1;margin-right:8px}
header a.current{color:#fff;font-weight:600}
main{padding:12px 18px;display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));
gap:14px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px}
section.wide{grid-column:1/-1}h2{font-size:15px;margin:0 0 8px}
h3{font-size:13px;margin:10px 0 4px;color:#444}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:right;padding:3px 6px;border-bottom:1px solid #eee}
th:first-child,td:first-child{text-align:left}
.kpis{display:flex;gap:26px;flex-wrap:wrap}.kpi b{display:block;font-size:22px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;margin:1px}
.closed{background:#d1fae5}.open{background:#fecaca}.half_open{background:#fde68a}
.none{background:#e5e7eb}.stale{background:#e5e7eb;color:#555;font-style:italic}
.error{background:#fee2e2;border:1px solid #f87171;color:#7f1d1d;padding:8px 12px;
margin:12px 18px;border-radius:6px}
.muted,.tick{fill:#666;color:#666;font-size:11px}.label{font-size:12px}
.grid{stroke:#eee}.legend span{margin-right:12px}.swatch{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px}
#status{font-size:12px;color:#cbd5e1}
"""

_SCRIPT = """
(function(){
  var every = %d * 1000;
  function show(html){ document.getElementById('status-box').innerHTML = html; }
  function tick(){
    fetch('fragment' + window.location.search, {cache: 'no-store'}).then(function(r){
      return r.text().then(function(body){
        if (r.ok) {
          document.getElementById('content').innerHTML = body; show('');
          document.getElementById('status').textContent =
            'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
        } else { show(body); }
      });
    }).catch(function(e){
      show('<div class="error">dashboard server unreachable: ' +
           String(e).replace(/[&<>"]/g, '') + '</div>');
    }).finally(function(){ setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return "now"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def _usd(value: float | None) -> str:
    """Dollars, cents from $10; below that four significant digits (at least four
    places): a request's spend is often below $0.0001, which fixed places showed as $0."""
    if value is None:
        return "—"
    if abs(value) >= 10:
        return f"${value:,.2f}"
    if value == 0:
        return "$0"
    places = max(4, 3 - math.floor(math.log10(abs(value))))
    return f"${value:,.{places}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are pre-escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _legend(colors: dict[str, str]) -> str:
    items = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{_e(n)}</span>'
        for n, c in colors.items()
    )
    return f'<div class="legend">{items}</div>'


def _kpis(s: dict[str, Any]) -> str:
    c = s["costs"]
    ok = c["succeeded_requests"] / c["requests"] if c["requests"] else None
    items = [
        ("requests", "requests", f"{c['requests']:,}"),
        ("success", "requests succeeded", _fmt(ok, ".1%")),
        ("cost-per-1000", "cost / 1,000 requests", _usd(c["cost_per_1000_requests"])),
        ("spend", "spend", _usd(c["cost_usd"])),
        ("fallbacks", "requests that fell back", f"{c['fallback_requests']:,}"),
        ("retries", "retries", f"{c['retries']:,}"),
    ]
    cells = "".join(
        f'<div class="kpi"><b id="kpi-{key}">{_e(value)}</b>{_e(text)}</div>'
        for key, text, value in items
    )
    note = (
        f"<p class='muted'>{c['unknown_cost_attempts']:,} attempts of unknown cost are not "
        "in the spend (a lower bound).</p>"
        if c["unknown_cost_attempts"]
        else ""
    )
    return f'<section class="wide"><div class="kpis">{cells}</div>{note}</section>'


def _spend(s: dict[str, Any]) -> str:
    """The spend target's line: target, realized spend per request over the window, λ
    (nothing for a task without a target)."""
    sp = s.get("spend")
    if not sp or sp["target_usd_per_request"] is None:
        return ""
    items = [
        ("spend-target", "spend target / request", _usd(sp["target_usd_per_request"])),
        ("spend-realized", "realized / request (window)", _usd(sp["realized_usd_per_request"])),
        ("spend-price", "price λ per $", _fmt(sp["price_per_usd"], ".4g")),
    ]
    cells = "".join(
        f'<div class="kpi"><b id="kpi-{key}">{_e(value)}</b>{_e(text)}</div>'
        for key, text, value in items
    )
    note = (
        "<p class='muted'>Paths are ranked by drawn success probability minus λ × expected "
        f"cost per attempt; the window holds {sp['window_requests']:,.0f} requests (decayed), "
        "every attempt of a request counted in its spend. λ is 0 while the window spends "
        "under the target.</p>"
    )
    return f'<section class="wide"><div class="kpis">{cells}</div>{note}</section>'


def _posterior_rows(rows: list[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    return [(p["path"], p["mean"], p["interval"][0], p["interval"][1]) for p in rows]


def _posteriors(s: dict[str, Any], colors: dict[str, str]) -> str:
    chart = svg.intervals(
        "posteriors",
        "first-attempt posterior mean and 95% interval",
        _posterior_rows(s["posteriors"]),
        colors,
    )
    table = _table(
        (
            "path",
            "first-attempt mean",
            "95% interval",
            "first attempts",
            "after-a-failure mean",
            "attempts after a failure",
            "traffic share",
        ),
        [
            (
                f'<span class="path">{_e(p["path"])}</span>',
                f"{p['mean']:.3f}",
                f"{p['interval'][0]:.3f}–{p['interval'][1]:.3f}",
                f"{p['n']:,}",
                f"{p['after_failure']['mean']:.3f}",
                f"{p['after_failure']['n']:,}",
                f"{p['traffic_share']:.1%}",
            )
            for p in s["posteriors"]
        ],
        "posteriors",
    )
    hl = s["half_life_s"]
    caption = (
        f"decayed to {_utc(s['until'] if s['until'] is not None else s['now'])}, "
        + ("no decay" if hl is None else f"half-life {hl:g} s")
        + f", prior {s['prior'][0]:g},{s['prior'][1]:g}. First attempts: requests the path "
        "was tried first on (every kind of input: its success rate, which ranks the first "
        "choice). After a failure: its attempts after another path of the request failed "
        "(only the inputs that path failed on, which rank the later positions)."
    )
    per_context = "".join(
        f"<h3>context {_e(ctx)} (its own evidence)</h3>"
        + svg.intervals(
            "posteriors-context", f"posteriors in context {ctx}", _posterior_rows(rows), colors
        )
        for ctx, rows in s["contexts"].items()
    )
    return (
        "<section><h2>Posterior success probability per path (first attempts)</h2>"
        f"{chart}{table}<p class='muted'>{_e(caption)}</p>{per_context}</section>"
    )


def _over_time(s: dict[str, Any], colors: dict[str, str]) -> str:
    ts = s["series"]
    xs = ts["starts"]
    centres = [t + ts["bucket_s"] / 2 for t in xs]
    share = svg.stacked(
        "traffic",
        "traffic share over time",
        xs,
        {p: ts["first_share"][p] for p in ts["paths"]},
        colors,
    )
    rate = svg.lines(
        "success",
        "success rate over time",
        centres,
        ts["success_rate"],
        colors,
        y_max=1.0,
        y_fmt=lambda v: f"{v:.0%}",
    )
    spend = svg.lines(
        "spend", "spend over time", centres, ts["cost_usd"], colors, y_fmt=lambda v: f"${v:.3g}"
    )
    width = f"buckets of {ts['bucket_s']:g} s"
    return (
        f"<section><h2>Traffic share (first attempts)</h2>{_legend(colors)}{share}"
        f"<p class='muted'>{_e(width)}</p></section>"
        f"<section><h2>Success rate per attempt</h2>{_legend(colors)}{rate}</section>"
        f"<section><h2>Spend per bucket</h2>{_legend(colors)}{spend}"
        f"<p class='muted'>{_e(width)}; known costs only</p></section>"
    )


def _cost_and_latency(s: dict[str, Any], colors: dict[str, str]) -> str:
    cost = svg.bars(
        "cost",
        "cost per 1,000 requests",
        [(p["path"], [("", p["cost_per_1000_requests"])]) for p in s["costs"]["paths"]],
        colors,
        fmt=lambda v: f"${v:,.4f}",
    )
    latency = svg.bars(
        "latency",
        "latency p50 and p95",
        [
            (r["path"], [("p50", r["latency_p50_ms"]), ("p95", r["latency_p95_ms"])])
            for r in s["stats"]
        ],
        colors,
        fmt=lambda v: _ms(v),
    )
    return (
        "<section><h2>Cost per 1,000 requests</h2>"
        f"{cost}<p class='muted'>each path's spend divided by the task's requests: "
        "the paths add up to the task's figure</p></section>"
        f"<section><h2>Latency per attempt</h2>{latency}</section>"
    )


def _tables(s: dict[str, Any]) -> str:
    costs = {p["path"]: p for p in s["costs"]["paths"]}
    rows = []
    for r in s["stats"]:
        c = costs.get(r["path"], {})
        rows.append(
            (
                f'<span class="path">{_e(r["path"])}</span>',
                f"{r['attempts']:,}",
                f"{r['first_attempts']:,}",
                f"{c.get('fallback_attempts', 0):,}",
                f"{c.get('retries', 0):,}",
                f"{r['timeouts']:,}",
                _fmt(r["success_rate"], ".1%"),
                _fmt(r["first_success_rate"], ".1%"),
                _fmt(r["after_failure_success_rate"], ".1%"),
                _ms(r["latency_p50_ms"]),
                _ms(r["latency_p95_ms"]),
                _usd(r["cost_usd"]),
            )
        )
    paths = _table(
        (
            "path",
            "attempts",
            "first",
            "fallback",
            "retries",
            "timeouts",
            "success",
            "first-attempt success",
            "success after a failure",
            "p50",
            "p95",
            "spend",
        ),
        rows,
        "paths",
    )
    kinds = sorted({k for r in s["stats"] for k in r["errors"]})
    errors = (
        _table(
            ("path", *kinds),
            [
                (
                    f'<span class="path">{_e(r["path"])}</span>',
                    *(f"{r['errors'].get(k, 0):,}" for k in kinds),
                )
                for r in s["stats"]
            ],
            "errors",
        )
        if kinds
        else "<p class='muted'>no failed attempts in this window</p>"
    )
    return (
        '<section class="wide"><h2>Paths: fallbacks, retries, latency</h2>'
        f"{paths}</section>"
        f'<section class="wide"><h2>Failed attempts by error kind</h2>{errors}</section>'
    )


def _fleet(s: dict[str, Any]) -> str:
    rows = []
    for h in s["health"]:
        badges = " ".join(
            f'<span class="badge {_e(state)}">{_e(path)}: {_e(state)}</span>'
            for path, state in h["breakers"].items()
        )
        status = (
            f'<span class="badge stale">stale ({h["age_s"]:,.0f} s)</span>'
            if h["stale"]
            else f'<span class="badge closed">live ({h["age_s"]:,.0f} s ago)</span>'
        )
        rows.append(
            (
                _e(h["host"]),
                _e(h["pid"]),
                _e(h["router_id"][:8]),
                _e(_utc(h["updated_at"])),
                status,
                badges or "—",
            )
        )
    body = (
        _table(("host", "pid", "router", "last beat", "status", "breakers"), rows, "fleet")
        if rows
        else "<p class='muted'>no router of this task is beating (none running, or all "
        "gone longer than the heartbeat TTL)</p>"
    )
    return f'<section class="wide"><h2>Circuit breakers across the fleet</h2>{body}</section>'


def _alerts(s: dict[str, Any]) -> str:
    if not s["alerts"]:
        body = "<p class='muted'>no recent alerts from the running routers</p>"
    else:
        body = _table(
            ("when", "kind", "path", "message", "host"),
            [
                (
                    _e(_utc(a.get("at"))),
                    _e(a.get("kind")),
                    _e(a.get("path") or "—"),
                    _e(a.get("message")),
                    f"{_e(a.get('host'))}:{_e(a.get('pid'))}",
                )
                for a in s["alerts"]
            ],
            "alerts",
        )
    return f'<section class="wide"><h2>Recent alerts</h2>{body}</section>'


def fragment(s: dict[str, Any]) -> str:
    """The refreshable part of the page for one task's summary."""
    names = sorted(
        {p["path"] for p in s["posteriors"]}
        | {r["path"] for r in s["stats"]}
        | set(s["series"]["paths"])
    )
    colors = svg.color_of(names)
    return (
        _kpis(s)
        + _spend(s)
        + _over_time(s, colors)
        + _posteriors(s, colors)
        + _cost_and_latency(s, colors)
        + _tables(s)
        + _fleet(s)
        + _alerts(s)
    )


def error_box(message: str) -> str:
    """The error the page shows (database down, unknown task)."""
    return f'<div class="error" role="alert">{_e(message)}</div>'


def page(
    task: str | None,
    tasks: Sequence[str],
    since: str,
    body: str,
    error: str | None,
    refresh_s: int,
    query: str,
    nonce: str,
    now: float,
) -> str:
    """The whole page: header with the task links, status, the fragment, the script."""
    links = "".join(
        f'<a class="{"current" if t == task else ""}" '
        f'href="?{_e(query_for(t, since, query))}">{_e(t)}</a>'
        for t in tasks
    )
    title = f"adaptive-router · {task}" if task else "adaptive-router"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><span>window: {_e(since)}</span>"
        f'<nav>{links}</nav><span id="status">updated {_e(_utc(now))}</span></header>'
        f'<div id="status-box">{error_box(error) if error else ""}</div>'
        f'<main id="content">{body}</main>'
        f'<script nonce="{_e(nonce)}">{_SCRIPT % refresh_s}</script></body></html>'
    )


def query_for(task: str, since: str, query: str) -> str:
    """The query string of a task's page, keeping the token (if any) of ``query``."""
    kept = [(k, v) for k, v in parse_qsl(query) if k == "token"]
    return urlencode([("task", task), ("since", since), *kept])
