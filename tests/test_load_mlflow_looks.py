"""What someone opening MLflow after a load sees: the experiment kind, searchable tags,
system metrics, descriptive tags, the project's own fields and the progress."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import test_load_mlflow as e2e  # skips this module too when the mlflow extra is not installed
from neptune_backup_async.testing import MINIMAL, generate

MlflowClient = e2e.MlflowClient
empty_db = e2e.empty_db  # the fixture, shared with the end-to-end tests


def loaded(tmp_path: Path, empty_db: Path, **spec: object) -> tuple[Path, MlflowClient]:
    world = generate(replace(MINIMAL, runs_per_project=2, **spec), artifact_root=tmp_path / "sources")  # type: ignore[arg-type]
    dest = tmp_path / "backup"
    e2e.make_backup(world, dest)
    uri = e2e.fresh_db(empty_db, tmp_path / "mlflow.db")
    report = e2e.load(dest, uri)
    assert (report.exit_code, report.failures) == (0, [])
    return dest, MlflowClient(tracking_uri=uri)


def test_experiments_open_as_model_training_not_genai(tmp_path: Path, empty_db: Path) -> None:
    _, client = loaded(tmp_path, empty_db)
    exp = client.get_experiment_by_name("workspace-0/project-0")
    assert exp is not None
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
