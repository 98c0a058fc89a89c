"""Every call into MLflow, through its public client API (``MlflowClient``); blocking.

No other module of the loader imports ``mlflow``, so the package imports without it and
the command can say how to install it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackupError, ServerUnreachableError
from ..loading.report import redact_uri
from . import convert

INSTALL_HINT = 'load-mlflow needs MLflow. Install it with: pip install "neptune-backup-async[mlflow]"'


class MlflowMissingError(BackupError):
    """The optional ``mlflow`` package is not installed."""

    exit_code = 2


def _mlflow() -> Any:
    try:
        import mlflow.tracking
    except ImportError:
        raise MlflowMissingError(INSTALL_HINT) from None
    return mlflow


def require_mlflow() -> None:
    _mlflow()


def _unusable(uri: str, e: Exception) -> ServerUnreachableError:
    message = str(e).replace(uri, redact_uri(uri))
    return ServerUnreachableError(
        f"MLflow cannot use the tracking URI {redact_uri(uri)}: {type(e).__name__}: {message}. Check --tracking-uri."
    )


@dataclass
class FoundRun:
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    start_time: int


class Tracking:
    """One MLflow tracking URI. Safe to share between threads, as ``MlflowClient`` is."""

    def __init__(self, uri: str, artifact_root: str | None) -> None:
        mlflow = _mlflow()
        from mlflow.entities import Metric, Param, RunTag

        # Else set_terminated prints a link to each run on stdout, costing a request to a server too.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.uri = uri
        self.artifact_root = artifact_root
        self._entities = (Metric, Param, RunTag)
        try:
            self.client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        except Exception as e:
            raise _unusable(uri, e) from None

    def check(self) -> None:
        """Fail with a clear message when the URI cannot be used; a server is asked once, quickly."""
        where = redact_uri(self.uri)
        if self.uri.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=15):
                    pass
            except (urllib.error.URLError, OSError) as e:
                raise ServerUnreachableError(
                    f"Cannot reach the MLflow tracking server at {where} ({getattr(e, 'reason', e)}). "
                    "Start it, or check --tracking-uri."
                ) from None
        try:
            self.client.search_experiments(max_results=1)
        except Exception as e:
            raise _unusable(self.uri, e) from None

    def find_experiment(self, name: str) -> str | None:
        found = self.client.get_experiment_by_name(name)
        return None if found is None or found.lifecycle_stage == "deleted" else str(found.experiment_id)

    def experiment(self, name: str) -> str:
        """The experiment's id, made (or restored) if need be, marked as model training unless
        someone chose its kind already."""
        found = self.client.get_experiment_by_name(name)
        if found is None:
            exp_id = str(self.client.create_experiment(name, artifact_location=self.artifact_root))
            tags: dict[str, str] = {}
        else:
            exp_id, tags = str(found.experiment_id), found.tags
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp_id)
        if convert.EXPERIMENT_KIND not in tags:
            self.client.set_experiment_tag(exp_id, convert.EXPERIMENT_KIND, convert.MODEL_TRAINING)
        return exp_id

    def find_runs(self, experiment_id: str) -> list[FoundRun]:
        """Every active run of the experiment that a load made (it has the ``neptune.id`` tag)."""
        out: list[FoundRun] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{convert.ID}` LIKE '%'",
                max_results=10_000,
                page_token=token,
            )
            for run in page:
                out.append(
                    FoundRun(run.info.run_id, dict(run.data.tags), dict(run.data.params), run.info.start_time)
                )
            token = page.token
            if not token:
                return out

    def create_run(self, experiment_id: str, shape: convert.RunShape, tags: dict[str, str]) -> str:
        run = self.client.create_run(experiment_id, start_time=shape.start_ms, tags=tags, run_name=shape.name)
        return str(run.info.run_id)

    def log_batch(self, run_id: str, batch: convert.Batch) -> None:
        metric, param, tag = self._entities
        self.client.log_batch(
            run_id,
            metrics=[metric(k, v, ts, step) for k, v, ts, step in batch.metrics],
            params=[param(k, v) for k, v in batch.params],
            tags=[tag(k, v) for k, v in batch.tags],
            synchronous=True,
        )

    def history(self, run_id: str, key: str) -> list[tuple[int, float, int]]:
        """The points of a metric: (step, value, timestamp), NaN as NaN."""
        points = self.client.get_metric_history(run_id, key)
        return [
            (int(m.step), math.nan if m.value is None else float(m.value), int(m.timestamp)) for m in points
        ]

    def log_artifacts(self, run_id: str, folder: Path) -> None:
        self.client.log_artifacts(run_id, str(folder))

    def read_json(self, run_id: str, path: str) -> Any:
        """An artifact parsed as JSON; None when the run has no such artifact."""
        with tempfile.TemporaryDirectory(prefix="neptune-mlflow-") as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except Exception:  # not there, or unreadable: the load then trusts only what it reads back
                return None
            try:
                return json.loads(Path(local).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None

    def finish(self, run_id: str, shape: convert.RunShape) -> None:
        if shape.status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=shape.status, end_time=shape.end_ms)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.client.set_experiment_tag(experiment_id, key, value)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.delete_tag(run_id, key)

    def delete(self, run_id: str) -> None:
        self.client.delete_run(run_id)
