"""A run's string series as logs: their last lines, each with its step."""

from __future__ import annotations

from .charts import num
from .data import Run, read_string_series
from .escape import h
from .parts import Links

LOG_LINES = 2_000  # the last lines of a string series shown on its run page


def logs(run: Run, paths: list[str], links: Links) -> str:
    out = []
    for path in paths:
        rel = run.field_file(path, ".csv")
        if rel is None:
            continue
        rows, total = read_string_series(run.folder / rel, LOG_LINES)
        note = f" (the last {len(rows)} of {total} lines)" if total > len(rows) else f" ({total} lines)"
        steps = [_step(step) for step, _ in rows]
        width = max(map(len, steps), default=0)  # right-aligned, so that the lines' text aligns
        # a line is an element, newline included, so that the page's search can hide it
        lines = "".join(
            f'<span class="line"><span class="step">{h(step.rjust(width))}</span> {h(text)}\n</span>'
            for step, (_, text) in zip(steps, rows, strict=True)
        )
        out.append(
            f'<h3>{h(path)}</h3><p class="muted">{note.strip()} · <a href="{links.backup_file(run, rel)}">CSV</a></p>'
            f'<pre class="log" tabindex="0" aria-label="{h(path)}">{lines}</pre>'
        )
    return "".join(out)


def _step(text: str) -> str:
    try:
        return num(float(text))
    except ValueError:
        return text
