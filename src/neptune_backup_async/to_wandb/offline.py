"""The offline runs of a load in ``DIR/wandb`` (docs/WANDB.md "Offline").

Each load of an object that changed adds one run folder for it, ``offline-run-<time>-<id>``,
holding all of the object, renamed into place once wandb wrote it whole. ``wandb sync`` uploads
each folder as the whole run (one of an id over the other), so the earlier folders of the id
that it has not uploaded yet (no ``*.wandb.synced`` marker) are moved aside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from ..disk.lock import FOLDER
from . import plan
from .state import Loaded

RUNS = "wandb"  # in DIR: the finished offline runs, as `wandb sync DIR/wandb/offline-run-*` takes them
SUPERSEDED = f"{FOLDER}/wandb-superseded"  # in DIR: offline runs a later one holds all of, never synced
PREFIX = "offline-run-"
_STAMP = "%Y%m%d_%H%M%S"
_NAME = re.compile(r"offline-run-(\d{8}_\d{6})-(.+)")


class OfflineRuns:
    """The offline runs in ``DIR/wandb``: each load of an object adds one, named after it in time."""

    def __init__(self, root: Path) -> None:
        self.root = root / RUNS
        self.superseded = root / SUPERSEDED
        self.by_id: dict[str, list[Path]] = {}
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                match = _NAME.fullmatch(folder.name)
                if match and folder.is_dir():
                    self.by_id.setdefault(match.group(2), []).append(folder)

    def state(self, run_id: str) -> Loaded | None:
        for folder in reversed(self.by_id.get(run_id, [])):
            try:
                doc = json.loads((folder / "files" / plan.LOADED_JSON).read_bytes())
            except (OSError, ValueError):
                continue  # not one of ours, or not finished: an earlier one is
            return Loaded.from_json(doc)
        return None

    def add(self, run_id: str, written: Path) -> None:
        """Rename the finished run folder ``written`` into place, named later than any of its id,
        and move the earlier ones that ``wandb sync`` has not uploaded yet out of ``DIR/wandb``:
        it would upload each as the whole run, the later one over the earlier (the new one holds
        all of both)."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
        earlier = self.by_id.get(run_id, [])
        for folder in earlier:
            match = _NAME.fullmatch(folder.name)
            assert match is not None
            now = max(now, dt.datetime.strptime(match.group(1), _STAMP) + dt.timedelta(seconds=1))
        target = self.root / f"{PREFIX}{now.strftime(_STAMP)}-{run_id}"
        self.root.mkdir(parents=True, exist_ok=True)
        os.rename(written, target)
        self.by_id[run_id] = [*earlier, target]
        self.tidy(run_id)

    def tidy(self, run_id: str) -> None:
        """Move the run's folders but the newest that ``wandb sync`` has not uploaded out of
        ``DIR/wandb`` (a load stopped between renaming a new one in and this leaves them)."""
        *earlier, newest = self.by_id[run_id]
        for folder in earlier:
            if not any(folder.glob("*.wandb.synced")):
                self.superseded.mkdir(parents=True, exist_ok=True)
                os.rename(folder, self.superseded / folder.name)
        self.by_id[run_id] = [f for f in earlier if f.exists()] + [newest]
