"""A chart's data and text alternative; the page's script draws it (with uPlot) from ``data-points``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..format.values import ms_from_time
from .data import FloatSeries
from .escape import h
from .lttb import lttb

MAX_POINTS = 2_000  # series longer than this are downsampled for drawing


def num(value: float) -> str:
    """A short label for a number: 6 significant digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".6g")


def numbers(values: Iterable[float | None], digits: int = 7) -> str:
    """Numbers (None as null) as a JSON array, to ``digits`` significant digits (short, and enough to read)."""
    return "[" + ",".join("null" if v is None else f"{v:.{digits}g}" for v in values) + "]"


def epoch_seconds(text: str) -> float | None:
    """A time of the CSV (ISO 8601, UTC when it names no zone, or epoch milliseconds past
    year 9999) as seconds since 1970; None if unreadable."""
    try:
        return ms_from_time(text) / 1000
    except ValueError:
        return None


class Drawn(NamedTuple):
    data: (
        str  # JSON ``[steps, values, seconds after t0, t0 (seconds since 1970, UTC)]`` of the points to draw
    )
    finite: int  # points with a finite step and value (the others cannot be drawn)
    x_range: tuple[float, float]
    y_range: tuple[float, float]


def drawn_points(series: FloatSeries, limit: int) -> Drawn:
    """At most ``limit`` finite points of ``series`` (LTTB beyond that), with the ranges of all of them."""
    steps, values = series.steps, series.values
    keep: Sequence[int]
    if all(map(math.isfinite, values)) and all(map(math.isfinite, steps)):
        keep, xs, ys = range(len(steps)), steps, values  # the common case, without copies
    else:
        keep = [
            i
            for i, (x, y) in enumerate(zip(steps, values, strict=True))
            if math.isfinite(x) and math.isfinite(y)
        ]
        xs, ys = [steps[i] for i in keep], [values[i] for i in keep]
    if not keep:
        return Drawn("[[],[],[],null]", 0, (math.nan, math.nan), (math.nan, math.nan))
    if len(keep) > limit:
        keep = [keep[i] for i in lttb(xs, ys, limit)]  # indexes of xs, ys are indexes of keep
    # Times as seconds after the first one, to the millisecond: a third of the page's weight
    # otherwise. ``t0`` is null when no point has a readable time.
    times = [epoch_seconds(series.times[i]) for i in keep]
    t0 = next((t for t in times if t is not None), None)
    offsets = [None if t is None or t0 is None else round(t - t0, 3) for t in times]
    data = (
        f"[{numbers((steps[i] for i in keep), 12)},{numbers(values[i] for i in keep)},"
        f"{numbers(offsets, 10)},{'null' if t0 is None else format(t0, '.13g')}]"
    )
    return Drawn(data, len(xs), (min(xs), max(xs)), (min(ys), max(ys)))


def chart(title: str, series: FloatSeries, chart_id: str) -> str:
    """One series as a ``role="img"`` box: its description is the text shown without JavaScript."""
    drawn = drawn_points(series, MAX_POINTS)
    title_id, desc_id = f"{chart_id}-t", f"{chart_id}-d"
    total = len(series.steps)
    if not drawn.finite:
        desc = f"{title}: no finite values to draw ({total} points)."
    else:
        desc = (
            f"Line chart of {title}: step from {num(drawn.x_range[0])} to {num(drawn.x_range[1])},"
            f" value from {num(drawn.y_range[0])} to {num(drawn.y_range[1])}; {total} points"
            + (f", {MAX_POINTS} drawn" if drawn.finite > MAX_POINTS else "")
            + (f", {total - drawn.finite} not finite" if drawn.finite < total else "")
            + f"; last value {num(series.values[-1])} at step {num(series.steps[-1])}."
        )
    return (
        f'<div class="plot" role="img" aria-labelledby="{title_id} {desc_id}" data-points="{h(drawn.data)}">'
        f'<span class="sr" id="{title_id}">{h(title)}</span><span class="desc" id="{desc_id}">{h(desc)}</span></div>'
    )
