"""Inline SVG charts, drawn with the escaping builder (no chart library, no script).

Colours and fonts live in the stylesheet (classes only, no ``style`` attributes), so the charts
follow the page's theme and the page can keep a strict Content-Security-Policy. Coordinates are
rounded to two decimals so the same inputs give the same bytes.

A chart drawn 560-700 units wide and scaled down to a phone's width would have text a few pixels
high, so the forest plot, the scatter and the histogram come as a pair: the wide drawing and a
narrow one (:data:`NARROW_WIDTH` units, labels above the intervals, larger type), in one
``<div class="chart-pair">``; the stylesheet shows one of the two by the screen's width. The
per-group bars are drawn narrow enough to need no second drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from fetal_bench.leaderboard.formatting import fmt_value, metric_label
from fetal_bench.leaderboard.html import Markup, el

def _n(x: float) -> str:
    """A coordinate as short, stable text."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The narrow drawings' width in SVG units: drawn 1:1 in a 390 px screen's 366 px column, and never
# scaled below 0.85 on a 320 px one, so their 12-unit text stays at least 10 px high.
NARROW_WIDTH = 340


def _pair(wide: Markup, narrow: Markup) -> Markup:
    """Both drawings of one chart; the stylesheet shows the one that fits the screen."""
    return el("div", wide, narrow, class_="chart-pair")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    # The tolerance absorbs float error: 0.9 / 0.05 is 17.999999999999996, and 0.9 is a tick.
    start = math.floor(lo / step + 1e-6) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _domain(values: Sequence[float], *, unit_interval_hint: bool) -> tuple[float, float]:
    """An axis range that holds every value, padded, snapped to round ticks."""
    lo, hi = min(values), max(values)
    if unit_interval_hint and lo >= 0 and hi <= 1:
        # Scores in [0, 1]: zoom to the data (differences of a few points matter) but stay in [0, 1].
        pad = max((hi - lo) * 0.15, 0.01)
        lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    else:
        pad = max((hi - lo) * 0.15, abs(hi) * 0.05, 1e-6)
        lo, hi = lo - pad, hi + pad
        if min(values) >= 0:
            lo = max(lo, 0.0)
    ticks = nice_ticks(lo, hi)
    return min(ticks[0], lo), max(ticks[-1], hi)


@dataclass(frozen=True)
class Interval:
    """One entry in a forest plot: a label, a value and its 95% interval."""

    label: str
    tooltip: str
    value: float
    lo: float | None
    hi: float | None


def forest_plot(items: Sequence[Interval], metric: str, higher_is_better: bool, *, title: str) -> Markup:
    """Each entry's main score as a dot with its 95% interval, one line per entry, in rank order
    (a wide and a narrow drawing, see the module's docstring)."""
    return _pair(_forest_wide(items, metric, higher_is_better, title=title),
                 _forest_narrow(items, metric, higher_is_better, title=title))


def _forest_domain(items: Sequence[Interval], metric: str) -> tuple[float, float]:
    ends = [v for it in items for v in (it.value, it.lo, it.hi) if v is not None]
    return _domain(ends, unit_interval_hint=not metric.endswith(("_mm", "_pct")))


def _interval_marks(item: Interval, y: float, x, *, cap: float) -> list[Markup]:
    marks: list[Markup] = []
    if item.lo is not None and item.hi is not None:
        marks.append(el("line", x1=_n(x(item.lo)), x2=_n(x(item.hi)), y1=_n(y), y2=_n(y), class_="ci"))
        for end in (item.lo, item.hi):
            marks.append(el("line", x1=_n(x(end)), x2=_n(x(end)), y1=_n(y - cap), y2=_n(y + cap), class_="ci"))
    marks.append(el("circle", cx=_n(x(item.value)), cy=_n(y), r="4.5", class_="point"))
    return marks


def _forest_wide(items: Sequence[Interval], metric: str, higher_is_better: bool, *, title: str) -> Markup:
    # A 220 px label margin holds about 30 characters at 12 px (labels are cut to that, keeping the rank).
    width, left, right, top, row_h = 700, 220, 64, 28, 26
    height = top + row_h * len(items) + 34
    lo, hi = _forest_domain(items, metric)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts: list[Markup] = [el("title", title)]
    for tick in nice_ticks(lo, hi):
        if lo - 1e-9 <= tick <= hi + 1e-9:
            parts.append(el("line", x1=_n(x(tick)), x2=_n(x(tick)), y1=_n(top - 8), y2=_n(height - 26), class_="grid"))
            parts.append(el("text", fmt_value(tick, metric), x=_n(x(tick)), y=_n(height - 10), class_="tick",
                            text_anchor="middle"))
    direction = "higher is better →" if higher_is_better else "← lower is better"
    parts.append(el("text", f"{metric_label(metric)} ({direction})", x=_n(left), y="16", class_="axis-label"))
    for index, item in enumerate(items):
        y = top + row_h * index + row_h / 2
        row: list[Markup] = [el("title", item.tooltip),
                             el("text", _truncate(item.label, 30), x=_n(left - 10), y=_n(y + 4), class_="label",
                                text_anchor="end")]
        row += _interval_marks(item, y, x, cap=5)
        row.append(el("text", fmt_value(item.value, metric), x=_n(width - right + 8), y=_n(y + 4), class_="value"))
        parts.append(el("g", row, class_="row"))
    return el("svg", parts, viewBox=f"0 0 {width} {_n(height)}", width=str(width), height=_n(height),
              class_="chart forest", role="img", aria_label=title)


def _forest_narrow(items: Sequence[Interval], metric: str, higher_is_better: bool, *, title: str) -> Markup:
    """The forest plot for a phone: each entry's label and value on a line of their own, its
    interval across the full width below, four ticks."""
    width, pad, top, row_h = NARROW_WIDTH, 10, 26, 42
    height = top + row_h * len(items) + 28
    lo, hi = _forest_domain(items, metric)

    def x(v: float) -> float:
        return pad + (v - lo) / (hi - lo) * (width - 2 * pad)

    parts: list[Markup] = [el("title", title)]
    for tick in nice_ticks(lo, hi, count=4):
        if lo - 1e-9 <= tick <= hi + 1e-9:
            parts.append(el("line", x1=_n(x(tick)), x2=_n(x(tick)), y1=_n(top), y2=_n(height - 24), class_="grid"))
            anchor = "start" if x(tick) < 24 else "end" if x(tick) > width - 24 else "middle"
            parts.append(el("text", fmt_value(tick, metric), x=_n(x(tick)), y=_n(height - 8), class_="tick",
                            text_anchor=anchor))
    direction = "higher is better →" if higher_is_better else "← lower is better"
    parts.append(el("text", f"{metric_label(metric)} ({direction})", x="0", y="15", class_="axis-label"))
    for index, item in enumerate(items):
        y = top + row_h * index
        row: list[Markup] = [el("title", item.tooltip),
                             el("text", _truncate(item.label, 34), x="0", y=_n(y + 14), class_="label"),
                             el("text", fmt_value(item.value, metric), x=_n(width), y=_n(y + 14), class_="value",
                                text_anchor="end")]
        row += _interval_marks(item, y + 29, x, cap=5)
        parts.append(el("g", row, class_="row"))
    return el("svg", parts, viewBox=f"0 0 {width} {_n(height)}", width=str(width), height=_n(height),
              class_="chart forest narrow", role="img", aria_label=title)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    lo: float | None
    hi: float | None
    worst: bool
    n: int | None


def group_bars(bars: Sequence[Bar], metric: str, *, title: str, heading: str) -> Markup:
    """Horizontal bars of one entry's main score per group (e.g. per country); the worst group stands out."""
    width, left, right, top, row_h = 360, 110, 62, 30, 24
    height = top + row_h * len(bars) + 10
    values = [v for b in bars for v in (b.value, b.lo, b.hi) if v is not None] or [0.0, 1.0]
    if min(values) >= 0 and max(values) <= 1 and not metric.endswith(("_mm", "_pct")):
        lo, hi = 0.0, 1.0  # bars must start at zero to be honest; unit scores use the full [0, 1]
    else:
        lo, hi = 0.0, max(nice_ticks(0.0, max(values) * 1.05)[-1], max(values) * 1.05, 1e-6)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts: list[Markup] = [el("title", title),
                           el("text", _truncate(heading, 46), x="0", y="16", class_="chart-heading")]
    for index, bar in enumerate(bars):
        y = top + row_h * index
        label = _truncate(bar.label, 15)
        tooltip = f"{bar.label}: {fmt_value(bar.value, metric)}" + (f" (n={bar.n})" if bar.n is not None else "")
        row: list[Markup] = [el("title", tooltip),
                             el("text", label, x=_n(left - 8), y=_n(y + row_h / 2 + 4), class_="label",
                                text_anchor="end")]
        if bar.value is not None:
            row.append(el("rect", x=_n(left), y=_n(y + 4), width=_n(max(x(bar.value) - left, 0.5)),
                          height=_n(row_h - 8), class_="bar worst" if bar.worst else "bar"))
            if bar.lo is not None and bar.hi is not None:
                row.append(el("line", x1=_n(x(bar.lo)), x2=_n(x(bar.hi)), y1=_n(y + row_h / 2),
                              y2=_n(y + row_h / 2), class_="ci"))
        row.append(el("text", fmt_value(bar.value, metric), x=_n(width - right + 6), y=_n(y + row_h / 2 + 4),
                      class_="value"))
        parts.append(el("g", row, class_="row"))
    return el("svg", parts, viewBox=f"0 0 {width} {_n(height)}", width=str(width), height=_n(height),
              class_="chart bars", role="img", aria_label=title)


@dataclass(frozen=True)
class Point:
    label: str  # a short mark drawn next to the point (the rank)
    tooltip: str
    share: float
    value: float
    lo: float | None
    hi: float | None
    training_data: str


def synthetic_scatter(points: Sequence[Point], metric: str, *, title: str) -> Markup:
    """Main score against the share of synthetic training data, with 95% intervals (a wide and a
    narrow drawing)."""
    return _pair(_scatter(points, metric, title=title, width=560, height=320, narrow=False),
                 _scatter(points, metric, title=title, width=NARROW_WIDTH, height=280, narrow=True))


def _scatter(points: Sequence[Point], metric: str, *, title: str, width: int, height: int, narrow: bool) -> Markup:
    left, right, top, bottom = 64, 20, 20, 46
    ends = [v for p in points for v in (p.value, p.lo, p.hi) if v is not None]
    lo, hi = _domain(ends, unit_interval_hint=not metric.endswith(("_mm", "_pct")))

    def x(share: float) -> float:
        return left + share * (width - left - right)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    parts: list[Markup] = [el("title", title)]
    for tick in (0.0, 0.5, 1.0) if narrow else (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(el("line", x1=_n(x(tick)), x2=_n(x(tick)), y1=_n(top), y2=_n(height - bottom), class_="grid"))
        parts.append(el("text", f"{tick * 100:.0f}%", x=_n(x(tick)), y=_n(height - bottom + 16), class_="tick",
                        text_anchor="middle"))
    for tick in nice_ticks(lo, hi, count=4 if narrow else 5):
        if lo - 1e-9 <= tick <= hi + 1e-9:
            parts.append(el("line", x1=_n(left), x2=_n(width - right), y1=_n(y(tick)), y2=_n(y(tick)), class_="grid"))
            parts.append(el("text", fmt_value(tick, metric), x=_n(left - 6), y=_n(y(tick) + 4), class_="tick",
                            text_anchor="end"))
    parts.append(el("text", "share of synthetic training images", x=_n((left + width - right) / 2),
                    y=_n(height - 8), class_="axis-label", text_anchor="middle"))
    parts.append(el("text", metric_label(metric), x=_n(-(top + height - bottom) / 2), y="14",
                    class_="axis-label", text_anchor="middle", transform="rotate(-90)"))
    for point in points:
        cx, cy = x(point.share), y(point.value)
        group: list[Markup] = [el("title", point.tooltip)]
        if point.lo is not None and point.hi is not None:
            group.append(el("line", x1=_n(cx), x2=_n(cx), y1=_n(y(point.lo)), y2=_n(y(point.hi)), class_="ci"))
        group.append(el("circle", cx=_n(cx), cy=_n(cy), r="5", class_=f"point td-{point.training_data}"))
        group.append(el("text", point.label, x=_n(cx + 8), y=_n(cy - 6), class_="point-label"))
        parts.append(el("g", group, class_="row"))
    return el("svg", parts, viewBox=f"0 0 {width} {height}", width=str(width), height=str(height),
              class_="chart scatter narrow" if narrow else "chart scatter", role="img", aria_label=title)


def histogram(values: Sequence[float], *, title: str, unit: str, bins: int = 24) -> Markup:
    """A histogram of per-image values (e.g. signed HC errors in mm), symmetric around 0 when they
    straddle it (a wide and a narrow drawing)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return el("p", "No values to draw.", class_="muted")
    return _pair(_histogram(finite, title=title, unit=unit, bins=bins, width=560, narrow=False),
                 _histogram(finite, title=title, unit=unit, bins=bins, width=NARROW_WIDTH, narrow=True))


def _histogram(finite: Sequence[float], *, title: str, unit: str, bins: int, width: int, narrow: bool) -> Markup:
    left, right, top, bottom, height = 44, 16, 14, 40, 220
    extent = max(abs(min(finite)), abs(max(finite)), 1e-6)
    lo, hi = (-extent, extent) if min(finite) < 0 < max(finite) else (min(min(finite), 0.0), max(finite))
    if hi <= lo:
        hi = lo + 1.0
    step = (hi - lo) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - lo) / step), bins - 1)] += 1
    peak = max(counts)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    def y(count: float) -> float:
        return top + (1 - count / peak) * (height - top - bottom)

    parts: list[Markup] = [el("title", title)]
    for tick in nice_ticks(lo, hi, count=4 if narrow else 5):
        if lo - 1e-9 <= tick <= hi + 1e-9:
            parts.append(el("line", x1=_n(x(tick)), x2=_n(x(tick)), y1=_n(top), y2=_n(height - bottom), class_="grid"))
            parts.append(el("text", f"{tick:g}", x=_n(x(tick)), y=_n(height - bottom + 16), class_="tick",
                            text_anchor="middle"))
    for index, count in enumerate(counts):
        if count:
            start = lo + index * step
            parts.append(el("rect", el("title", f"{start:.2f} to {start + step:.2f} {unit}: {count}"),
                            x=_n(x(start) + 0.5), y=_n(y(count)), width=_n(max(x(start + step) - x(start) - 1, 0.5)),
                            height=_n(height - bottom - y(count)), class_="bar"))
    parts.append(el("text", str(peak), x=_n(left - 6), y=_n(top + 4), class_="tick", text_anchor="end"))
    parts.append(el("text", f"{unit} (images per bin)", x=_n((left + width - right) / 2), y=_n(height - 6),
                    class_="axis-label", text_anchor="middle"))
    return el("svg", parts, viewBox=f"0 0 {width} {height}", width=str(width), height=str(height),
              class_="chart histogram narrow" if narrow else "chart histogram", role="img", aria_label=title)


__all__ = ["NARROW_WIDTH", "Bar", "Interval", "Point", "forest_plot", "group_bars", "histogram", "nice_ticks",
           "synthetic_scatter"]
