"""Artifacts whose files live on S3, against a real S3 server (moto's) over HTTP on 127.0.0.1.

The fake Neptune server lists the artifacts as the ``neptune`` client's S3 driver tracked
them; the backup reads the objects from the S3 server with boto3, credentials and all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from boto3.s3.transfer import TransferConfig

from cli_helpers import CLI, command
from expect import check_container
from neptune_backup_async import BackupReport, backup
from neptune_backup_async.domain import ArtifactFileInfo
from neptune_backup_async.remote.artifacts.files import Found, differences
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m
from neptune_backup_async.testing.generator import S3Object, s3_artifact
from neptune_backup_async.testing.s3 import InFlight, S3Server, serve_s3

MiB = 2**20
BIG = 200 * MiB
BIG_KEY = "models/big.bin"
PROJECT = "workspace-0/project-0"


@dataclass
class Store:
    server: S3Server
    big_sha256: str
    small: dict[str, bytes]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with serve_s3() as server:
        client = server.client()
        client.create_bucket(Bucket="data")
        big = tmp_path_factory.mktemp("s3") / "big.bin"
        digest = hashlib.sha256()
        with big.open("wb") as f:
            for _ in range(BIG // MiB):
                chunk = os.urandom(MiB)
                digest.update(chunk)
                f.write(chunk)
        # A multipart upload: its ETag is "<md5 of md5s>-7", not an MD5 of the object.
        client.upload_file(str(big), "data", BIG_KEY, Config=TransferConfig(multipart_chunksize=32 * MiB))
        big.unlink()
        small = {"datasets/train/a.csv": b"x,y\n1,2\n", "datasets/train/sub/b.bin": os.urandom(300_000)}
        for key, data in small.items():
            client.put_object(Bucket="data", Key=key, Body=data)
        yield Store(server, digest.hexdigest(), small)


@pytest.fixture
def aws(s3: Store, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with fresh counts, and the environment a backup reads it with."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3.server.env().items():
        monkeypatch.setenv(name, value)
    s3.server.reads.clear()
    s3.server.slow.clear()
    s3.server.in_flight = InFlight()
    return s3.server


def tracked(server: S3Server, key: str, path: str, bucket: str = "data") -> S3Object:
    """The object as the client's S3 driver tracks it now."""
    head = server.client().head_object(Bucket=bucket, Key=key)
    return S3Object(path, bucket, key, head["ETag"], head["ContentLength"], head["LastModified"])


def world_with(**artifacts: m.Artifact) -> World:
    """Three runs of parameters and a series; the artifacts go into the first, by field path."""
    world = generate(
        replace(MINIMAL, runs_per_project=3, parameters=3, float_series=1, float_series_length=20)
    )
    world.project(PROJECT).runs[0].fields.update(artifacts)
    return world


def run_folder(dest: Path, index: int = 0) -> Path:
    """The folder of the project's run ``index`` (0: the one with the artifacts)."""
    return dest / PROJECT / f"P0-{index + 1}"


def back_up(world: World, aws: S3Server, dest: Path, **options: Any) -> BackupReport:
    """A backup of ``world`` served by the fake Neptune server, its S3 artifacts downloaded from ``aws``."""
    with serve(world) as neptune:
        return anyio.run(
            lambda: backup(
                PROJECT, dest, api_token=neptune.api_token, download_artifacts=True,
                s3_endpoint_url=aws.url, **options,
            )
        )  # fmt: skip


def s3_gets(server: S3Server) -> list[Any]:
    return [r for r in server.reads if r.method == "GET"]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def cli(neptune: FakeNeptuneServer, server: S3Server, dest: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3_ENDPOINT_URL"}
    env.update(server.env(), NEPTUNE_API_TOKEN=neptune.api_token)
    args = ["--projects", PROJECT, "--output", str(dest), "--quiet", "--s3-endpoint-url", server.url]
    return subprocess.Popen(
        command(*args, *extra),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def everything_written(dest: Path, *streams: str) -> bytes:
    """Every byte a user could read after a backup: the streams and every file in DEST."""
    return b"\n".join(
        [s.encode() for s in streams] + [p.read_bytes() for p in dest.rglob("*") if p.is_file()]
    )


def verify(dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "verify", str(dest)], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_every_object_is_saved_byte_exact_under_the_one_knob(
    s3: Store, aws: S3Server, tmp_path: Path
) -> None:
    small = [tracked(aws, key, key.removeprefix("datasets/train/")) for key in s3.small]
    world = world_with(**{"model/weights": s3_artifact([tracked(aws, BIG_KEY, "big.bin")])})
    world.project(PROJECT).runs[1].fields["datasets/train"] = s3_artifact(small)
    dest = tmp_path / "dest"
    with serve(world) as neptune:
        # One count of what is in flight, at both servers.
        counter = aws.in_flight
        begin, answered = neptune.stats.begin, neptune.stats.answered

        def neptune_begin(operation: str) -> int:
            counter.begin()
            return begin(operation)

        def neptune_answered() -> None:
            counter.end()
            answered()

        neptune.stats.begin = neptune_begin  # type: ignore[method-assign]
        neptune.stats.answered = neptune_answered  # type: ignore[method-assign]
        report = anyio.run(
            lambda: backup(
                PROJECT, dest, api_token=neptune.api_token, concurrency=3, download_artifacts=True,
                s3_endpoint_url=aws.url,
            )
        )  # fmt: skip
        neptune_requests = neptune.stats.total
    assert (report.exit_code, report.failures, report.notices) == (0, [], [])
    assert 1 < counter.peak <= 3
    assert neptune_requests > 10
    assert sorted(r.path for r in s3_gets(aws)) == sorted(f"/data/{k}" for k in [BIG_KEY, *s3.small])
    assert all(r.range is None for r in s3_gets(aws))
    big = run_folder(dest) / "model/weights/big.bin"
    assert big.stat().st_size == BIG and sha256(big) == s3.big_sha256
    for key, data in s3.small.items():
        assert (
            run_folder(dest, 1) / "datasets/train" / key.removeprefix("datasets/train/")
        ).read_bytes() == data
    manifest = json.loads((run_folder(dest) / ".manifest.json").read_text())
    assert manifest["complete"] and manifest["files"]["model/weights/big.bin"]["sha256"] == s3.big_sha256
    check_container(world.project(PROJECT).runs[2], run_folder(dest, 2), artifacts_downloaded=True)
    assert verify(dest).returncode == 0
    assert not any((dest / ".neptune-backup").rglob("*.part"))


@pytest.mark.slow
def test_without_download_artifacts_no_request_reaches_s3(s3: Store, aws: S3Server, tmp_path: Path) -> None:
    world = world_with(art=s3_artifact([tracked(aws, k, k) for k in s3.small]))
    aws.reads.clear()
    with serve(world) as neptune:
        report = anyio.run(
            lambda: backup(PROJECT, tmp_path, api_token=neptune.api_token, s3_endpoint_url=aws.url)
        )
    assert report.exit_code == 0
    assert aws.reads == []
    listing = json.loads((run_folder(tmp_path) / "art.artifact.json").read_text())
    assert [f["metadata"]["location"] for f in listing["files"]] == [f"s3://data/{k}" for k in s3.small]
    assert not (run_folder(tmp_path) / "art").exists()


@pytest.mark.slow
def test_wrong_credentials_missing_bucket_and_key_fail_only_their_field(
    s3: Store, aws: S3Server, tmp_path: Path
) -> None:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    key = "datasets/train/a.csv"
    world = world_with(
        **{
            "ok": s3_artifact([tracked(aws, key, "a.csv")]),
            "gone/key": s3_artifact([S3Object("x.bin", "data", "no/such.bin", "0" * 32, 5, now)]),
            "gone/bucket": s3_artifact([S3Object("y.bin", "no-such-bucket", "y.bin", "0" * 32, 5, now)]),
        }
    )
    run = world.project(PROJECT).runs[0]
    with serve(world) as neptune:
        dest_right = tmp_path / "right"
        proc = cli(neptune, aws, dest_right, "--download-artifacts")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        reasons = {
            f["field"]: f["reason"]
            for f in json.loads((tmp_path / "right/backup-report.json").read_text())["failures"]
        }
        assert reasons == {
            "gone/key": "artifact file x.bin: s3://data/no/such.bin is gone from S3 (NoSuchKey)",
            "gone/bucket": "artifact file y.bin: s3://no-such-bucket/y.bin: the bucket 'no-such-bucket' does not"
            " exist (NoSuchBucket)",
        }
        assert "Traceback" not in out + err
        written = everything_written(dest_right, out, err)
        assert aws.secret_key.encode() not in written and aws.access_key.encode() not in written
        assert (run_folder(tmp_path / "right") / "ok/a.csv").read_bytes() == s3.small[key]
        fields = json.loads((run_folder(tmp_path / "right") / ".manifest.json").read_text())["fields"]
        assert {p for p, r in fields.items() if r["status"] != "ok"} == {"gone/key", "gone/bucket"}
        assert set(fields) == set(run.fields)
        for other in world.project(PROJECT).runs[1:]:
            check_container(other, tmp_path / "right" / PROJECT / other.sys_id, artifacts_downloaded=True)

        for name, (access, secret) in {
            "wrong-secret": (aws.access_key, "wrong-secret-" + aws.secret_key[:8]),
            "wrong-key": ("AKIA0000WRONGKEY0000", aws.secret_key),
        }.items():
            dest = tmp_path / name
            bad = S3Server(aws.url, access, secret, aws.in_flight)
            proc = cli(neptune, bad, dest, "--download-artifacts")
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 1, err
            failures = json.loads((dest / "backup-report.json").read_text())["failures"]
            code = "SignatureDoesNotMatch" if name == "wrong-secret" else "InvalidAccessKeyId"
            assert {f["field"] for f in failures} == {"ok", "gone/key", "gone/bucket"}
            refused = next(f["reason"] for f in failures if f["field"] == "ok")
            assert refused == (
                f"artifact file a.csv: S3 refused to read s3://data/{key} ({code}): check the AWS credentials"
                " (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and the endpoint (--s3-endpoint-url)"
            )
            assert all("\n" not in f["reason"] for f in failures)
            assert f"  failed: {PROJECT}/P0-1/ok: {refused}" in err.splitlines()
            assert "Traceback" not in out + err
            written = everything_written(dest, out, err)
            for secret_text in {access, secret, aws.access_key, aws.secret_key}:
                assert secret_text.encode() not in written, name
            check_container(world.project(PROJECT).runs[1], run_folder(dest, 1), artifacts_downloaded=True)


@pytest.mark.slow
def test_an_object_replaced_after_tracking_is_saved_and_reported_as_changed(
    s3: Store, aws: S3Server, tmp_path: Path
) -> None:
    client = aws.client()
    client.put_object(Bucket="data", Key="replaced.txt", Body=b"as tracked")
    world = world_with(art=s3_artifact([tracked(aws, "replaced.txt", "r.txt")]))
    time.sleep(1.1)  # S3 keeps last-modified times to the second
    client.put_object(Bucket="data", Key="replaced.txt", Body=b"replaced since")
    report = back_up(world, aws, tmp_path)
    assert report.exit_code == 0, report.failures
    assert (run_folder(tmp_path) / "art/r.txt").read_bytes() == b"replaced since"
    [notice] = report.notices
    assert (notice.run, notice.field) == ("P0-1", "art")
    assert notice.reason.startswith("artifact file r.txt changed since it was tracked (size 10 -> 14; ETag ")
    assert notice.reason.endswith(" UTC); saved as it is now")
    record = json.loads((run_folder(tmp_path) / ".manifest.json").read_text())["fields"]["art"]
    assert record["status"] == "ok" and list(record["changed_since_tracking"]) == ["r.txt"]
    saved = json.loads((tmp_path / "backup-report.json").read_text())
    assert saved["exit_code"] == 0 and saved["notices"][0]["reason"] == notice.reason


@pytest.mark.slow
def test_killed_during_the_big_download_resumes_with_a_ranged_read(
    s3: Store, aws: S3Server, tmp_path: Path
) -> None:
    world = world_with(**{"model/weights": s3_artifact([tracked(aws, BIG_KEY, "big.bin")])})
    dest = tmp_path / "dest"
    partials = dest / ".neptune-backup" / "partial"
    aws.slow[f"/data/{BIG_KEY}"] = 0.02  # about 4 s for the whole object, so it can be interrupted
    with serve(world) as neptune:
        proc = cli(neptune, aws, dest, "--download-artifacts", "--concurrency", "2")
        deadline = time.monotonic() + 60
        while sum(p.stat().st_size for p in partials.glob("*.part")) < 40 * MiB:
            assert proc.poll() is None and time.monotonic() < deadline, "the download never got going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        [held] = [p.stat().st_size for p in partials.glob("*.part")]
        assert 40 * MiB <= held < BIG
        aws.slow.clear()
        while aws.in_flight.now:  # the server notices the dropped connection at its next write
            assert time.monotonic() < deadline
            time.sleep(0.01)
        aws.reads.clear()
        proc = cli(neptune, aws, dest, "--download-artifacts", "--concurrency", "2")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [read] = [r for r in s3_gets(aws) if r.path == f"/data/{BIG_KEY}"]
    assert read.range is not None
    start = int(read.range.removeprefix("bytes=").removesuffix("-"))
    assert held <= start and read.status.startswith("206") and read.bytes == BIG - start
    big = run_folder(dest) / "model/weights/big.bin"
    assert big.stat().st_size == BIG and sha256(big) == s3.big_sha256
    assert not any(partials.iterdir())
    assert verify(dest).returncode == 0


@pytest.mark.parametrize(
    "record", ["[]", '"a record"', '{"location": "s3://data/small.txt", "etag": 7, "size": "99"}', "{}"]
)
def test_a_partial_download_record_of_the_wrong_shape_starts_the_download_over(
    s3: Store, aws: S3Server, tmp_path: Path, record: str
) -> None:
    client = aws.client()
    client.put_object(Bucket="data", Key="small.txt", Body=b"the whole object")
    world = world_with(art=s3_artifact([tracked(aws, "small.txt", "s.txt")]))
    key = hashlib.sha256(f"{PROJECT}/P0-1/art/s.txt".encode()).hexdigest()[:32]
    partials = tmp_path / ".neptune-backup" / "partial"
    partials.mkdir(parents=True)
    (partials / f"{key}.part").write_bytes(b"the")
    (partials / f"{key}.json").write_text(record)
    report = back_up(world, aws, tmp_path)
    assert report.exit_code == 0, report.failures
    assert (run_folder(tmp_path) / "art/s.txt").read_bytes() == b"the whole object"
    assert not any(partials.iterdir())


@pytest.mark.slow
def test_without_boto3_an_s3_artifact_fails_naming_the_extra(
    s3: Store, aws: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_with(art=s3_artifact([tracked(aws, k, k) for k in s3.small]))
    # The neptune client imports boto3 too (it depends on it): loaded first, it keeps its own
    # reference, and only the backup's own import finds boto3 missing.
    importlib.import_module("neptune.internal.backends.hosted_neptune_backend")
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` does when it is not installed
    aws.reads.clear()
    report = back_up(world, aws, tmp_path)
    assert report.exit_code == 1
    [failure] = report.failures
    assert (failure.run, failure.field) == ("P0-1", "art")
    assert failure.reason == (
        'artifact file datasets/train/a.csv: it is on S3, which needs boto3: pip install "neptune-backup-async[s3]"'
    )
    assert aws.reads == []
    fields = json.loads((run_folder(tmp_path) / ".manifest.json").read_text())["fields"]
    assert {p for p, r in fields.items() if r["status"] != "ok"} == {"art"}
    for other in world.project(PROJECT).runs[1:]:
        check_container(other, tmp_path / PROJECT / other.sys_id, artifacts_downloaded=True)


def test_a_local_file_changed_since_tracking_is_saved_and_reported(tmp_path: Path) -> None:
    world = generate(
        replace(MINIMAL, runs_per_project=1, artifact_files=2), artifact_root=tmp_path / "sources"
    )
    source = tmp_path / "sources" / "P0-1" / "part-1.bin"
    source.write_bytes(bytes(b ^ 0xFF for b in source.read_bytes()))  # same size, other bytes
    with serve(world) as neptune:
        report = anyio.run(
            lambda: backup(PROJECT, tmp_path / "dest", api_token=neptune.api_token, download_artifacts=True)
        )
    assert report.exit_code == 0, report.failures
    assert [n.reason for n in report.notices] == [
        "artifact file part-1.bin changed since it was tracked (content sha1 differs from the tracked one);"
        " saved as it is now"
    ]
    folder = run_folder(tmp_path / "dest")
    assert (folder / "datasets/train/part-1.bin").read_bytes() == source.read_bytes()
    record = json.loads((folder / ".manifest.json").read_text())["fields"]["datasets/train"]
    assert record["changed_since_tracking"] == {"part-1.bin": "content sha1 differs from the tracked one"}


def _s3_file(etag: str, size: int, modified: str) -> ArtifactFileInfo:
    metadata = {"location": "s3://b/k", "last_modified": modified}
    return ArtifactFileInfo("k", etag, "S3", size, metadata)


def test_differences_compare_what_the_driver_tracked() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 900_000, tzinfo=dt.timezone.utc)
    multipart = "7e63db46e7e9bdf7b18e6e21c568ee8d-7"
    tracked = _s3_file(multipart, 10, "2024-05-01 12:00:00")
    assert differences(tracked, Found(10, multipart, when)) == []  # the same second, to S3
    assert differences(tracked, Found(11, multipart + "0", when + dt.timedelta(seconds=1))) == [
        "size 10 -> 11",
        f"ETag {multipart} -> {multipart}0",
        "modified 2024-05-01 12:00:00 -> 2024-05-01 12:00:01 UTC",
    ]
    local = ArtifactFileInfo(
        "k", "0" * 40, "Local", 3, {"file_path": "file:///x", "last_modified": "2000-01-01 00:00:00"}
    )
    assert differences(local, Found(3)) == []  # local times are local: only size and content count


@pytest.mark.slow
def test_a_cut_download_goes_on_from_the_bytes_it_has(s3: Store, aws: S3Server, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 123)
    aws.client().put_object(Bucket="data", Key="cut.bin", Body=data)
    world = world_with(art=s3_artifact([tracked(aws, "cut.bin", "cut.bin")]))
    aws.reads.clear()
    aws.cut["/data/cut.bin"] = 2 * MiB + 5
    report = back_up(world, aws, tmp_path)
    assert report.exit_code == 0, report.failures
    assert (run_folder(tmp_path) / "art/cut.bin").read_bytes() == data
    first, second = s3_gets(aws)
    assert (first.range, first.bytes) == (None, 2 * MiB + 5)
    assert second.range is not None and second.status.startswith("206")
    start = int(second.range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= first.bytes and second.bytes == len(data) - start


@pytest.mark.slow
def test_s3_slow_down_narrows_the_one_knob(
    s3: Store, aws: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = world_with(art=s3_artifact([tracked(aws, k, k) for k in s3.small]))
    aws.slow_down = 2
    with caplog.at_level("DEBUG", logger="neptune_backup_async"):
        report = back_up(world, aws, tmp_path, concurrency=4)
    assert report.exit_code == 0, report.failures
    assert [r.status for r in s3_gets(aws)][:2] == ["503", "503"]
    assert "requests in flight: at most 2" in caplog.messages
    # Counted as throttles, as 429s are: without Retry-After each backed off before its retry.
    assert report.retries == {"S3 SlowDown": 2} and report.throttled_seconds > 0
    for key, data in s3.small.items():
        assert (run_folder(tmp_path) / "art" / key).read_bytes() == data


@pytest.mark.slow
def test_bytes_that_do_not_hash_to_a_single_part_etag_are_fetched_again(
    s3: Store, aws: S3Server, tmp_path: Path
) -> None:
    key = "datasets/train/sub/b.bin"  # put in one part: its ETag is the MD5 of its bytes
    world = world_with(art=s3_artifact([tracked(aws, key, "b.bin")]))
    aws.garble.add(f"/data/{key}")
    report = back_up(world, aws, tmp_path)
    assert report.exit_code == 0, report.failures
    assert [(r.range, r.bytes) for r in s3_gets(aws)] == [(None, len(s3.small[key]))] * 2  # whole, twice
    assert (run_folder(tmp_path) / "art/b.bin").read_bytes() == s3.small[key]
    assert report.notices == []
