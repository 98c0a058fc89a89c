"""The site's stylesheets and scripts, copied into ``<site>/assets/`` (no CDN: the site works offline).

``view.js`` and ``view.css`` are the site's own; uPlot (MIT, https://github.com/leeoniya/uPlot,
vendored unchanged from its npm package, with its licence) draws the charts.
"""

from __future__ import annotations

import hashlib
from importlib import resources

NAMES = ("view.css", "view.js", "uPlot.min.css", "uPlot.iife.min.js", "uPlot.LICENSE")


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")


ASSETS: dict[str, str] = {name: _read(name) for name in NAMES}
# Pages change when the assets do: rebuild them all then.
DIGEST = hashlib.sha256("".join(ASSETS[n] for n in NAMES).encode("utf-8")).hexdigest()[:16]
