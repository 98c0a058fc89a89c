"""Field names MLflow rejects or would merge: one injective rule, and the full mapping kept."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import test_load_mlflow as e2e  # skips this module too when the mlflow extra is not installed
from neptune_backup_async.format.manifest import FieldRecord, Manifest
from neptune_backup_async.testing import World
from neptune_backup_async.testing import model as m
from neptune_backup_async.to_mlflow import convert, naming, plan
from optional import need

empty_db = e2e.empty_db  # the fixture, shared with the end-to-end tests
validation = need("mlflow.utils.validation", "mlflow")

HOSTILE = [
    "metrics/loss", "metrics/Loss", "metrics/LOSS",  # case variants
    "a?b", "a_b", "weird:colon", "emoji ✓", "line\nbreak", "../up", "/abs", "a//b", "tail/", "dot/.",
    "mlflow.runName", "neptune/fields", "Neptune.id",  # would clash with MLflow's or our own names
    "long/" + "x" * 300, "long/" + "x" * 299 + "y",  # equal for their first 250 characters
]  # fmt: skip


def valid(key: str) -> bool:
    return (
        bool(validation.validate_param_and_metric_name(key))
        and not validation.path_not_unique(key)
        and len(key) <= validation.MAX_ENTITY_KEY_LENGTH
    )


def roots(path: str, key: str) -> list[str]:
    return [f"{key}.csv"]


def test_every_hostile_name_gets_a_distinct_valid_key_and_ordinary_names_stay() -> None:
    keys = naming.assign(HOSTILE, roots)
    assert set(keys) == set(HOSTILE)
    assert len({k.casefold() for k in keys.values()}) == len(HOSTILE)
    assert all(valid(k) for k in keys.values()), keys
    assert keys["metrics/loss"] == "metrics/loss" and keys["a_b"] == "a_b"  # kept as they are
    assert keys["metrics/Loss"].startswith("metrics/Loss-") and keys["a?b"].startswith("a_b-")
    assert not keys["mlflow.runName"].startswith("mlflow") and not keys["neptune/fields"].startswith(
        "neptune"
    )
    assert keys == naming.assign(reversed(HOSTILE), roots)  # depends on the set only


@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=8, unique=True))
def test_the_rule_is_injective_ignoring_case_for_any_names(paths: list[str]) -> None:
    keys = naming.assign(paths, roots)
    assert len({k.casefold() for k in keys.values()}) == len(paths)
    assert all(len(k) <= naming.MAX_KEY for k in keys.values())


def test_artifacts_of_two_fields_never_share_a_path() -> None:
    # A file "x" with the extension "csv" and a series "x" would both be x.csv.
    records = {
        "x.csv": FieldRecord("file", "ok", ["x.csv"]),
        "x": FieldRecord("floatSeries", "ok", ["x.csv~h"]),
        "d": FieldRecord("fileSet", "ok", ["d.zip"]),
        "d.artifact.json": FieldRecord("file", "ok", ["d.artifact.json"]),
    }
    manifest = Manifest("run", "ws/p", "R-1", "id", None, fields=records)
    built = plan.build(manifest, {})
    targets = [u.target.casefold() for ups in built.uploads.values() for u in ups]
    assert len(set(targets)) == len(targets) == 4


def test_values_become_param_text_losslessly() -> None:
    assert convert.param_value("float", 0.1) == "0.1" and convert.param_value("float", "NaN") == "NaN"
    assert convert.param_value("int", 2**40) == str(2**40)
    assert convert.param_value("bool", True) == "true"
    assert convert.param_value("stringSet", ["a", "b"]) == '["a","b"]'
    assert convert.param_value("string", 'quote " and, comma') == 'quote " and, comma'


def test_fractional_steps_load_as_positions_and_whole_steps_as_they_are() -> None:
    whole = [convert.Point(float(s), 1.0, 0) for s in (0, 5, 10)]
    mixed = [convert.Point(s, 1.0, 0) for s in (0.0, 0.5, 1.0)]
    assert convert.step_rule(whole) == "step" and convert.step_rule(mixed) == "index"
    assert [convert.mlflow_step("step", p, i) for i, p in enumerate(whole)] == [0, 5, 10]
    assert [convert.mlflow_step("index", p, i) for i, p in enumerate(mixed)] == [0, 1, 2]


def test_batches_respect_mlflow_limits() -> None:
    packer = convert.Packer()
    out = []
    for i in range(250):
        out.append(packer.add("param", (f"p{i}", "v" * 5000)))
    for i in range(2500):
        out.append(packer.add("metric", ("m", float(i), i, i)))
    sent = [b for b in [*out, packer.rest()] if b is not None]
    assert sum(len(b.params) for b in sent) == 250 and sum(len(b.metrics) for b in sent) == 2500
    for b in sent:
        assert len(b.params) <= 100 and len(b.metrics) <= 1000 and b.entities <= 1000
        assert b.size <= convert.MAX_BATCH_BYTES
    metrics = [p for b in sent for p in b.metrics]
    assert [p[3] for p in metrics] == list(range(2500))  # in order


def hostile_world() -> World:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    fields: dict[str, m.Value] = {
        "sys/id": m.String("H-1"),
        "sys/name": m.String("hostile"),
        "sys/creation_time": m.Datetime(now),
        "sys/modification_time": m.Datetime(now),
        "sys/tags": m.StringSet(frozenset({"a tag", "ünï"})),
        "mlflow.runName": m.StringSet(frozenset({"not the run name"})),
        "neptune/fields": m.File("fields", "json", b'{"not": "ours"}'),
        "params/long": m.String("x" * 7000),
        "x.csv": m.File("x", "csv", b"a file, not a series"),
        "x": m.FloatSeries((m.FloatPoint(0.0, 9.0, 1_704_067_200_000),)),
    }
    for i, path in enumerate(p for p in HOSTILE if p not in fields):
        steps = (0.0, 0.5, 1.0) if i % 2 else (0.0, 1.0, 7.0)
        fields[path] = m.FloatSeries(
            tuple(m.FloatPoint(s, i + s, 1_704_067_200_000 + k) for k, s in enumerate(steps))
        )
    world = World()
    project = world.add_project(m.Project(workspace="ws", name="hostile", key="H"))
    world.add_container(project.qualified_name, m.Container("H-1", "run", fields))
    return world


def test_hostile_names_load_without_two_fields_sharing_a_metric_or_artifact(
    tmp_path: Path, empty_db: Path
) -> None:
    dest = tmp_path / "backup"
    e2e.make_backup(hostile_world(), dest)
    uri = e2e.fresh_db(empty_db, tmp_path / "mlflow.db")

    report = e2e.load(dest, uri)

    assert (report.exit_code, report.failures) == (0, [])
    assert e2e.check_mlflow(dest, uri, tmp_path) == 2  # the run and the project's own fields
    fields = json.loads((tmp_path / "artifacts-0" / "neptune" / "fields.json").read_text())["fields"]
    assert "metrics/Loss" in fields and fields["metrics/Loss"]["key"] != fields["metrics/loss"]["key"]
    assert fields["long/" + "x" * 300]["key"] != fields["long/" + "x" * 299 + "y"]["key"]


def test_monitoring_goes_under_system_and_never_merges_with_a_field_already_there() -> None:
    paths = ["monitoring/a1/cpu", "system/a1/gpu", "monitoring/a1/GPU", "monitoring/a1/mem", "system/a1/mem"]
    keys = naming.assign(paths, roots)
    assert keys["monitoring/a1/cpu"] == "system/a1/cpu"
    assert keys["system/a1/gpu"] == "system/a1/gpu"  # all lower case: it keeps its name
    assert keys["monitoring/a1/GPU"].startswith("system/a1/GPU-")
    assert keys["monitoring/a1/mem"] == "system/a1/mem" and keys["system/a1/mem"].startswith("system/a1/mem-")
    assert len({k.casefold() for k in keys.values()}) == len(paths)
