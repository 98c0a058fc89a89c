"""``load_wandb``: load a backup into W&B, concurrently, resumably and incrementally.

Objects go, in batches, through a bounded memory stream to ``concurrency`` workers; every
blocking call (wandb's client, reading the backup) runs in a thread under one CapacityLimiter.
Each object is checked whole before anything of it is written (its files are laid out,
checked, first), then written as one W&B run in one call. wandb writes each run in a staging
folder; after a batch, wandb is stopped (its logs are whole only then) and, offline, each
finished run folder is renamed into ``DIR/wandb/``: a stopped load leaves no half run.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..disk.lock import FOLDER, Lock
from ..engine.limiter import each
from ..errors import UsageError
from ..format import values
from ..format.report import Note
from ..loading import backup, files, session
from ..loading.report import LoadProgress, redact_uri
from ..loading.series import Point, Text, parse_string_series, read_as
from . import client, convert, naming, plan
from .load_report import REPORT, LoadReport
from .offline import OfflineRuns
from .state import Loaded, SeriesState, config_hashes, file_hashes

BATCH_PER_WORKER = 4  # objects per worker between two stops of wandb (each costs a restart, ~0.7 s)
STAGING = f"{FOLDER}/wandb-staging"  # in DIR (offline) or DEST: runs being written, by pid


class Rewritten(Exception):
    """A series is not an extension of what W&B holds: W&B cannot take history rows away."""


def _prefix(points: Sequence[Point | Text | convert.Item], rows: int) -> str:
    """Of the first ``rows`` points: tells whether a series only grew."""
    digest = hashlib.sha256()
    for p in points[:rows]:
        value = [p.value.file, p.value.caption] if isinstance(p.value, convert.ImageRef) else p.value
        digest.update(json.dumps([p.step, value, p.timestamp]).encode("utf-8") + b"\n")
    return digest.hexdigest()


@dataclass
class Written:
    """One object's run, written but not yet in place (wandb's logs are whole only once it stops)."""

    obj: backup.BackupObject
    run_id: str
    folder: Path  # the run folder wandb wrote, in staging
    points: int
    values: int
    size: int


class _Loader(session.Workers[LoadReport]):
    def __init__(
        self, report: LoadReport, concurrency: int, progress: Callable[[LoadProgress], None] | None,
        staging: Path, offline: OfflineRuns | None, entity: str | None, project_of: Callable[[str], str],
    ) -> None:  # fmt: skip
        super().__init__(report, concurrency, progress)
        self.staging = staging
        self.offline = offline
        self.entity = entity
        self.project_of = project_of

    async def run(self, objects: list[backup.BackupObject]) -> None:
        """Load ``objects`` in batches: each batch's runs are written concurrently, then wandb is
        stopped (which writes its logs out whole: ``finish()`` may return before), then they are
        put in place."""
        size = self.concurrency * BATCH_PER_WORKER
        for start in range(0, len(objects), size):
            written = await self._batch(objects[start : start + size])
            if written:
                await self.call(client.teardown)
            for done in written:
                await self.place(done)

    async def _batch(self, batch: list[backup.BackupObject]) -> list[Written]:
        written: list[Written] = []

        async def work(obj: backup.BackupObject) -> None:
            if (done := await self.load_object(obj)) is not None:
                written.append(done)
            self.tick()

        await each(batch, work, self.concurrency)
        return written

    async def place(self, done: Written) -> None:
        """Put the run in place (offline), and free its staging (online, wandb's local copy of it)."""
        if self.offline is not None:
            await self.call(self.offline.add, done.run_id, done.folder)
        await self.call(functools.partial(shutil.rmtree, self.staging / done.run_id, ignore_errors=True))
        self.report.objects_loaded += 1
        self.report.points += done.points
        self.report.params += done.values
        self.report.artifact_bytes += done.size
        self.tick()

    def _fail(self, obj: backup.BackupObject, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(obj.project, obj.manifest.sys_id, field, reason))

    async def state(self, project: str, run_id: str) -> Loaded | None:
        if self.offline is not None:
            return self.offline.state(run_id)
        found = await self.call(client.read_online_state, self.entity, project, run_id, plan.LOADED_JSON)
        try:
            return Loaded.from_json(json.loads(found)) if found is not None else None
        except ValueError:  # not ours: loaded as new
            return None

    async def load_object(self, obj: backup.BackupObject) -> Written | None:
        """Write the object's run, or count it as unchanged or failed."""
        try:
            meta, meta_bytes = await self.call(backup.read_metadata, obj)
            the_plan = plan.build(obj.manifest, meta)
        except backup.Differs as e:
            self.report.objects_failed += 1
            self._fail(obj, None, str(e))
            return None
        except (OSError, ValueError) as e:
            self.report.objects_failed += 1
            self._fail(obj, None, f"cannot read it from the backup ({e}); run verify")
            return None
        for path, why in backup.backup_failures(obj, the_plan.failed):
            self._fail(obj, path, why)
        project = self.project_of(obj.project)
        try:
            before = await self.state(project, the_plan.run.id)
            if before is not None and before.fingerprint == obj.fingerprint:
                self.report.objects_unchanged += 1
                return None
            if self.offline is not None or before is None:  # offline, every load writes the whole run
                before = Loaded()
            return await self._load(obj, project, the_plan, before, meta_bytes)
        except (backup.Differs, Rewritten) as e:
            self.report.objects_failed += 1
            self._fail(obj, None, str(e))
        except Exception as e:  # one object's failure never stops the others
            self.report.objects_failed += 1
            self._fail(obj, None, f"loading into W&B failed: {type(e).__name__}: {e}")
        return None

    async def _series(
        self, obj: backup.BackupObject, the_plan: plan.Plan, before: Loaded, new: Loaded
    ) -> list[tuple[str, Sequence[Point | Text | convert.Item]]]:
        """The points of each series not yet in W&B; Rewritten when one is not an extension."""
        out: list[tuple[str, Sequence[Point | Text | convert.Item]]] = []

        def read(s: plan.Series, had: int) -> tuple[Sequence[Point | Text | convert.Item], str, str]:
            """The series' points, and the hashes of its first ``had`` and of all of them."""
            points: Sequence[Point | Text | convert.Item]
            with read_as(s.csv):
                if s.kind == "float":
                    points = backup.read_series(obj, s.csv).points()
                elif s.kind == "image":
                    laid = {u.target for u in the_plan.uploads.get(s.path, [])}
                    points = convert.image_items(
                        backup.read_checked(obj, s.csv), f"{plan.FILES}/{s.key}", laid
                    )
                else:
                    points = parse_string_series(backup.read_checked(obj, s.csv).decode("utf-8"))
            return points, _prefix(points, had), _prefix(points, len(points))

        for s in the_plan.series:
            had = before.series.get(s.path)
            points, prefix, whole = await self.call(read, s, had.rows if had is not None else 0)
            start = 0
            if had is not None:
                if had.key != s.key or had.rows > len(points) or prefix != had.prefix:
                    raise Rewritten(
                        f"series {s.path} was rewritten since it was loaded, and W&B cannot take points"
                        f" away: delete the W&B run {the_plan.run.id} (and its offline runs), then load again"
                    )
                start = had.rows
            new.series[s.path] = SeriesState(s.key, len(points), whole)
            if start < len(points):
                out.append((s.key, points[start:]))
        return out

    async def _load(
        self, obj: backup.BackupObject, project: str, the_plan: plan.Plan, before: Loaded, meta: bytes | None
    ) -> Written:
        """Write what W&B does not hold (``before``) of the object as one run, in staging."""
        new = Loaded(obj.fingerprint, before.step, config=config_hashes(the_plan.config))
        pending = await self._series(obj, the_plan, before, new)
        rows = await self.call(convert.rows, pending)
        new.step = before.step + len(rows)
        config = {k: v for k, v in the_plan.config.items() if before.config.get(k) != new.config[k]}
        uploads: list[files.Upload] = []
        for path, ups in the_plan.uploads.items():
            new.files[path] = file_hashes(obj.manifest, path)
            if before.files.get(path) != new.files[path]:
                uploads.extend(ups)
        own = {
            plan.FIELDS_JSON: values.dumps(the_plan.fields_doc(obj.manifest)).encode("utf-8"),
            plan.LOADED_JSON: values.dumps(new.to_json()).encode("utf-8"),
        }
        if meta is not None:  # as checked when it was read
            own[plan.METADATA_JSON] = meta
        where = self.staging / the_plan.run.id
        staged = where / "staged"

        def lay_out() -> list[str]:
            shutil.rmtree(where, ignore_errors=True)
            staged.mkdir(parents=True)
            laid = files.stage(obj, uploads, staged, naming.plain_file_segment)
            for rel, data in own.items():
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                (staged / rel).write_bytes(data)
            return [*laid, *own]

        try:
            laid = await self.call(lay_out)
            size = sum((staged / rel).stat().st_size for rel in laid) - sum(map(len, own.values()))
            keys = [s.key for s in the_plan.series]
            folder = await self.call(
                client.write,
                self.entity,
                project,
                the_plan.run,
                self.offline is not None,
                where,
                config,
                keys,
                before.step,
                rows,
                staged,
                laid,
            )
        except BaseException:
            await self.call(functools.partial(shutil.rmtree, where, ignore_errors=True))
            raise
        images = {s.key for s in the_plan.series if s.kind == "image"}
        points = sum(len(points) for key, points in pending if key not in images)
        return Written(obj, the_plan.run.id, folder, points, sum(_leaves(v) for v in config.values()), size)


def _leaves(value: Any) -> int:
    return sum(map(_leaves, value.values())) if isinstance(value, dict) and value else 1


def project_chooser(project: str | None, project_map: Mapping[str, str] | None) -> Callable[[str], str]:
    """The W&B project of each Neptune project: ``project`` for all, else the map's, else the default."""
    chosen = dict(project_map or {})

    def of(neptune_project: str) -> str:
        return project or chosen.get(neptune_project) or naming.project_name(neptune_project)

    return of


async def load_wandb(
    destination: str | Path,
    *,
    offline: str | Path | None = None,
    entity: str | None = None,
    project: str | None = None,
    project_map: Mapping[str, str] | None = None,
    projects: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    concurrency: int = 8,
    dry_run: bool = False,
    progress: Callable[[LoadProgress], None] | None = None,
) -> LoadReport:
    """Load the backup in ``destination`` into W&B; returns (and, unless a dry run, writes) a report.

    Online, into the W&B server of the user's ``wandb login`` (or ``WANDB_API_KEY`` and
    ``WANDB_BASE_URL``); with ``offline``, as offline runs in ``offline/wandb/`` that
    ``wandb sync`` uploads later. ``project`` puts every Neptune project into one W&B project,
    ``project_map`` names one per Neptune project (``ws/proj`` -> name); else each goes to
    ``ws-proj``. ``projects`` (``ws/proj``) and ``runs`` (``sys/id``) narrow what is loaded.
    Running it again resumes a stopped load and adds what a later backup added; nothing is
    loaded twice.
    """
    dest = Path(destination)
    if project is not None and project_map:
        raise UsageError("Give either --project or --project-map, not both.")
    client.require_wandb()
    backup.require_backup(dest)
    out = Path(offline) if offline is not None else None
    target = (
        f"offline {out.resolve()}"
        if out is not None
        else redact_uri(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    )
    report = LoadReport(str(dest.resolve()), target, dt.datetime.now(dt.timezone.utc))
    report.dry_run = dry_run
    objects = await session.find(dest, projects, runs, plan.MAPPING, concurrency, report)
    project_of = project_chooser(project, project_map)
    for obj in objects:
        name = project_of(obj.project)
        report.places[name] = f"{entity}/{name}" if entity else name
    if dry_run:
        await anyio.to_thread.run_sync(_dry_run, out, objects, report)
        report.finished_at = dt.datetime.now(dt.timezone.utc)
        return report
    with await anyio.to_thread.run_sync(Lock.take, dest, "load-wandb", "load-wandb"):
        return await _load_all(dest, out, entity, project_of, objects, concurrency, progress, report)


async def _load_all(
    dest: Path, out: Path | None, entity: str | None, project_of: Callable[[str], str],
    objects: list[backup.BackupObject], concurrency: int, progress: Callable[[LoadProgress], None] | None,
    report: LoadReport,
) -> LoadReport:  # fmt: skip
    """Load ``objects``, writing the report however it ends."""
    home = (out if out is not None else dest) / STAGING
    staging = home / str(os.getpid())
    async with session.reported(dest, report, REPORT, staging):
        if progress is not None:
            progress(report.progress(starting=True))
        await anyio.to_thread.run_sync(backup.remove_stale_staging, home)
        offline = await anyio.to_thread.run_sync(OfflineRuns, out) if out is not None else None
        if offline is not None:
            for run_id in list(offline.by_id):
                await anyio.to_thread.run_sync(offline.tidy, run_id)
        loader = _Loader(report, concurrency, progress, staging, offline, entity, project_of)
        with client.kept_process_state():
            try:
                await loader.run(objects)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(client.teardown)
    return report


def _dry_run(out: Path | None, objects: list[backup.BackupObject], report: LoadReport) -> None:
    """Count what a load would do; offline, from the runs in ``out``; online, as if W&B held nothing."""
    offline = OfflineRuns(out) if out is not None else None
    for obj in objects:
        before = offline.state(naming.run_id(obj.project, obj.manifest.sys_id)) if offline else None
        if before is not None and before.fingerprint == obj.fingerprint:
            report.objects_unchanged += 1
            continue
        report.objects_loaded += 1
        records = obj.manifest.fields.values()
        report.points += sum(
            int(r.extra.get("rows", 0)) for r in records if r.type in ("floatSeries", "stringSeries")
        )
