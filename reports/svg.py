"""Small charts written directly as SVG text: no plotting library to import, a few
milliseconds each, so a report with dozens of charts renders at once.

Every text (labels, titles, series names) is escaped; the output depends only
on the data (same data, same bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import escape

REF = "#8c959f"
CUR = "#0969da"
ALT = "#cf222e"
GREEN = "#1a7f37"
COLOURS = (CUR, ALT, REF, GREEN)
FONT = 'font-family="sans-serif"'


def _n(x: float) -> str:
    return f"{x:.1f}"


def _tick(v: float) -> str:
    return f"{v:.3g}"


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<text x="4" y="13" font-size="12" {FONT}>{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _legend(
    names: Sequence[str], x: float, y: float, colours: Sequence[str] = COLOURS
) -> list[str]:
    out = []
    for i, name in enumerate(names):
        c = colours[i % len(colours)]
        out.append(
            f'<rect x="{_n(x)}" y="{_n(y + 12 * i - 8)}" width="9" height="9" fill="{c}"/>'
            f'<text x="{_n(x + 13)}" y="{_n(y + 12 * i)}" font-size="10" {FONT}>{escape(name)}</text>'
        )
    return out


def _y_axis(left: float, top: float, h: float, lo: float, hi: float, right: float) -> list[str]:
    out = [
        f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(top + h)}" stroke="#57606a"/>'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + h * (1 - frac)
        v = lo + (hi - lo) * frac
        out.append(
            f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" stroke="#d0d7de" '
            'stroke-width="0.5"/>'
            f'<text x="{_n(left - 4)}" y="{_n(y + 3)}" font-size="9" text-anchor="end" {FONT}>'
            f"{_tick(v)}</text>"
        )
    return out


def distribution(
    labels: Sequence[str], reference: Sequence[float], current: Sequence[float], title: str
) -> str:
    """Reference vs current share per bin, as grouped bars."""
    width, height, left, top, bottom = 640, 240, 44, 22, 62
    h = height - top - bottom
    step = (width - left - 90) / max(1, len(labels))
    hi = max([*reference, *current, 1e-9])
    body = _y_axis(left, top, h, 0.0, hi, left + step * len(labels))
    for i, (label, r, c) in enumerate(zip(labels, reference, current, strict=True)):
        x = left + i * step
        for j, (v, colour) in enumerate(((r, REF), (c, CUR))):
            bh = h * v / hi
            body.append(
                f'<rect x="{_n(x + step * (0.1 + 0.4 * j))}" y="{_n(top + h - bh)}" '
                f'width="{_n(step * 0.4)}" height="{_n(bh)}" fill="{colour}">'
                f"<title>{escape(label)}: {'reference' if j == 0 else 'current'} {v:.1%}</title></rect>"
            )
        lx, ly = x + step / 2, top + h + 10
        body.append(
            f'<text x="{_n(lx)}" y="{_n(ly)}" font-size="9" text-anchor="end" {FONT} '
            f'transform="rotate(-35 {_n(lx)} {_n(ly)})">{escape(label)}</text>'
        )
    body += _legend(["reference", "current"], width - 80, top + 10, (REF, CUR))
    return _frame(width, height, title, body)


def lines(
    x: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    *,
    width: int = 640,
    height: int = 240,
    ticks: int = 10,
    fixed: tuple[float, float] | None = None,
) -> str:
    """Lines over categories (days, weeks); a missing value breaks its line."""
    left, top, bottom = 44, 22, 46 if ticks else 20
    h = height - top - bottom
    right = width - (100 if len(series) > 1 else 12)
    vals = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    lo, hi = fixed or (min(vals, default=0.0), max(vals, default=1.0))
    if fixed is None:
        lo = min(lo, 0.0)
    if hi <= lo:
        hi = lo + 1.0
    n = len(x)
    dx = (right - left) / max(1, n - 1)
    body = _y_axis(left, top, h, lo, hi, right)

    def px(i: int) -> float:
        return left + i * dx if n > 1 else (left + right) / 2

    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        run: list[str] = []
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                if len(run) > 1:
                    body.append(_poly(run, colour))
                run = []
                continue
            y = top + h * (1 - (v - lo) / (hi - lo))
            run.append(f"{_n(px(i))},{_n(y)}")
            body.append(
                f'<circle cx="{_n(px(i))}" cy="{_n(y)}" r="2" fill="{colour}">'
                f"<title>{escape(name)} {escape(x[i])}: {_tick(v)}</title></circle>"
            )
        if len(run) > 1:
            body.append(_poly(run, colour))
    shown = sorted({0, n - 1, *range(0, n, max(1, n // max(1, ticks)))}) if n and ticks else []
    for i in shown:
        lx, ly = px(i), top + h + 10
        body.append(
            f'<text x="{_n(lx)}" y="{_n(ly)}" font-size="9" text-anchor="end" {FONT} '
            f'transform="rotate(-30 {_n(lx)} {_n(ly)})">{escape(x[i])}</text>'
        )
    if len(series) > 1:
        body += _legend(list(series), right + 8, top + 10)
    return _frame(width, height, title, body)


def _poly(points: list[str], colour: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
    )


def spark(x: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str) -> str:
    """A small trend chart for the index."""
    return lines(x, series, title, width=340, height=150, ticks=3)


def pr_curves(curves: Mapping[str, Sequence[tuple[float, float]]], title: str) -> str:
    """Precision (y) against recall (x) for each model, both axes 0..1."""
    width, height, left, top, bottom = 420, 320, 44, 22, 36
    h = height - top - bottom
    right = width - 100
    w = right - left
    body = _y_axis(left, top, h, 0.0, 1.0, right)
    for frac in (0.0, 0.5, 1.0):
        body.append(
            f'<text x="{_n(left + w * frac)}" y="{_n(top + h + 14)}" font-size="9" '
            f'text-anchor="middle" {FONT}>{frac:g}</text>'
        )
    body.append(
        f'<text x="{_n(left + w / 2)}" y="{_n(height - 4)}" font-size="10" text-anchor="middle" '
        f"{FONT}>recall</text>"
    )
    for k, (_, pts) in enumerate(curves.items()):
        if pts:
            body.append(
                _poly(
                    [f"{_n(left + w * r)},{_n(top + h * (1 - p))}" for r, p in pts],
                    COLOURS[k % len(COLOURS)],
                )
            )
    body += _legend(list(curves), right + 8, top + 10)
    return _frame(width, height, title, body)
