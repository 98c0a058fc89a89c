"""load-mlflow reads the backup as input: each file is checked against its manifest before it
is loaded, and the load's report tells the truth on every exit.

The command line runs in this process (``run_here``: MLflow is imported once, not a few seconds
per command) but where a signal stops it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run_here
from neptune_backup_async.disk.lock import Lock
from optional import need

need("mlflow", "mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from test_load_mlflow import empty_db, free_port, fresh_db, make_backup, small_world  # noqa: E402, F401

RUN = "workspace-0/project-0/P0-1"


def load_report(dest: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((dest / "load-mlflow-report.json").read_text())
    return doc


def histories(uri: str, sys_id: str) -> list[float]:
    """Every metric value MLflow holds of the run of ``sys_id``."""
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`neptune.id` = '{sys_id}'",
    )
    return [m.value for key in run.data.metrics for m in client.get_metric_history(run.info.run_id, key)]


def test_a_series_edited_to_the_same_size_is_not_loaded_and_named(tmp_path: Path, empty_db: Path) -> None:  # noqa: F811
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    manifest = json.loads((dest / RUN / ".manifest.json").read_text())
    csv = min(r["files"][0] for r in manifest["fields"].values() if r["type"] == "floatSeries")
    path = dest / RUN / csv
    lines = path.read_text().split("\n")
    step, value, when = lines[1].split(",")
    edited = value.replace(value[-1], "1" if value[-1] != "1" else "2")  # same size, another value
    lines[1] = f"{step},{edited},{when}"
    path.write_text("\n".join(lines))
    uri = fresh_db(empty_db, tmp_path / "mlflow.db")

    result = run_here("load-mlflow", str(dest), "--tracking-uri", uri)

    assert result.returncode == 1, result.stderr
    report = load_report(dest)
    assert report["exit_code"] == 1
    assert [(f["run"], f["reason"].split(" differs")[0]) for f in report["failures"]] == [("P0-1", csv)]
    assert report["totals"]["objects_loaded"] == report["totals"]["objects_found"] - 1
    assert float(edited) not in histories(uri, "P0-1")


def test_a_manifest_path_leaving_dest_uploads_nothing_from_outside(tmp_path: Path, empty_db: Path) -> None:  # noqa: F811
    dest = tmp_path / "sandbox" / "backup"
    make_backup(small_world(tmp_path), dest)
    secret = tmp_path / "sandbox" / "x" / "a.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"a secret outside the backup")
    manifest = json.loads((dest / RUN / ".manifest.json").read_text())
    rel = "../../../../x/a.txt"
    manifest["files"][rel] = {
        "size": secret.stat().st_size,
        "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
    }
    manifest["fields"]["planted"] = {"type": "file", "status": "ok", "files": [rel], "ext": "txt"}
    (dest / RUN / ".manifest.json").write_text(json.dumps(manifest))
    uri = fresh_db(empty_db, tmp_path / "mlflow" / "mlflow.db")

    result = run_here("load-mlflow", str(dest), "--tracking-uri", uri)

    assert result.returncode == 1, result.stderr
    report = load_report(dest)
    assert report["exit_code"] == 1
    ((run, reason),) = [(f["run"], f["reason"]) for f in report["failures"]]
    assert run == "P0-1" and f"the path '{rel}' leaves its object folder" in reason
    uploaded = [p.read_bytes() for p in (tmp_path / "mlflow").rglob("*") if p.is_file()]
    assert uploaded and secret.read_bytes() not in uploaded


def test_the_report_is_written_with_the_exit_code_when_mlflow_cannot_be_reached(tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    result = run_here("load-mlflow", str(dest), "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    report = load_report(dest)
    assert report["exit_code"] == 2 and report["interrupted"] is True


def test_a_second_load_into_the_same_dest_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    with Lock.take(dest, "load-mlflow", "load-mlflow"):
        result = run_here("load-mlflow", str(dest), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.returncode == 2
    assert f"error: Another load-mlflow (pid {os.getpid()} on " in result.stderr
    assert not (dest / "load-mlflow-report.json").exists()  # the first one's to write


@pytest.mark.slow
def test_sigterm_stops_a_load_like_ctrl_c_and_its_report_says_143(tmp_path: Path, empty_db: Path) -> None:  # noqa: F811
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    uri = fresh_db(empty_db, tmp_path / "mlflow.db")
    command = [sys.executable, "-m", "neptune_backup_async", "load-mlflow", str(dest), "--tracking-uri", uri]
    with subprocess.Popen(
        [*command, "--quiet", "--concurrency", "1"], stderr=subprocess.PIPE, text=True
    ) as proc:
        while not (
            dest / ".mlflow" / "staging"
        ).exists():  # it is loading the first of 4 objects, one at a time
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Interrupted. Run the same command again to finish" in stderr
    report = load_report(dest)
    assert report["interrupted"] is True and report["exit_code"] == 143
    assert run_here("load-mlflow", str(dest), "--tracking-uri", uri).returncode == 0
