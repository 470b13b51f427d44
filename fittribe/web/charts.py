"""Bar-chart geometry for inline SVG. Templates draw the shapes (partials/analytics_charts.html);
the arithmetic lives here so they stay readable. Coordinates are viewBox units: the SVG scales
to its container, so no sizes (and no inline styles, which the CSP forbids) are needed."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 18, 12, 22  # room for the value labels and the date labels
MIN_LABEL_GAP = 14  # a value label closer than this to the zero label would overlap it
GAP = 0.2  # share of each day's column left empty between bars


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # e.g. "Tue 3 Nov: 1,250.00 USD" (tooltip and accessible name of the bar)

    @property
    def path(self) -> str:
        """The bar as SVG path data: a third shorter than a <rect>'s four attributes (the charts
        fragment is re-fetched live)."""
        return f"M{self.x} {self.y}h{self.width}v{self.height}h-{self.width}z"


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    zero_y: float  # the baseline (value 0)
    left: int
    right: int
    value_labels: list[Tick]  # highest (and lowest, if negative) value, at the left
    date_labels: list[Tick]  # first, middle and last day, under the bars
    highest: str  # the largest value and its day, for the chart's description


def _r(value: float) -> float | int:
    """One decimal is plenty in a 520-unit box; whole numbers lose the ".0" (shorter markup)."""
    value = round(float(value), 1)
    return int(value) if value.is_integer() else value


def compact(number: float) -> str:
    """2400 -> "2.4k", 1250000 -> "1.3M", 35 -> "35": axis labels that fit beside the bars."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(number) >= size:
            return f"{number / size:.1f}".removesuffix(".0") + suffix
    return f"{number:.0f}"


def bar_chart(values: Sequence[int], days: Sequence[str], fmt: Callable[[int], str],
              axis: Callable[[int], str] = compact) -> Chart:
    """One bar per day, named by `days` (also printed under the first, middle and last bar);
    `fmt` writes a value for people (bar titles, description), `axis` for the value axis."""
    top_value, bottom_value = max(0, *values, 0), min(0, *values, 0)
    span = (top_value - bottom_value) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    column = plot_w / max(1, len(values))

    def y_of(value: int) -> float:
        return TOP + (top_value - value) / span * plot_h

    zero_y = y_of(0)
    bars = []
    for n, (value, day) in enumerate(zip(values, days)):
        y = y_of(max(value, 0))
        height = abs(y_of(value) - zero_y)
        bars.append(Bar(_r(LEFT + n * column + column * GAP / 2), _r(y), _r(column * (1 - GAP)),
                        _r(max(height, 0.5 if value else 0)), f"{day}: {fmt(value)}"))

    value_labels = [Tick(LEFT - 4, _r(zero_y + 4), axis(0))]
    if top_value > 0 and zero_y - TOP >= MIN_LABEL_GAP:
        value_labels.append(Tick(LEFT - 4, _r(TOP + 4), axis(top_value)))
    if bottom_value < 0 and HEIGHT - BOTTOM - zero_y >= MIN_LABEL_GAP:
        value_labels.append(Tick(LEFT - 4, _r(HEIGHT - BOTTOM + 4), axis(bottom_value)))
    picks = sorted({0, len(values) // 2, len(values) - 1}) if values else []
    date_labels = [Tick(_r(LEFT + n * column + column / 2), HEIGHT - 6, days[n]) for n in picks]
    best = max(range(len(values)), key=lambda n: values[n]) if values else None
    highest = f"{fmt(values[best])} on {days[best]}" if best is not None else "no data"
    return Chart(WIDTH, HEIGHT, bars, _r(zero_y), LEFT, WIDTH - RIGHT, value_labels, date_labels, highest)
