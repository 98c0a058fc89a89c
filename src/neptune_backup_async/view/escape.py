"""Safe embedding of strings from the backup in HTML and in JSON inside ``<script>``."""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import quote


def h(value: object) -> str:
    """Text or attribute content: ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN or the infinities: they become their names as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Deterministic JSON that is safe anywhere in HTML: inside ``<script>`` no ``</script>``
    or ``<!--`` can appear, since ``<``, ``>`` and ``&`` are written as ``\\u`` escapes."""
    text = json.dumps(
        _clean(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def url(path: str) -> str:
    """A relative path (``/``-separated) as a URL path: ``%``, ``#``, ``?`` and spaces encoded."""
    return quote(path, safe="/~")
