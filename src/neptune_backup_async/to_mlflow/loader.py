"""``load_mlflow``: load a backup into MLflow, concurrently, resumably and incrementally.

Objects go through a bounded memory stream to ``concurrency`` workers; every blocking
call (MLflow's client, reading the backup) runs in a thread under one CapacityLimiter.
Within one object everything is sent in order, one call after another, so a stopped load
always leaves a prefix of each series in MLflow (see ``state.py``).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from ..disk.lock import Lock
from ..engine.limiter import each
from ..format import values
from ..format.report import Note
from ..loading import backup as reader
from ..loading import files, session
from ..loading.report import redact_uri
from ..loading.series import Point, read_as
from . import convert, naming, plan, tracking
from .load_report import REPORT, LoadProgress, LoadReport
from .state import Loaded, SeriesState, file_hashes

HOME = ".mlflow"  # in DEST: the default SQLite database, its artifacts, and files being staged


class _Replace(Exception):
    """The object changed in a way MLflow cannot update in place (a param's value, a series rewritten)."""


def _staging(dest: Path) -> Path:
    return dest / HOME / "staging" / str(os.getpid())


def default_uri(dest: Path) -> str:
    return f"sqlite:///{(dest / HOME / 'mlflow.db').resolve()}"


def default_artifact_root(dest: Path, uri: str) -> str | None:
    """Artifacts of a local SQLite database go beside it, as ``mlflow server`` does; other
    stores and servers decide for themselves."""
    if uri == default_uri(dest):
        return (dest / HOME / "artifacts").resolve().as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
    return None


class _Loader(session.Workers[LoadReport]):
    def __init__(
        self, dest: Path, mlflow: tracking.Tracking, report: LoadReport, concurrency: int,
        progress: Callable[[LoadProgress], None] | None, experiment_of: dict[str, str],
        prefix: str = "",
    ) -> None:  # fmt: skip
        super().__init__(report, concurrency, progress)
        self.dest = dest
        self.mlflow = mlflow
        self.staging = _staging(dest)
        self.experiment_of = experiment_of  # object folder -> experiment name
        self.prefix = prefix

    async def run(
        self, objects: list[reader.BackupObject], found: dict[str, dict[str, tracking.FoundRun]]
    ) -> None:
        async def work(obj: reader.BackupObject) -> None:
            exp_id = self.report.experiments[self.experiment_of[obj.rel]]
            await self.load_object(obj, exp_id, found[exp_id].get(obj.manifest.sys_id))
            self.tick()

        await each(objects, work, self.concurrency)

    def _fail(self, obj: reader.BackupObject, field: str | None, reason: str) -> None:
        self.report.failures.append(Note(obj.project, obj.manifest.sys_id, field, reason))

    async def load_object(
        self, obj: reader.BackupObject, exp_id: str, found: tracking.FoundRun | None
    ) -> None:
        try:
            meta, meta_bytes = await self.call(reader.read_metadata, obj)
            the_plan = plan.build(obj.manifest, meta)
        except reader.Differs as e:
            self.report.objects_failed += 1
            self._fail(obj, None, str(e))
            return
        except (OSError, ValueError) as e:
            self.report.objects_failed += 1
            self._fail(obj, None, f"cannot read it from the backup ({e}); run verify")
            return
        for path, why in reader.backup_failures(obj, the_plan.failed):
            self._fail(obj, path, why)
        if found is not None and _is_loaded(found, obj):
            self.report.objects_unchanged += 1
            return
        try:
            try:
                await self._load(obj, exp_id, the_plan, found, meta_bytes)
            except _Replace as why:
                assert found is not None
                await self.call(self.mlflow.delete, found.run_id)
                self.report.objects_replaced += 1
                self.report.notices.append(
                    Note(obj.project, obj.manifest.sys_id, None, f"loaded anew ({why}); the old MLflow run"
                         f" {found.run_id} is deleted (restorable until `mlflow gc`)")
                )  # fmt: skip
                await self._load(obj, exp_id, the_plan, None, meta_bytes)
        except reader.Differs as e:  # what was loaded before it is read back by the next load
            self.report.objects_failed += 1
            self._fail(obj, None, str(e))
            return
        except Exception as e:  # one object's failure never stops the others
            self.report.objects_failed += 1
            self._fail(obj, None, f"loading into MLflow failed: {type(e).__name__}: {e}")
            return
        self.report.objects_loaded += 1

    async def _load(
        self, obj: reader.BackupObject, exp_id: str, the_plan: plan.Plan, found: tracking.FoundRun | None,
        meta: bytes | None,
    ) -> None:  # fmt: skip
        loaded, trusted = Loaded(), False
        if found is not None:
            if found.tags.get(convert.MAPPING) != convert.MAPPING_VERSION:
                raise _Replace("an earlier version of load-mlflow put its fields elsewhere")
            for key, value in the_plan.params.items():
                if found.params.get(key, value) != value:
                    raise _Replace(f"the value of param {key} changed")
            loaded = Loaded.from_json(await self.call(self.mlflow.read_json, found.run_id, plan.LOADED_JSON))
            trusted = (
                found.tags.get(convert.STATUS) == convert.COMPLETE
                and found.tags.get(convert.LOADED) == loaded.fingerprint
            )
            run_id = found.run_id
            params = {k: v for k, v in the_plan.params.items() if k not in found.params}
            for key in found.tags:  # a Neptune tag taken off since the last load
                if key.startswith(naming.TAG_PREFIX) and key not in the_plan.tags:
                    await self.call(self.mlflow.delete_tag, run_id, key)
        else:
            tags = {**the_plan.shape.tags, convert.STATUS: convert.LOADING}
            run_id = await self.call(self.mlflow.create_run, exp_id, the_plan.shape, tags)
            params = the_plan.params
        packer = convert.Packer()

        async def add(kind: str, item: Any) -> None:
            full = packer.add(kind, item)
            if full is not None:
                await self.call(self.mlflow.log_batch, run_id, full)
                self.report.points += len(full.metrics)
                self.report.params += len(full.params)

        if found is not None and trusted:  # alone and first, so a stop from here on is seen as one
            await self.call(
                self.mlflow.log_batch, run_id, convert.Batch(tags=[(convert.STATUS, convert.LOADING)])
            )
        for item in params.items():
            await add("param", item)
        for item in the_plan.tags.items():
            await add("tag", item)
        new = Loaded(obj.fingerprint)
        for path, csv in sorted(the_plan.series.items()):
            key = the_plan.keys[path]
            series = await self.call(reader.read_series, obj, csv)
            with read_as(csv):
                points = series.points()
            rule = convert.step_rule(points)
            start = await self._start(run_id, path, key, rule, points, series, loaded, trusted, found is None)
            for i in range(start, len(points)):
                p = points[i]
                await add("metric", (key, p.value, p.timestamp, convert.mlflow_step(rule, p, i)))
            new.series[path] = SeriesState(key, len(points), series.prefix_sha256(len(points)), rule)
        if (last := packer.rest()) is not None:
            await self.call(self.mlflow.log_batch, run_id, last)
            self.report.points += len(last.metrics)
            self.report.params += len(last.params)
        await self._artifacts(obj, run_id, the_plan, loaded, trusted, new, meta)
        if obj.manifest.kind == "project":  # where MLflow shows an experiment's own data
            runs_experiment = self.report.experiments[self.prefix + obj.project]
            for key, value in the_plan.values().items():
                await self.call(self.mlflow.set_experiment_tag, runs_experiment, key, value)
        await self.call(self.mlflow.finish, run_id, the_plan.shape)
        done = convert.Batch(tags=[(convert.STATUS, convert.COMPLETE), (convert.LOADED, obj.fingerprint)])
        await self.call(self.mlflow.log_batch, run_id, done)

    async def _start(
        self, run_id: str, path: str, key: str, rule: str, points: list[Point],
        series: reader.SeriesFile, loaded: Loaded, trusted: bool, fresh: bool,
    ) -> int:  # fmt: skip
        """How many points of a series are in MLflow already; _Replace when they are not its first ones."""
        if fresh:
            return 0
        before = loaded.series.get(path)
        if trusted:
            if before is None:
                return 0  # a new field: nothing of it was sent after loaded.json
            if before.key != key or before.steps != rule or before.rows > len(points):
                raise _Replace(f"series {path} was rewritten")
            if series.prefix_sha256(before.rows) != before.prefix:
                raise _Replace(f"series {path} was rewritten")
            return before.rows
        history = sorted(await self.call(self.mlflow.history, run_id, key), key=lambda h: (h[0], h[2]))
        expected = sorted(
            (convert.mlflow_step(rule, p, i), convert.stored_value(p.value), p.timestamp)
            for i, p in enumerate(points[: len(history)])
        )
        expected.sort(key=lambda h: (h[0], h[2]))
        if len(history) > len(points) or not all(map(convert.same_point, history, expected)):
            raise _Replace(f"series {path} in MLflow is not the start of the backup's")
        return len(history)

    async def _artifacts(
        self, obj: reader.BackupObject, run_id: str, the_plan: plan.Plan, loaded: Loaded, trusted: bool,
        new: Loaded, meta: bytes | None,
    ) -> None:  # fmt: skip
        uploads: list[files.Upload] = []
        for path, ups in the_plan.uploads.items():
            hashes = file_hashes(obj.manifest, path)
            new.artifacts[path] = hashes
            if not trusted or loaded.artifacts.get(path) != hashes:
                uploads.extend(ups)
        steps = {p: s.steps for p, s in new.series.items()}
        docs = {
            plan.FIELDS_JSON: values.dumps(the_plan.fields_doc(obj.manifest, steps)),
            plan.LOADED_JSON: values.dumps(new.to_json()),
            **the_plan.long_values,
        }
        await self.call(functools.partial(self.staging.mkdir, parents=True, exist_ok=True))
        root = Path(await self.call(tempfile.mkdtemp, "", "run-", str(self.staging)))
        try:

            def lay_out() -> int:
                laid = files.stage(obj, uploads, root, naming.is_plain_segment)
                size = sum((root / p).stat().st_size for p in laid)
                for target, text in docs.items():
                    (root / target).parent.mkdir(parents=True, exist_ok=True)
                    (root / target).write_text(text, encoding="utf-8")
                if meta is not None:  # as checked when it was read
                    (root / plan.METADATA_JSON).write_bytes(meta)
                return size

            self.report.artifact_bytes += await self.call(lay_out)
            await self.call(self.mlflow.log_artifacts, run_id, root)
        finally:
            await self.call(functools.partial(shutil.rmtree, root, ignore_errors=True))


async def load_mlflow(
    destination: str | Path,
    tracking_uri: str | None = None,
    *,
    experiment_prefix: str = "",
    projects: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    concurrency: int = 8,
    artifact_root: str | None = None,
    dry_run: bool = False,
    progress: Callable[[LoadProgress], None] | None = None,
) -> LoadReport:
    """Load the backup in ``destination`` into MLflow; returns (and, unless a dry run, writes) a report.

    ``tracking_uri``: anything MLflow accepts; by default a SQLite database in
    ``destination/.mlflow``. ``projects`` (``ws/proj``) and ``runs`` (``sys/id``) narrow
    what is loaded. Running it again resumes a stopped load and adds what a later backup
    added; nothing is loaded twice.
    """
    dest = Path(destination)
    reader.require_backup(dest)
    uri = tracking_uri or default_uri(dest)
    root = artifact_root or default_artifact_root(dest, uri)
    report = LoadReport(str(dest.resolve()), redact_uri(uri), dt.datetime.now(dt.timezone.utc))
    report.dry_run = dry_run
    objects = await session.find(dest, projects, runs, convert.MAPPING_VERSION, concurrency, report)
    if dry_run:
        await _dry_run(uri, root, experiment_prefix, objects, report)
        report.finished_at = dt.datetime.now(dt.timezone.utc)
        return report
    # One load at a time: its staging, its default database and its report are DEST's.
    with await anyio.to_thread.run_sync(Lock.take, dest, "load-mlflow", "load-mlflow"):
        return await _load_all(dest, uri, root, experiment_prefix, objects, concurrency, progress, report)


async def _load_all(
    dest: Path, uri: str, root: str | None, experiment_prefix: str, objects: list[reader.BackupObject],
    concurrency: int, progress: Callable[[LoadProgress], None] | None, report: LoadReport,
) -> LoadReport:  # fmt: skip
    """Load ``objects``, writing the report however it ends."""
    async with session.reported(dest, report, REPORT, _staging(dest)):
        if progress is not None:  # the total is known; MLflow may take long to start
            progress(report.progress(starting=True))
        mlflow = await anyio.to_thread.run_sync(tracking.Tracking, uri, root)
        await anyio.to_thread.run_sync(mlflow.check)
        loader = _Loader(
            dest,
            mlflow,
            report,
            concurrency,
            progress,
            {o.rel: plan.experiment_name(experiment_prefix, o.manifest) for o in objects},
            experiment_prefix,
        )
        found: dict[str, dict[str, tracking.FoundRun]] = {}
        await anyio.to_thread.run_sync(reader.remove_stale_staging, dest / HOME / "staging")
        projects = {experiment_prefix + o.project for o in objects if o.manifest.kind == "project"}
        for name in sorted(set(loader.experiment_of.values()) | projects):
            exp_id = await loader.call(mlflow.experiment, name)
            report.experiments[name] = exp_id
            found[exp_id] = _by_id(await loader.call(mlflow.find_runs, exp_id), report, name)
            if name in projects:  # the project's fields as a run among its runs, as loads before put them
                for run in [r for r in found[exp_id].values() if r.tags.get(convert.KIND) == "project"]:
                    await loader.call(mlflow.delete, run.run_id)
                    report.notices.append(Note(name, run.tags[convert.ID], None, f"the project's fields are now"
                        f" in {name}{plan.PROJECT_SUFFIX} and tags of {name}; the run {run.run_id} that held them"
                        " is deleted (restorable until `mlflow gc`)"))  # fmt: skip
        await loader.run(objects, found)
    return report


def _is_loaded(run: tracking.FoundRun, obj: reader.BackupObject) -> bool:
    """The run holds all of this backup of the object."""
    return (
        run.tags.get(convert.STATUS) == convert.COMPLETE and run.tags.get(convert.LOADED) == obj.fingerprint
    )


def _by_id(
    runs: list[tracking.FoundRun], report: LoadReport, experiment: str
) -> dict[str, tracking.FoundRun]:
    """The run of each Neptune id; if a user copied one, the earliest is the one loads keep."""
    out: dict[str, tracking.FoundRun] = {}
    for run in sorted(runs, key=lambda r: (r.start_time or 0, r.run_id)):
        sys_id = run.tags[convert.ID]
        if sys_id in out:
            report.notices.append(
                Note(
                    experiment,
                    sys_id,
                    None,
                    f"more than one MLflow run has this id; {run.run_id} is left alone",
                )
            )
            continue
        out[sys_id] = run
    return out


async def _dry_run(
    uri: str,
    root: str | None,
    prefix: str,
    objects: list[reader.BackupObject],
    report: LoadReport,
) -> None:
    """Count what a load would do; asks MLflow what it holds, and writes nothing (nor a new database)."""
    found: dict[str, tracking.FoundRun] = {}
    local_db = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
    if local_db is None or Path(local_db).exists():
        mlflow = await anyio.to_thread.run_sync(tracking.Tracking, uri, root)
        await anyio.to_thread.run_sync(mlflow.check)
        for name in sorted({plan.experiment_name(prefix, o.manifest) for o in objects}):
            exp_id = await anyio.to_thread.run_sync(mlflow.find_experiment, name)
            if exp_id is not None:
                runs = await anyio.to_thread.run_sync(mlflow.find_runs, exp_id)
                found.update({f"{name}\n{k}": v for k, v in _by_id(runs, report, name).items()})
    for obj in objects:
        run = found.get(f"{plan.experiment_name(prefix, obj.manifest)}\n{obj.manifest.sys_id}")
        if run is not None and _is_loaded(run, obj):
            report.objects_unchanged += 1
            continue
        report.objects_loaded += 1
        records = obj.manifest.fields.values()
        report.points += sum(int(r.extra.get("rows", 0)) for r in records if r.type == "floatSeries")
