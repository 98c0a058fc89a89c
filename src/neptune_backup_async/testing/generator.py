"""A deterministic workspace generator: the ground truth that tests and benchmarks back up.

The same seed and :class:`WorkloadSpec` always make the same world, byte for byte, so a
5-run test and a 10,000-run benchmark share one code path. Artifact files are real files
written under ``artifact_root``, because Neptune itself stores only their metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from .model import (
    Artifact,
    ArtifactFile,
    Bool,
    Checkpoint,
    Container,
    Datetime,
    File,
    FileSet,
    Float,
    FloatPoint,
    FloatSeries,
    GitRef,
    ImagePoint,
    ImageSeries,
    Int,
    NotebookRef,
    Project,
    State,
    String,
    StringPoint,
    StringSeries,
    StringSet,
    Value,
    World,
)

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
TAGS = ("baseline", "tuned", "gpu", "ablation", "nightly")
OWNERS = ("alice", "bob", "carol")


@dataclass(frozen=True)
class WorkloadSpec:
    """Sizes of a generated workspace. Every count may be 0 to leave that field type out."""

    seed: int = 0
    workspaces: int = 1
    projects_per_workspace: int = 1
    runs_per_project: int = 3
    parameters: int = 6
    float_series: int = 2
    float_series_length: int = 100
    string_series: int = 1
    string_series_length: int = 20
    monitoring: bool = True
    monitoring_float_length: int = 300
    monitoring_string_length: int = 50
    file_size: int = 1024
    file_set_files: int = 3
    images: int = 3
    artifact_files: int = 2
    notebook_every: int = 3  # every Nth run has a notebook ref (0: none)
    models: int = 1
    versions_per_model: int = 2
    project_fields: bool = True


# Runs with parameters and float series only: every other field type is off, to be turned
# on by name. Tests start from it as well as the named workloads.
MINIMAL = WorkloadSpec(
    string_series=0,
    monitoring=False,
    file_size=0,
    file_set_files=0,
    images=0,
    artifact_files=0,
    notebook_every=0,
    models=0,
    project_fields=False,
)

# Named workloads of the benchmark harness (see benchmarks/README.md).
WORKLOADS: dict[str, WorkloadSpec] = {
    "demo": WorkloadSpec(workspaces=1, projects_per_workspace=2, runs_per_project=4),
    "W1": replace(
        MINIMAL,
        runs_per_project=30,
        parameters=20,
        float_series=5,
        float_series_length=2_000,
        string_series=1,
        string_series_length=200,
        monitoring=True,
        file_size=100_000,
        file_set_files=3,
        images=3,
    ),
    "W2": replace(MINIMAL, runs_per_project=2_000, parameters=10, float_series=2, float_series_length=20),
    "W3": replace(MINIMAL, runs_per_project=1, parameters=5, float_series=200, float_series_length=50_000),
    "W4": replace(MINIMAL, runs_per_project=20, parameters=5, float_series=0, file_size=50_000_000),
}


def tiny_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A valid PNG of one colour, so that viewers of a backup can really show it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def notebook_json(source: str) -> bytes:
    """A Jupyter notebook of one code cell, as Jupyter writes it (nbformat 4, keys sorted)."""
    cell: dict[str, object] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": [source],
    }
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return (json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


class _Generator:
    def __init__(self, spec: WorkloadSpec, artifact_root: Path | None) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.artifact_root = artifact_root
        self.clock = EPOCH
        self.checkpoints: dict[str, Checkpoint] = {}

    def tick(self, seconds: float = 1.0) -> dt.datetime:
        self.clock += dt.timedelta(seconds=seconds, milliseconds=self.rng.randrange(1, 999))
        return self.clock

    def sys_fields(self, sys_id: str, name: str, created: dt.datetime) -> dict[str, Value]:
        rng = self.rng
        return {
            "sys/id": String(sys_id),
            "sys/name": String(name),
            "sys/owner": String(rng.choice(OWNERS)),
            "sys/creation_time": Datetime(created),
            "sys/modification_time": Datetime(created + dt.timedelta(minutes=rng.randrange(1, 600))),
            "sys/ping_time": Datetime(created + dt.timedelta(minutes=rng.randrange(1, 600))),
            "sys/tags": StringSet(frozenset(rng.sample(TAGS, rng.randrange(0, 3)))),
            "sys/description": String(f"{name}: generated with seed {self.spec.seed}"),
            "sys/failed": Bool(False),
            "sys/size": Float(float(rng.randrange(1_000, 1_000_000))),
            "sys/running_time": Float(round(rng.uniform(1, 10_000), 3)),
        }

    def parameters(self) -> dict[str, Value]:
        rng = self.rng
        kinds = (
            lambda i: Float(round(rng.uniform(-10, 10), rng.randrange(1, 17))),
            lambda i: Int(rng.randrange(-(2**31), 2**31)),  # Neptune's ints are int32
            lambda i: Bool(rng.random() < 0.5),
            lambda i: String(rng.choice(("adam", "sgd", "ünïcødé ✓", 'quote " and, comma', "line\nbreak"))),
            lambda i: Datetime(EPOCH + dt.timedelta(seconds=rng.randrange(0, 10**8), microseconds=i * 1000)),
            lambda i: StringSet(frozenset(rng.sample(("a", "b", "c", "d"), rng.randrange(0, 4)))),
        )
        out: dict[str, Value] = {}
        for i in range(self.spec.parameters):
            namespace = "parameters" if i % 3 else "parameters/optimizer"
            out[f"{namespace}/p{i}"] = kinds[i % len(kinds)](i)
        return out

    def float_series(self, length: int, start: dt.datetime) -> FloatSeries:
        rng = self.rng
        base = _ms(start)
        value = rng.uniform(0, 5)
        points = []
        for step in range(length):
            value = value * 0.999 + rng.uniform(-0.01, 0.01)
            points.append(FloatPoint(float(step), value, base + step * 100))
        return FloatSeries(tuple(points))

    def string_series(self, length: int, start: dt.datetime, label: str) -> StringSeries:
        base = _ms(start)
        return StringSeries(
            tuple(
                StringPoint(
                    float(step), f"{label} line {step}: loss={self.rng.random():.6f}", base + step * 100
                )
                for step in range(length)
            )
        )

    def artifact(self, location: str) -> Artifact:
        assert self.artifact_root is not None
        files = []
        for i in range(self.spec.artifact_files):
            data = self.rng.randbytes(256 + i)
            path = self.artifact_root / location / f"part-{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files.append(
                ArtifactFile(
                    file_path=f"part-{i}.bin",
                    file_hash=hashlib.sha1(data).hexdigest(),
                    type="Local",
                    size=len(data),
                    metadata=(
                        ("file_path", path.resolve().as_uri()),
                        ("last_modified", "2024-01-01 00:00:00"),
                    ),
                )
            )
        digest = hashlib.sha256("".join(f.file_hash for f in files).encode()).hexdigest()
        return Artifact(digest, tuple(files))

    def notebook(self, sys_id: str, created: dt.datetime) -> NotebookRef:
        """A ref to a notebook's checkpoint, which goes into :attr:`checkpoints`."""
        checkpoint = Checkpoint(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"checkpoint-{sys_id}")),
            notebook_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"notebook-{sys_id}")),
            name="checkpoint 1",
            path="explore.ipynb",
            content=notebook_json(f"print('explored in {sys_id}')"),
            created=created - dt.timedelta(minutes=5),
        )
        self.checkpoints[checkpoint.id] = checkpoint
        return NotebookRef(checkpoint.notebook_id, checkpoint.path, checkpoint.id, checkpoint.name)

    def run_fields(self, key: str, index: int, created: dt.datetime) -> dict[str, Value]:
        spec, rng = self.spec, self.rng
        sys_id = f"{key}-{index}"
        out = self.sys_fields(sys_id, f"run-{index}", created)
        out["sys/state"] = State("running" if index % 7 == 0 else "idle")
        out.update(self.parameters())
        for i in range(spec.float_series):
            name = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")[i % 5]
            suffix = f"_{i // 5}" if i >= 5 else ""
            out[f"metrics/{name}{suffix}"] = self.float_series(spec.float_series_length, created)
        for i in range(spec.string_series):
            out[f"logs/train{i or ''}"] = self.string_series(spec.string_series_length, created, "train")
        if spec.monitoring:
            ns = f"monitoring/{rng.getrandbits(32):08x}"
            for name in ("cpu", "memory", "gpu"):
                out[f"{ns}/{name}"] = self.float_series(spec.monitoring_float_length, created)
            for name in ("stdout", "stderr"):
                out[f"{ns}/{name}"] = self.string_series(spec.monitoring_string_length, created, name)
            out[f"{ns}/hostname"] = String("worker-1")
        out["source_code/git"] = GitRef(
            commit_id=f"{rng.getrandbits(160):040x}",
            message=f"Commit for {sys_id}\n\nWith a body.",
            author_name="Alice Example",
            author_email="alice@example.com",
            commit_date=created - dt.timedelta(hours=1),
            branch="main",
            dirty=index % 2 == 0,
            remotes=("git@example.com:team/repo.git",),
        )
        out["source_code/entrypoint"] = String("train.py")
        if spec.notebook_every and index % spec.notebook_every == 0:
            out["source_code/notebook"] = self.notebook(sys_id, created)
        if spec.file_size:
            out["data/sample"] = File("sample", "bin", rng.randbytes(spec.file_size))
        if spec.file_set_files:
            out["source_code/files"] = FileSet(
                tuple(
                    sorted(
                        (f"src/module_{i}.py", f"# module {i} of {sys_id}\nVALUE = {i}\n".encode())
                        for i in range(spec.file_set_files)
                    )
                )
            )
        if spec.images:
            out["images/predictions"] = ImageSeries(
                tuple(
                    ImagePoint(
                        step=float(i),
                        timestamp_ms=_ms(created) + i * 1000,
                        name=f"prediction {i}",
                        description=f"epoch {i} of {sys_id}",
                        data=tiny_png((rng.randrange(256), rng.randrange(256), rng.randrange(256))),
                    )
                    for i in range(spec.images)
                )
            )
        if spec.artifact_files and self.artifact_root is not None:
            out["datasets/train"] = self.artifact(sys_id)
        return out

    def model_fields(self, key: str, index: int) -> tuple[Container, list[Container]]:
        sys_id = f"{key}-MOD{index or ''}"
        created = self.tick()
        model_fields = self.sys_fields(sys_id, f"model-{index}", created)
        model_fields["model/signature"] = File("signature", "json", b'{"inputs": ["x"], "outputs": ["y"]}')
        model = Container(sys_id=sys_id, kind="model", fields=model_fields)
        versions = []
        for v in range(1, self.spec.versions_per_model + 1):
            version_id = f"{sys_id}-{v}"
            vf = self.sys_fields(version_id, f"version-{v}", self.tick())
            vf["sys/model_id"] = String(sys_id)
            vf["sys/stage"] = String(("none", "staging", "production")[v % 3])
            vf["validation/acc"] = Float(round(self.rng.random(), 6))
            vf["model/binary"] = File("binary", "pt", self.rng.randbytes(512))
            versions.append(Container(sys_id=version_id, kind="modelVersion", fields=vf))
        return model, versions

    def project(self, workspace: str, index: int) -> Project:
        key = f"P{index}"
        project = Project(workspace=workspace, name=f"project-{index}", key=key)
        fields_: dict[str, Value] = {
            "sys/id": String(key),
            "sys/name": String(project.name),
            "sys/creation_time": Datetime(self.tick()),
            "sys/modification_time": Datetime(self.clock),
        }
        if self.spec.project_fields:
            fields_["general/brief"] = String(f"Project {project.name} of {workspace}")
            fields_["general/data_version"] = Int(3)
            fields_["general/baseline_score"] = FloatSeries(
                tuple(FloatPoint(float(i), 0.5 + i / 100, _ms(EPOCH) + i) for i in range(10))
            )
        project.container = Container(sys_id=key, kind="project", fields=fields_, uuid=project.uuid)
        for i in range(1, self.spec.runs_per_project + 1):
            created = self.tick()
            run = Container(sys_id=f"{key}-{i}", kind="run", fields=self.run_fields(key, i, created))
            project.containers[run.sys_id] = run
        for m in range(self.spec.models):
            model, versions = self.model_fields(key, m)
            project.containers[model.sys_id] = model
            for version in versions:
                project.containers[version.sys_id] = version
        return project


@dataclass(frozen=True)
class S3Object:
    """An object as S3 lists it: what the ``neptune`` client's S3 driver tracks of it."""

    path: str  # inside the artifact
    bucket: str
    key: str
    etag: str  # as S3 gives it, quoted or not
    size: int
    last_modified: dt.datetime


def s3_artifact(objects: list[S3Object]) -> Artifact:
    """An artifact whose files live on S3, listed as the client's S3 driver records them:
    the ETag without quotes as the hash, and the location and last-modified time (UTC)."""
    files = tuple(
        ArtifactFile(
            file_path=o.path,
            file_hash=o.etag.strip('"'),
            type="S3",
            size=o.size,
            metadata=(
                ("location", f"s3://{o.bucket}/{o.key}"),
                ("last_modified", o.last_modified.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
            ),
        )
        for o in objects
    )
    digest = hashlib.sha256("".join(f"{f.file_path}:{f.file_hash}" for f in files).encode()).hexdigest()
    return Artifact(digest, files)


def generate(spec: WorkloadSpec, artifact_root: Path | None = None) -> World:
    """Make the world that ``spec`` describes; artifact files go under ``artifact_root``."""
    gen = _Generator(spec, artifact_root)
    world = World()
    for w in range(spec.workspaces):
        workspace = f"workspace-{w}"
        for p in range(spec.projects_per_workspace):
            world.add_project(gen.project(workspace, w * spec.projects_per_workspace + p))
    world.checkpoints.update(gen.checkpoints)
    return world
