"""Check a backup against the world the fake server served: values, points and bytes.

It parses what was written (JSON, CSV, zip) and compares it with the model's own values,
so it does not share formatting code with the writer it checks.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import zipfile
from pathlib import Path
from typing import Any

from neptune_backup_async.testing import model as m

UTC = dt.timezone.utc
# The field types of simple_metadata.json (docs/FORMAT.md), spelled out here rather than
# taken from the package, so a test does not inherit the package's own classification.
SIMPLE_FIELD_TYPES = frozenset(
    {"float", "int", "bool", "string", "datetime", "stringSet", "experimentState", "gitRef", "notebookRef"}
)


def _dt(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    assert moment.utcoffset() == dt.timedelta(0), f"not UTC: {text}"
    return moment


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float(value: Any) -> float:
    """A float as the format writes it: a JSON number, or a CSV/JSON string (NaN and the infinities by name)."""
    return _NON_FINITE[value] if value in _NON_FINITE else float(value)


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_simple(value: m.Value, saved: Any, where: str) -> None:
    if isinstance(value, m.Float):
        assert _same_float(_float(saved), value.value), where
    elif isinstance(value, (m.Int, m.Bool, m.String, m.State)):
        assert saved == value.value and type(saved) is type(value.value), where
    elif isinstance(value, m.Datetime):
        assert _dt(saved) == value.value, where
    elif isinstance(value, m.StringSet):
        assert saved == sorted(value.values), where
    elif isinstance(value, m.GitRef):
        assert saved["commit"]["commit_id"] == value.commit_id, where
        assert saved["commit"]["message"] == value.message, where
        assert saved["commit"]["author_name"] == value.author_name, where
        assert saved["commit"]["author_email"] == value.author_email, where
        assert _dt(saved["commit"]["commit_date"]) == value.commit_date, where
        assert saved.get("current_branch") == value.branch, where
        assert saved["repository_dirty"] == value.dirty, where
        assert saved.get("remotes") == list(value.remotes), where
    elif isinstance(value, m.NotebookRef):
        assert saved["notebook_id"] == value.notebook_id, where
        assert saved["notebook_name"] == value.notebook_name, where
        assert saved["checkpoint_id"] == value.checkpoint_id, where
        assert saved["checkpoint_name"] == value.checkpoint_name, where
    else:
        raise AssertionError(f"{where}: not a simple value: {value!r}")


def check_series(value: m.FloatSeries | m.StringSeries, path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "value", "timestamp"], path
    assert len(rows) - 1 == len(value.points), path
    for row, point in zip(rows[1:], value.points, strict=True):
        assert float(row[0]) == point.step, path
        if isinstance(value, m.FloatSeries):
            assert _same_float(_float(row[1]), float(point.value)), path
        else:
            assert row[1] == point.value, path
        assert _dt(row[2]) == dt.datetime.fromtimestamp(point.timestamp_ms / 1000, UTC), path


def check_container(
    container: m.Container,
    folder: Path,
    *,
    artifacts_downloaded: bool,
    checkpoints: dict[str, m.Checkpoint] | None = None,
) -> None:
    """Every field saved exactly, and a manifest that says the run is complete."""
    check_fields(container, folder, artifacts_downloaded=artifacts_downloaded, checkpoints=checkpoints)
    check_manifest(folder, container.sys_id)


def check_fields(
    container: m.Container,
    folder: Path,
    *,
    artifacts_downloaded: bool,
    checkpoints: dict[str, m.Checkpoint] | None = None,
) -> None:
    """``checkpoints``: the notebook checkpoints the server has; each one a notebook ref of
    the container names must be saved beside it, as ``<path>.ipynb``, byte for byte."""
    assert folder.is_dir(), f"missing {folder}"
    simple = json.loads((folder / "simple_metadata.json").read_text(encoding="utf-8"))
    expected_simple = {p for p, v in container.fields.items() if isinstance(v, (*m.ATOM_TYPES, m.Artifact))}
    assert set(simple) == expected_simple, folder
    for path, value in container.fields.items():
        where = f"{container.sys_id}/{path}"
        if isinstance(value, m.ATOM_TYPES):
            check_simple(value, simple[path], where)
            if isinstance(value, m.NotebookRef) and checkpoints is not None:
                checkpoint = checkpoints.get(value.checkpoint_id)
                notebook = folder / f"{path}.ipynb"
                assert notebook.read_bytes() == checkpoint.content if checkpoint else not notebook.exists(), (
                    where
                )
        elif isinstance(value, (m.FloatSeries, m.StringSeries)):
            check_series(value, folder / f"{path}.csv")
        elif isinstance(value, m.File):
            name = f"{path}.{value.ext}" if value.ext else path
            assert (folder / name).read_bytes() == value.data, where
        elif isinstance(value, m.FileSet):
            with zipfile.ZipFile(folder / f"{path}.zip") as z:
                assert {n: z.read(n) for n in z.namelist() if not n.endswith("/")} == dict(value.files), where
        elif isinstance(value, m.ImageSeries):
            index = json.loads((folder / path / "index.json").read_text(encoding="utf-8"))
            assert len(index) == len(value.images), where
            for i, (item, image) in enumerate(zip(index, value.images, strict=True)):
                assert item["index"] == i and item["file"] == f"{i}.png", where
                assert (folder / path / item["file"]).read_bytes() == image.data, where
                assert (item["step"], item["name"], item["description"]) == (
                    image.step,
                    image.name,
                    image.description,
                )
                assert _dt(item["timestamp"]) == dt.datetime.fromtimestamp(image.timestamp_ms / 1000, UTC)
        elif isinstance(value, m.Artifact):
            assert simple[path] == value.hash, where
            listing = json.loads((folder / f"{path}.artifact.json").read_text(encoding="utf-8"))
            assert listing["hash"] == value.hash, where
            assert [(f["path"], f["hash"], f["size"]) for f in listing["files"]] == [
                (f.file_path, f.file_hash, f.size) for f in value.files
            ], where
            for f in value.files:
                target = folder / path / f.file_path
                if artifacts_downloaded:
                    source = Path(dict(f.metadata)["file_path"].removeprefix("file://"))
                    assert target.read_bytes() == source.read_bytes(), where
                    assert not target.is_symlink(), where
                else:
                    assert not target.exists(), where
        else:
            raise AssertionError(f"{where}: unexpected {value!r}")


def check_manifest(folder: Path, sys_id: str) -> dict[str, Any]:
    manifest = json.loads((folder / ".manifest.json").read_text(encoding="utf-8"))
    assert manifest["sys_id"] == sys_id and manifest["complete"] is True, folder
    for rel, entry in manifest["files"].items():
        data = (folder / rel).read_bytes()
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"], rel
    return dict(manifest)


ALL_KINDS = ("run", "model", "modelVersion", "project")


def folder_of(dest: Path, project: m.Project, container: m.Container) -> Path:
    """Where docs/FORMAT.md puts an object (written out here, not taken from the layout module)."""
    base = dest / project.workspace / project.name
    if container.kind == "run":
        return base / container.sys_id
    if container.kind == "project":
        return base / "_project"
    if container.kind == "model":
        return base / "_models" / container.sys_id
    model_id = container.fields["sys/model_id"]
    assert isinstance(model_id, m.String)
    return base / "_models" / model_id.value / "_versions" / container.sys_id


def objects_of(project: m.Project, kinds: tuple[str, ...] = ALL_KINDS) -> list[m.Container]:
    """The project's objects of these kinds that a default backup saves (nothing trashed)."""
    assert project.container is not None
    found = [c for c in (project.container, *project.containers.values()) if c.kind in kinds]
    return [c for c in found if not c.trashed]


def check_backup(
    world: m.World, dest: Path, *, artifacts_downloaded: bool = True, kinds: tuple[str, ...] = ALL_KINDS
) -> int:
    """Assert every object of ``world`` of these kinds is in ``dest`` exactly; return how many were checked."""
    checked = 0
    for project in world.projects.values():
        for container in objects_of(project, kinds):
            folder = folder_of(dest, project, container)
            check_container(
                container, folder, artifacts_downloaded=artifacts_downloaded, checkpoints=world.checkpoints
            )
            checked += 1
    assert not list(dest.rglob("*.partial")), "temporary files left behind"
    return checked
