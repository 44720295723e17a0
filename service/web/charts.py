"""Small server-rendered SVG charts: accuracy across model versions, and trend sparklines.

Why not a JS chart library: the two charts we need (a few lines over a handful of versions, and a
daily bar trend) are ~100 lines of SVG, render with no JavaScript at all, print cleanly, cost no
vendored bundle to keep patched, and are trivially testable as text. Colours come from CSS
classes (`.series-0` …) so the stylesheet owns the look.

    >>> svg = line_chart(["v1", "v2"], [Series("acc", [0.89, 0.96])], title="Accuracy")
    >>> svg.startswith("<svg")
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    """One line: a label and one value (or None when unknown) per x position."""

    label: str
    values: Sequence[float | None]


def _y_range(series: Sequence[Series]) -> tuple[float, float]:
    """A 0..1 axis zoomed to the data (floored to 0.1) so a climb from 0.89 to 0.96 is visible."""
    known = [v for s in series for v in s.values if v is not None]
    if not known:
        return 0.0, 1.0
    low = max(0.0, math.floor((min(known) - 0.02) * 10) / 10)
    return (low, 1.0) if low < 1.0 else (0.9, 1.0)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    marked: int | None = None,
    marked_label: str = "",
    width: int = 1000,
    height: int = 300,
) -> str:
    """A multi-series line chart over categorical x labels, values as fractions in [0, 1].

    The legend wraps onto as many rows as its labels need (the chart grows by a row each), so
    no label runs past the right edge, whatever the language."""
    left, right, top, bottom = 48, 16, 16, 56
    legend_rows = _legend_rows([s.label for s in series], left, width - right)
    height += LEGEND_ROW * (len(legend_rows) - 1)
    plot_w = width - left - right
    plot_h = height - top - bottom - LEGEND_ROW * (len(legend_rows) - 1)
    low, high = _y_range(series)
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]
    steps = round((high - low) / 0.1) or 1
    for k in range(steps + 1):
        value = low + k * (high - low) / steps
        yy = y(value)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
            f"{value * 100:.0f}%</text>"
        )
    if marked is not None and 0 <= marked < len(labels):
        mx = x(marked)
        band = plot_w / n
        parts.append(
            f'<rect class="marked" x="{mx - band / 2:.1f}" y="{top}" width="{band:.1f}" '
            f'height="{plot_h}"/><text class="marked-label" x="{mx:.1f}" y="{top + 12}" '
            f'text-anchor="middle">{escape(marked_label)}</text>'
        )
    label_y = top + plot_h + 18
    for i, label in enumerate(labels):
        parts.append(
            f'<text class="axis" x="{x(i):.1f}" y="{label_y}" text-anchor="middle">'
            f"<title>{escape(label)}</title>{escape(_short(label, max(8, int(plot_w / n / 8))))}"
            "</text>"
        )
    for s_index, s in enumerate(series):
        points = [(x(i), y(v), v) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
            parts.append(f'<polyline class="line series-{s_index}" points="{path}"/>')
        for px, py, v in points:
            parts.append(
                f'<circle class="dot series-{s_index}" cx="{px:.1f}" cy="{py:.1f}" r="4">'
                f"<title>{escape(s.label)}: {v * 100:.1f}%</title></circle>"
            )
    for row_index, row in enumerate(legend_rows):
        legend_y = top + plot_h + 40 + LEGEND_ROW * row_index
        for s_index, cursor in row:
            label = series[s_index].label
            parts.append(
                f'<rect class="swatch series-{s_index}" x="{cursor:.0f}" y="{legend_y - 9}" '
                f'width="12" height="12" rx="2"/><text class="legend" x="{cursor + 16:.0f}" '
                f'y="{legend_y + 1}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


LEGEND_ROW = 22


def _label_width(label: str) -> float:
    """About how wide a legend label is drawn (13 px text; a CJK character is a full em)."""
    wide = sum(ord(c) > 0x2E80 for c in label)
    return 7.5 * (len(label) - wide) + 13.5 * wide


def _legend_rows(labels: Sequence[str], start: float, end: float) -> list[list[tuple[int, float]]]:
    """Legend entries as rows of (series index, x), wrapped before the right edge."""
    rows: list[list[tuple[int, float]]] = [[]]
    cursor = start
    for index, label in enumerate(labels):
        item = 16 + _label_width(label) + 24
        if rows[-1] and cursor + item - 24 > end:
            rows.append([])
            cursor = start
        rows[-1].append((index, cursor))
        cursor += item
    return rows


def _nice_top(value: float) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above `value` (at least 1): a readable axis top."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def count_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 1000,
    height: int = 260,
) -> str:
    """Counts over time (one line per group) on an axis from 0: a trend read at a glance.

    At most about twelve x labels are written (evenly spaced), so a 90-day window stays legible;
    every point keeps its exact value in a tooltip."""
    left, right, top, bottom = 48, 16, 16, 56
    legend_rows = _legend_rows([s.label for s in series], left, width - right)
    height += LEGEND_ROW * (len(legend_rows) - 1)
    plot_w = width - left - right
    plot_h = height - top - bottom - LEGEND_ROW * (len(legend_rows) - 1)
    high = _nice_top(max((v for s in series for v in s.values if v is not None), default=1))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / high)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]
    ticks = high if high < 5 else (4 if str(high)[0] == "2" else 5)  # whole numbers only
    for k in range(ticks + 1):
        value = high * k / ticks
        yy = y(value)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
            f"{value:g}</text>"
        )
    every = max(1, math.ceil(n / 12))
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text class="axis" x="{x(i):.1f}" y="{top + plot_h + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for s_index, s in enumerate(series):
        points = [(x(i), y(v), labels[i], v) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f'<polyline class="line series-{s_index}" points="{path}"/>')
        for px, py, label, v in points:
            parts.append(
                f'<circle class="dot series-{s_index}" cx="{px:.1f}" cy="{py:.1f}" r="3">'
                f"<title>{escape(s.label)} · {escape(label)}: {v:g}</title></circle>"
            )
    for row_index, row in enumerate(legend_rows):
        legend_y = top + plot_h + 40 + LEGEND_ROW * row_index
        for s_index, cursor in row:
            parts.append(
                f'<rect class="swatch series-{s_index}" x="{cursor:.0f}" y="{legend_y - 9}" '
                f'width="12" height="12" rx="2"/><text class="legend" x="{cursor + 16:.0f}" '
                f'y="{legend_y + 1}">{escape(series[s_index].label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_sparkline(values: Sequence[int], *, title: str, width: int = 140, height: int = 32) -> str:
    """A tiny bar trend (e.g. violations per day) for a table cell."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    bar = width / n
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, value in enumerate(values):
        h = max(1.0, (height - 2) * value / top) if value else 1.0
        parts.append(
            f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{h:.1f}" class="{"bar" if value else "bar zero"}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]
