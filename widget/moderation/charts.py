"""The overview's charts as geometry for inline SVG: bars and a line, with their axes.

Everything is measured here, on the server; templates/moderation/_charts.html only draws it
(no script, no style attribute: the moderation CSP allows neither). Each chart carries a
text summary of every value for its SVG's <desc>, beside the table the page shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 560, 220
# Room for the y axis' labels on the left and the x axis' labels below.
LEFT, RIGHT, TOP, BOTTOM = 40.0, 12.0, 18.0, 30.0


@dataclass(frozen=True)
class Mark:
    """A bar or a point centred on x with its top at y, its label and value as text."""

    x: float
    y: float
    label: str
    value: str
    width: float = 0.0
    height: float = 0.0

    @property
    def left(self) -> float:
        return round(self.x - self.width / 2, 1)

    @property
    def value_y(self) -> float:
        """Where its value is written: just above the bar, or above the point's dot."""
        return round(self.y - (4 if self.width else 9), 1)


@dataclass(frozen=True)
class Tick:
    """A value on the y axis, at height y."""

    y: float
    label: str

    @property
    def text_y(self) -> float:
        return round(self.y + 4, 1)  # 11px text, its middle on the grid line


@dataclass(frozen=True)
class Chart:
    """One chart's measures in SVG user units; `lines` are polyline point lists."""

    title: str
    summary: str
    width: int = WIDTH
    height: int = HEIGHT
    left: float = LEFT
    top: float = TOP
    ticks: list[Tick] = field(default_factory=list)
    bars: list[Mark] = field(default_factory=list)
    points: list[Mark] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    # The x axis' labels: x is the middle of each bar or point's slot.
    labels: list[Mark] = field(default_factory=list)

    @property
    def right(self) -> float:
        return self.width - RIGHT

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    @property
    def label_y(self) -> float:
        return self.bottom + 18

    @property
    def tick_x(self) -> float:
        return self.left - 6


def nice_step(high: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving at most `ticks` steps to `high`."""
    if high <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(high / ticks))
    for factor in (1, 2, 5, 10):
        if high / (factor * magnitude) <= ticks:
            return max(1.0, float(factor * magnitude))  # counts: never a fractional step
    return 10.0 * magnitude


def _summary(items: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{label}: {value}" for label, value in items) + "."


def bar_chart(title: str, items: Sequence[tuple[str, int]], width: int = WIDTH,
              height: int = HEIGHT) -> Chart:
    """Vertical bars of counts, one per (label, count), on a y axis from 0."""
    high = max((value for _, value in items), default=0)
    step = nice_step(high)
    top_value = step * max(1, math.ceil(high / step))
    chart = Chart(title, _summary([(label, f"{value:,}") for label, value in items]),
                  width, height)
    plot = chart.bottom - chart.top
    slot = (chart.right - chart.left) / max(1, len(items))

    def y(value: float) -> float:
        return round(chart.bottom - plot * value / top_value, 1)

    chart.ticks.extend(Tick(y(n * step), f"{int(n * step):,}")
                       for n in range(int(top_value / step) + 1))
    width = round(slot * 0.7, 1)
    for n, (label, value) in enumerate(items):
        middle = round(chart.left + slot * (n + 0.5), 1)
        chart.bars.append(Mark(x=middle, y=y(value), label=label, value=f"{value:,}",
                               width=width, height=round(chart.bottom - y(value), 1)))
        chart.labels.append(Mark(x=middle, y=chart.bottom, label=label, value=""))
    return chart


def line_chart(title: str, items: Sequence[tuple[str, float | None]], low: float = 1.0,
               high: float = 5.0) -> Chart:
    """A line through (label, value) on a y axis from `low` to `high`; None leaves a gap."""
    chart = Chart(title, _summary([(label, "none" if value is None else f"{value:.2f}")
                                   for label, value in items]))
    plot = chart.bottom - chart.top
    slot = (chart.right - chart.left) / max(1, len(items))

    def y(value: float) -> float:
        return round(chart.bottom - plot * (value - low) / (high - low), 1)

    chart.ticks.extend(Tick(y(value), f"{value:g}")
                       for value in range(int(low), int(high) + 1))
    runs: list[list[str]] = [[]]
    for n, (label, value) in enumerate(items):
        x = round(chart.left + slot * (n + 0.5), 1)
        chart.labels.append(Mark(x=x, y=chart.bottom, label=label, value=""))
        if value is None:  # a week without reviews: the line stops and starts again
            runs.append([])
            continue
        point = Mark(x=x, y=y(value), label=label, value=f"{value:.1f}")
        chart.points.append(point)
        runs[-1].append(f"{point.x},{point.y}")
    chart.lines.extend(" ".join(run) for run in runs if len(run) > 1)
    return chart
