"""Charts drawn on the server as inline SVG: time series, stacked shares, intervals, bars.

Hand-written rather than a plotting library's: matplotlib takes ~0.2 s and ~100 KB per
SVG figure, too slow and heavy for a page that redraws every few seconds, and the small
JavaScript chart libraries would have to be loaded from a CDN or vendored. These few
shapes are plain SVG elements; every label goes through :func:`html.escape`, so a path
named ``<script>`` is drawn as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape

__all__ = ["PALETTE", "bars", "color_of", "intervals", "lines", "stacked"]

#: Colour-blind-safe (Okabe–Ito), then greys for the rest.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
W, H = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
Number = float | None
#: Width of the name column of the per-path charts, and the names' length that fits.
NAME_W, NAME_CHARS = 180, 24


def _short(name: str) -> str:
    # The full name is in the element's <title> tooltip and in the tables.
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def color_of(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name (by position in ``names``)."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg(kind: str, label: str, body: list[str], height: int = H) -> str:
    return (
        f'<svg class="chart" data-chart="{_e(kind)}" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def _empty(kind: str, label: str, text: str) -> str:
    return _svg(
        kind,
        label,
        [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="muted">{_e(text)}</text>'],
    )


def _time_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%m-%d %H:%M") if span > 86400 else d.strftime("%H:%M")


def _frame(
    x0: float, x1: float, y_max: float, y_fmt: Callable[[float], str], plot_h: int = H
) -> list[str]:
    """Axes, horizontal grid lines with labels and time ticks."""
    out: list[str] = []
    inner_h = plot_h - TOP - BOTTOM
    for i in range(5):
        v = y_max * i / 4
        y = TOP + inner_h - inner_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_e(y_fmt(v))}</text>"
        )
    span = max(x1 - x0, 1e-9)
    for i in range(5):
        t = x0 + span * i / 4
        x = LEFT + (W - LEFT - RIGHT) * i / 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        out.append(
            f'<text x="{x:.1f}" y="{plot_h - 8}" text-anchor="{anchor}" class="tick">'
            f"{_e(_time_label(t, span))}</text>"
        )
    return out


def _scale(
    x0: float, x1: float, y_max: float, plot_h: int = H
) -> tuple[Callable[[float], float], Callable[[float], float]]:
    inner_w, inner_h = W - LEFT - RIGHT, plot_h - TOP - BOTTOM
    span = max(x1 - x0, 1e-9)
    y_top = y_max if y_max > 0 else 1.0
    return (
        lambda t: LEFT + (t - x0) / span * inner_w,
        lambda v: TOP + inner_h - min(max(v / y_top, 0.0), 1.0) * inner_h,
    )


def lines(
    kind: str,
    label: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[Number]],
    colors: Mapping[str, str],
    *,
    y_max: float | None = None,
    y_fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """One polyline per series over time (a gap where a value is None or NaN)."""
    finite = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    if not xs or not finite:
        return _empty(kind, label, "no data in this window")
    top = y_max if y_max is not None else (max(finite) * 1.1 or 1.0)
    x0, x1 = xs[0], xs[-1] if len(xs) > 1 else xs[0] + 1.0
    sx, sy = _scale(x0, x1, top)
    body = _frame(x0, x1, top, y_fmt)
    for name, values in series.items():
        run: list[str] = []
        runs: list[list[str]] = []
        for t, v in zip(xs, values, strict=False):
            if v is None or not math.isfinite(v):
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{sx(t):.1f},{sy(v):.1f}")
        if run:
            runs.append(run)
        color = colors.get(name, "#777")
        for r in runs:
            if len(r) == 1:
                x, y = r[0].split(",")
                body.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>')
            else:
                body.append(
                    f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" '
                    f'stroke-width="2"><title>{_e(name)}</title></polyline>'
                )
    return _svg(kind, label, body)


def stacked(
    kind: str,
    label: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    colors: Mapping[str, str],
) -> str:
    """Shares stacked to 1 over time, one band per series (step per bucket)."""
    if not xs or not series:
        return _empty(kind, label, "no data in this window")
    width = xs[1] - xs[0] if len(xs) > 1 else 1.0
    x0, x1 = xs[0], xs[-1] + width
    sx, sy = _scale(x0, x1, 1.0)
    body = _frame(x0, x1, 1.0, lambda v: f"{v:.0%}")
    base = [0.0] * len(xs)
    for name, values in series.items():
        tops = [b + v for b, v in zip(base, values, strict=False)]
        upper = []
        lower = []
        for i, t in enumerate(xs):
            upper += [f"{sx(t):.1f},{sy(tops[i]):.1f}", f"{sx(t + width):.1f},{sy(tops[i]):.1f}"]
            lower += [f"{sx(t):.1f},{sy(base[i]):.1f}", f"{sx(t + width):.1f},{sy(base[i]):.1f}"]
        points = " ".join(upper + lower[::-1])
        body.append(
            f'<polygon points="{points}" fill="{colors.get(name, "#777")}" fill-opacity="0.85">'
            f"<title>{_e(name)}</title></polygon>"
        )
        base = tops
    return _svg(kind, label, body)


def intervals(
    kind: str,
    label: str,
    rows: Sequence[tuple[str, float, float, float]],
    colors: Mapping[str, str],
) -> str:
    """Per row ``(name, mean, low, high)`` on a 0–1 axis: a dot and its interval."""
    if not rows:
        return _empty(kind, label, "no evidence yet")
    name_w = NAME_W
    row_h = 26
    height = TOP + BOTTOM + row_h * len(rows)
    inner = W - name_w - RIGHT

    def sx(v: float) -> float:
        return name_w + min(max(v, 0.0), 1.0) * inner

    body: list[str] = []
    for i in range(5):
        x = name_w + inner * i / 4
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="tick">'
            f"{i * 25}%</text>"
        )
    for i, (name, mean, lo, hi) in enumerate(rows):
        y = TOP + row_h * i + row_h / 2
        color = colors.get(name, "#777")
        shown = _short(name)
        body.append(
            f'<text x="{name_w - 8}" y="{y + 4:.1f}" text-anchor="end" class="label">'
            f"{_e(shown)}</text>"
            f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="4" stroke-linecap="round"/>'
            f'<circle cx="{sx(mean):.1f}" cy="{y:.1f}" r="6" fill="{color}" stroke="#fff">'
            f"<title>{_e(name)}: {mean:.3f} ({lo:.3f}–{hi:.3f})</title></circle>"
        )
    return _svg(kind, label, body, height)


def bars(
    kind: str,
    label: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, Number]]]],
    colors: Mapping[str, str],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Horizontal bars: per row ``(name, [(measure, value), ...])``, one bar per measure
    (a darker shade for each later measure), the value written at the bar's end."""
    values = [v for _, ms in rows for _, v in ms if v is not None and math.isfinite(v)]
    if not rows or not values:
        return _empty(kind, label, "no data in this window")
    top = max(values) or 1.0
    name_w, bar_h = NAME_W, 12
    per = max(len(ms) for _, ms in rows)
    row_h = per * (bar_h + 2) + 10
    height = TOP + BOTTOM + row_h * len(rows)
    inner = W - name_w - RIGHT - 70
    body: list[str] = []
    for i, (name, measures) in enumerate(rows):
        y0 = TOP + row_h * i
        shown = _short(name)
        body.append(
            f'<text x="{name_w - 8}" y="{y0 + row_h / 2:.1f}" text-anchor="end" '
            f'class="label">{_e(shown)}</text>'
        )
        for j, (measure, v) in enumerate(measures):
            y = y0 + j * (bar_h + 2)
            length = 0.0 if v is None or not math.isfinite(v) else v / top * inner
            text = "—" if v is None or not math.isfinite(v) else fmt(v)
            body.append(
                f'<rect x="{name_w}" y="{y:.1f}" width="{max(length, 1.0):.1f}" '
                f'height="{bar_h}" fill="{colors.get(name, "#777")}" '
                f'fill-opacity="{1.0 - 0.35 * j:.2f}"><title>{_e(name)} {_e(measure)}: '
                f"{_e(text)}</title></rect>"
                f'<text x="{name_w + length + 4:.1f}" y="{y + bar_h - 2:.1f}" class="tick">'
                f"{_e(measure)} {_e(text)}</text>"
            )
    return _svg(kind, label, body, height)
