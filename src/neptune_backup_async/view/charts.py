"""Inline SVG line charts with a text alternative: title, axes and the last value."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .escape import h
from .lttb import lttb

MAX_POINTS = 2_000  # series longer than this are downsampled for drawing
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36


def num(value: float) -> str:
    """A short label for a number: 6 significant digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".6g")


def numbers(values: Iterable[float], digits: int = 7) -> str:
    """Finite numbers as a JSON array, to ``digits`` significant digits (short, and enough to read)."""
    return "[" + ",".join(map(f"{{:.{digits}g}}".format, values)) + "]"


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def line_chart(title: str, steps: list[float], values: list[float], chart_id: str) -> str:
    """One series as an ``<svg role="img">`` whose hover shows the step and value of the nearest point."""
    points = [(x, y) for x, y in zip(steps, values, strict=True) if math.isfinite(x) and math.isfinite(y)]
    skipped = len(steps) - len(points)
    if len(points) > MAX_POINTS:
        keep = lttb([p[0] for p in points], [p[1] for p in points], MAX_POINTS)
        drawn = [points[i] for i in keep]
    else:
        drawn = points
    title_id, desc_id = f"{chart_id}-t", f"{chart_id}-d"
    if not drawn:
        desc = f"{title}: no finite values to draw ({len(steps)} points)."
        return (
            f'<svg class="chart" role="img" aria-labelledby="{title_id} {desc_id}" viewBox="0 0 {WIDTH} {HEIGHT}">'
            f'<title id="{title_id}">{h(title)}</title><desc id="{desc_id}">{h(desc)}</desc>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no finite values</text></svg>'
        )
    x0, x1 = _scale(min(p[0] for p in drawn), max(p[0] for p in drawn))
    y0, y1 = _scale(min(p[1] for p in drawn), max(p[1] for p in drawn))
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    sx, sy = pw / (x1 - x0), ph / (y1 - y0)
    coords = " ".join(f"{LEFT + (x - x0) * sx:.1f},{TOP + ph - (y - y0) * sy:.1f}" for x, y in drawn)
    last_step, last_value = steps[-1], values[-1]
    desc = (
        f"Line chart of {title}: x axis step from {num(x0)} to {num(x1)}, y axis value from {num(y0)} to {num(y1)};"
        f" {len(steps)} points"
        + (f", {len(drawn)} drawn" if len(drawn) != len(points) else "")
        + (f", {skipped} not finite" if skipped else "")
        + f"; last value {num(last_value)} at step {num(last_step)}."
    )
    data = f"[{numbers((x for x, _ in drawn), 12)},{numbers(y for _, y in drawn)}]"
    ticks = []
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + (y1 - y0) * frac
        py = TOP + ph - frac * ph
        ticks.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{py + 4:.1f}" text-anchor="end">{h(num(yv))}</text>'
        )
        xv = x0 + (x1 - x0) * frac
        px = LEFT + frac * pw
        anchor = ("start", "middle", "end")[int(frac * 2)]
        ticks.append(
            f'<text class="tick" x="{px:.1f}" y="{TOP + ph + 16}" text-anchor="{anchor}">{h(num(xv))}</text>'
        )
    return (
        f'<svg class="chart" role="img" aria-labelledby="{title_id} {desc_id}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' data-points="{data}">'
        f'<title id="{title_id}">{h(title)}</title><desc id="{desc_id}">{h(desc)}</desc>'
        + "".join(ticks)
        + f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + ph}"/>'
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + ph}" y2="{TOP + ph}"/>'
        f'<text class="label" x="{LEFT + pw / 2}" y="{HEIGHT - 4}" text-anchor="middle">step</text>'
        f'<polyline class="line" fill="none" points="{coords}"/>'
        f'<g class="hover" visibility="hidden"><line class="cursor" y1="{TOP}" y2="{TOP + ph}"/>'
        f'<circle r="3.5"/><text class="tip" y="{TOP + 12}"></text></g>'
        "</svg>"
    )
