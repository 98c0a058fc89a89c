"""Objects an earlier backup saved that Neptune no longer lists: their copies are kept, and
each is named in a notice."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..format import layout
from ..format.manifest import Manifest
from ..selection import Selection


def gone_runs(project_folder: Path, listed: set[str], selection: Selection) -> list[str]:
    """Blocking: the folders of runs backed up in ``project_folder``, of ``selection``'s shard,
    whose sys ids the listing (``listed``) no longer has."""
    folders = {layout.object_segment(s) for s in listed}
    out = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # a file there fails each run
        for path in sorted(project_folder.iterdir()):
            manifest = path / layout.MANIFEST
            if path.name.startswith("_") or path.name in folders or not manifest.is_file():
                continue
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                # An ordinary id is its folder's name; only escaped ones need the manifest.
                plain = layout.object_segment(path.name) == path.name
                sys_id = path.name if plain else Manifest.loads(manifest.read_text("utf-8")).sys_id
                if selection.owns(sys_id):
                    out.append(path.name)
    return out
