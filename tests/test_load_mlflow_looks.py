"""What someone opening MLflow after a load sees: the experiment kind, searchable tags,
system metrics, descriptive tags, the project's own fields and the progress."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

import test_load_mlflow as e2e  # skips this module too when the mlflow extra is not installed
from cli_helpers import run_cli
from neptune_backup_async.loading.command import Bars
from neptune_backup_async.testing import MINIMAL, generate
from neptune_backup_async.testing import model as m
from neptune_backup_async.to_mlflow import command
from neptune_backup_async.to_mlflow.load_report import LoadProgress

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


def test_each_neptune_tag_is_a_searchable_mlflow_tag_and_a_removed_one_goes(
    tmp_path: Path, empty_db: Path
) -> None:
    world = generate(replace(MINIMAL, runs_per_project=2), artifact_root=tmp_path / "sources")
    proj = "workspace-0/project-0"
    hostile = frozenset({"gpu", "GPU", "prod team", "a/b?", "mlflow.runName"})
    world.set_field(proj, "P0-1", "sys/tags", m.StringSet(hostile))
    world.set_field(proj, "P0-2", "sys/tags", m.StringSet(frozenset({"gpu"})))
    dest = tmp_path / "backup"
    e2e.make_backup(world, dest)
    uri = e2e.fresh_db(empty_db, tmp_path / "mlflow.db")
    assert e2e.load(dest, uri).exit_code == 0
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(proj)
    assert exp is not None

    def with_tag(key: str) -> list[str]:
        runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{key}` = 'true'")
        return sorted(r.data.tags["neptune.id"] for r in runs)

    assert with_tag("neptune.tag.gpu") == ["P0-1", "P0-2"]
    assert with_tag("neptune.tag.prod team") == ["P0-1"]
    run = e2e.find_run(client, proj, "P0-1")
    ours = sorted(k for k in run.data.tags if k.startswith("neptune.tag."))
    assert len(ours) == len(hostile) and len({k.casefold() for k in ours}) == len(hostile)
    assert sorted(json.loads(run.data.tags["sys/tags"])) == sorted(hostile)  # the lossless copy

    world.set_field(proj, "P0-2", "sys/tags", m.StringSet(frozenset({"cpu"})))
    e2e.make_backup(world, dest)
    assert e2e.load(dest, uri).exit_code == 0
    assert with_tag("neptune.tag.gpu") == ["P0-1"] and with_tag("neptune.tag.cpu") == ["P0-2"]


@pytest.mark.slow  # two new MLflow databases made (seconds each) and a command that imports MLflow
def test_progress_says_mlflow_is_starting_with_the_total_and_mlflow_logs_go_to_a_file(tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    e2e.make_backup(generate(replace(MINIMAL, runs_per_project=2), artifact_root=tmp_path / "sources"), dest)
    seen: list[LoadProgress] = []
    db = tmp_path / "new" / "mlflow.db"  # MLflow makes its tables, and logs that it does
    db.parent.mkdir()
    e2e.load(dest, f"sqlite:///{db}", progress=seen.append)
    assert seen[0] == LoadProgress(3, 0, 0, 0, starting=True)  # before MLflow is asked anything
    assert not any(p.starting for p in seen[1:]) and seen[-1].objects_done == 3

    out = io.StringIO()
    bars = Bars(True, command.TRACKER.system, file=out)
    bars(seen[0])
    assert "objects (starting MLflow…)" in out.getvalue() and "0/3" in out.getvalue()
    bars(seen[-1])
    bars.close()
    after = out.getvalue().rsplit("starting MLflow…", 1)[1]
    assert "objects: 100%" in after and "3/3" in after

    (tmp_path / "new" / "mlflow.db").unlink()
    done = run_cli("load-mlflow", str(dest), "--tracking-uri", f"sqlite:///{db}", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Creating initial MLflow database tables" not in done.stderr
    assert (
        "Creating initial MLflow database tables"
        in (dest / ".neptune-backup" / "load-mlflow.log").read_text()
    )


def test_monitoring_is_system_metrics_and_descriptive_fields_are_tags(tmp_path: Path, empty_db: Path) -> None:
    dest, client = loaded(tmp_path, empty_db, monitoring=True, artifact_files=1)
    run = e2e.find_run(client, "workspace-0/project-0", "P0-1")
    meta = json.loads((dest / "workspace-0" / "project-0" / "P0-1" / "simple_metadata.json").read_text())
    monitoring = sorted({p.split("/")[1] for p in meta if p.startswith("monitoring/")})
    assert len(monitoring) == 1
    ns = monitoring[0]
    metrics = set(run.data.metrics)
    assert {f"system/{ns}/{n}" for n in ("cpu", "memory", "gpu")} <= metrics
    assert not any(k.startswith("monitoring") for k in metrics)
    tags, params = run.data.tags, run.data.params
    assert tags[f"system/{ns}/hostname"] == meta[f"monitoring/{ns}/hostname"] == "worker-1"
    assert json.loads(tags["source_code/git"]) == meta["source_code/git"]
    assert tags["datasets/train"] == meta["datasets/train"]  # the artifact's hash
    assert not any(k.startswith(("source_code/git", "datasets/", "system/", "monitoring/")) for k in params)
    assert "parameters/p1" in params and "source_code/entrypoint" in params
    got = tmp_path / "got"
    client.download_artifacts(run.info.run_id, "neptune/fields.json", str(got))
    fields = json.loads((got / "fields.json").read_text())["fields"]
    assert fields[f"monitoring/{ns}/cpu"]["metric"] == f"system/{ns}/cpu"  # the lossless record
    assert fields[f"monitoring/{ns}/hostname"]["tag"] == f"system/{ns}/hostname"


def test_a_run_loaded_with_an_earlier_mapping_is_loaded_anew(tmp_path: Path, empty_db: Path) -> None:
    dest, client = loaded(tmp_path, empty_db)
    old = e2e.find_run(client, "workspace-0/project-0", "P0-1")
    client.delete_tag(old.info.run_id, "neptune.mapping")  # as load-mlflow before this mapping left it
    client.set_tag(old.info.run_id, "neptune.loaded", "an older fingerprint")

    report = e2e.load(dest, client.tracking_uri)

    assert (report.exit_code, report.objects_replaced, report.objects_unchanged) == (0, 1, 2)  # P0-2, P0
    assert e2e.find_run(client, "workspace-0/project-0", "P0-1").info.run_id != old.info.run_id


def test_the_projects_own_fields_are_experiment_tags_not_a_run_among_its_runs(
    tmp_path: Path, empty_db: Path
) -> None:
    dest, client = loaded(tmp_path, empty_db, project_fields=True)
    runs_experiment = client.get_experiment_by_name("workspace-0/project-0")
    assert runs_experiment is not None
    runs = client.search_runs([runs_experiment.experiment_id])
    assert sorted(r.data.tags["neptune.id"] for r in runs) == ["P0-1", "P0-2"]
    assert runs_experiment.tags["general/brief"] == "Project project-0 of workspace-0"
    assert runs_experiment.tags["general/data_version"] == "3"
    assert runs_experiment.tags["sys/name"] == "project-0"
    own = e2e.find_run(client, "workspace-0/project-0/project-fields", "P0")
    assert own.info.run_name == "project fields of workspace-0/project-0"
    assert own.data.tags["neptune.kind"] == "project"
    assert len(client.get_metric_history(own.info.run_id, "general/baseline_score")) == 10  # its series
    assert e2e.load(dest, client.tracking_uri).objects_unchanged == 3


def test_a_project_run_an_earlier_load_put_among_the_runs_is_deleted(tmp_path: Path, empty_db: Path) -> None:
    dest, client = loaded(tmp_path, empty_db)
    runs_experiment = client.get_experiment_by_name("workspace-0/project-0")
    assert runs_experiment is not None
    tags = {"neptune.id": "P0", "neptune.kind": "project", "neptune.mapping": "1"}
    old = client.create_run(runs_experiment.experiment_id, tags=tags, run_name="project-0")

    report = e2e.load(dest, client.tracking_uri)

    assert report.exit_code == 0 and [n.run for n in report.notices] == ["P0"]
    assert client.get_run(old.info.run_id).info.lifecycle_stage == "deleted"
    runs = client.search_runs([runs_experiment.experiment_id])
    assert sorted(r.data.tags["neptune.id"] for r in runs) == ["P0-1", "P0-2"]
