"""Progress on a terminal: what the backup is doing, objects done, bytes written, failures and retries.

While runs are still being listed the total is not known, so the objects bar only counts
(no percentage, no ETA); it gets its total once every listing has been read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from ..format.report import BACKING_UP, Progress, plural


@dataclass(frozen=True)
class BarState:
    description: str
    total: int | None  # None while objects are still being listed
    done: int
    postfix: str


def bar_state(p: Progress, dry_run: bool = False) -> BarState:
    """What the objects bar shows for one progress snapshot."""
    description = p.stage
    if p.stage == BACKING_UP and dry_run:
        description = "listing fields"
    extras = []
    if not p.listing_done and p.objects_found:
        extras.append(f"{p.objects_found} found")
    if p.objects_failed:
        extras.append(f"{p.objects_failed} failed")
    if p.retries:
        extras.append(plural(p.retries, "retry", "retries"))
    total = p.objects_found if p.listing_done else None
    return BarState(description, total, p.objects_done + p.objects_failed, ", ".join(extras))


class Bars:
    """tqdm bars for objects and bytes, on stderr; nothing unless ``enabled``."""

    def __init__(self, enabled: bool, first_words: str, dry_run: bool = False) -> None:
        self.dry_run = dry_run
        self._shown: tuple[str, int | None, str] = (first_words, None, "")
        self.objects: Any = None
        self.bytes: Any = None
        if enabled:
            from tqdm import tqdm

            self.objects = tqdm(desc=first_words, unit="obj", total=None, file=sys.stderr, dynamic_ncols=True)
            if not dry_run:
                self.bytes = tqdm(desc="written", unit="B", unit_scale=True, file=sys.stderr, position=1)

    def __call__(self, p: Progress) -> None:
        bar = self.objects
        if bar is None:
            return
        state = bar_state(p, self.dry_run)
        bar.update(state.done - bar.n)  # tqdm redraws at most every 0.1 s
        if (state.description, state.total, state.postfix) != self._shown:
            self._shown = (state.description, state.total, state.postfix)
            bar.total = state.total
            bar.set_description_str(state.description, refresh=False)
            bar.set_postfix_str(state.postfix, refresh=False)
            bar.refresh()
        if self.bytes is not None:
            self.bytes.update(p.bytes_written - self.bytes.n)

    def close(self) -> None:
        for bar in (self.objects, self.bytes):
            if bar is not None:
                bar.close()
        self.objects = self.bytes = None
