"""A dry run's plan of one object: what a backup would fetch, by field type, and how many
bytes where the listing gives sizes. It fetches and writes nothing."""

from __future__ import annotations

from ..domain import FieldInfo
from ..format.reader import Action, Previous, decide, layout_for


def plan(
    planned: dict[str, list[int]],
    fields: list[FieldInfo],
    previous: Previous | None,
    *,
    full: bool,
    download_artifacts: bool,
) -> None:
    """Add to ``planned`` (fields and bytes by type) the ``fields`` a backup would fetch."""
    paths = layout_for(fields, previous, ())
    for info in fields:
        if not info.type.is_simple:
            action, _ = decide(info, previous, full=full, download_artifacts=download_artifacts, paths=paths)
            if action is Action.REUSE:
                continue
        tally = planned.setdefault(info.type.value, [0, 0])
        tally[0] += 1
        tally[1] += info.size or 0  # the listing gives sizes of files and file sets only
