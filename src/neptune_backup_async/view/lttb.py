"""Largest-Triangle-Three-Buckets downsampling, keeping the first, last and extreme points.

A pure function: it reads two sequences and returns the indexes to draw, in order.
"""

from __future__ import annotations

from collections.abc import Sequence


def lttb(xs: Sequence[float], ys: Sequence[float], threshold: int) -> list[int]:
    """Indexes of at most ``threshold`` points of ``(xs, ys)`` that draw like the whole series.

    Always keeps the first and the last point and the points of the smallest and the
    largest ``y`` (the first of each when it repeats); returns exactly ``threshold``
    indexes when there are more points than that, every index when there are not. The
    values must be finite.
    """
    n = len(xs)
    if len(ys) != n:
        raise ValueError("xs and ys differ in length")
    if n <= threshold:
        return list(range(n))
    if threshold < 4:
        raise ValueError("threshold must be at least 4 (first, last, smallest and largest)")
    picked = [0]
    buckets = threshold - 2  # interior buckets, one point picked from each

    def edge(i: int) -> int:  # the first index of interior bucket i (integer maths: exact)
        return (i * (n - 2)) // buckets + 1

    a = 0
    bounds: list[tuple[int, int]] = []  # [start, end) of each interior bucket
    for i in range(buckets):
        start, end = edge(i), edge(i + 1)
        bounds.append((start, end))
        # the average of the next bucket (the last point for the last bucket)
        next_start, next_end = end, (edge(i + 2) if i + 2 <= buckets else n)
        if i == buckets - 1:
            avg_x, avg_y = float(xs[n - 1]), float(ys[n - 1])
        else:
            count = next_end - next_start
            avg_x = sum(xs[next_start:next_end]) / count
            avg_y = sum(ys[next_start:next_end]) / count
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        picked.append(best)
        a = best
    picked.append(n - 1)
    # Keep the extremes: each replaces the pick of its own bucket (or of a neighbour when
    # both extremes fall in one bucket), so the count stays the same.
    lowest = ys.index(min(ys))
    highest = ys.index(max(ys))
    required = {0, n - 1, lowest, highest}
    for extreme in (lowest, highest):
        if extreme in picked:
            continue
        bucket = next(b for b, (s, e) in enumerate(bounds) if s <= extreme < e)
        for candidate in (bucket, *range(bucket + 1, len(bounds)), *range(bucket - 1, -1, -1)):
            if picked[candidate + 1] not in required:
                picked[candidate + 1] = extreme
                break
    return sorted(picked)
