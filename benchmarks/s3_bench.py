"""The large-artifact workload: backups of artifacts whose files live on S3 (MB/s, peak RSS).

A real S3 server (moto's, from the test extras) and the fake Neptune server run in a
process of their own (moto keeps objects in memory, and a process forked from a big one
starts with its peak RSS); each run of the workspace has one artifact of one object there,
listed as the ``neptune`` client's S3 driver tracks it. Every sample is the real CLI with
``--download-artifacts``, in a process of its own, into an empty folder; ``os.wait4`` gives
its peak RSS. Shapes are ``COUNTxMiB``: 16x8 is 16 objects of 8 MiB, one per run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from neptune_backup_async.testing import MINIMAL, World, generate, serve
from neptune_backup_async.testing.generator import S3Object, s3_artifact
from neptune_backup_async.testing.s3 import InFlight, S3Server, serve_s3

MiB = 2**20
PROJECT = "workspace-0/project-0"


def put_objects(server: S3Server, shape: str, scratch: Path) -> list[tuple[str, int]]:
    """Upload COUNT objects of MiB each (multipart, as large uploads are); their keys and sizes.

    Each is a random 1 MiB block repeated behind a header of its own, so that no two are alike.
    """
    count, mib = (int(n) for n in shape.split("x"))
    client = server.client()
    client.create_bucket(Bucket=_bucket(shape))
    block = os.urandom(MiB)
    keys = []
    for i in range(count):
        key = f"object-{i}.bin"
        path = scratch / "upload.bin"
        with path.open("wb") as f:
            f.write(hashlib.sha256(key.encode()).digest())
            for _ in range(mib):
                f.write(block)
        client.upload_file(
            str(path), _bucket(shape), key, Config=TransferConfig(multipart_chunksize=64 * MiB)
        )
        keys.append((key, path.stat().st_size))
        path.unlink()
    return keys


def _bucket(shape: str) -> str:
    return f"bench-{shape}"


def world_of(server: S3Server, shape: str, keys: list[tuple[str, int]]) -> World:
    world = generate(replace(MINIMAL, runs_per_project=len(keys), parameters=1, float_series=0))
    client = server.client()
    for run, (key, size) in zip(world.project(PROJECT).runs, keys, strict=True):
        head = client.head_object(Bucket=_bucket(shape), Key=key)
        obj = S3Object("object.bin", _bucket(shape), key, head["ETag"], size, head["LastModified"])
        run.fields["data"] = s3_artifact([obj])
    return world


def serve_all(shapes: list[str], scratch: Path) -> None:
    """The servers' process: one S3 server, one fake Neptune server per shape. It prints what
    the backups need as one JSON line, then answers each line on stdin with the most S3
    requests in flight since the last one."""
    with serve_s3() as server, contextlib.ExitStack() as stack:
        out: dict[str, Any] = {"url": server.url, "env": server.env(), "shapes": {}}
        for shape in shapes:
            keys = put_objects(server, shape, scratch)
            neptune = stack.enter_context(serve(world_of(server, shape, keys)))
            out["shapes"][shape] = {"token": neptune.api_token, "bytes": sum(size for _, size in keys)}
        print(json.dumps(out), flush=True)
        for _ in sys.stdin:
            print(server.in_flight.peak, flush=True)
            server.in_flight = InFlight()


def backup_once(servers: dict[str, Any], shape: str, concurrency: int, scratch: Path) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix="backup-", dir=scratch))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= servers["env"] | {"NEPTUNE_API_TOKEN": servers["shapes"][shape]["token"]}
    env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    command = [sys.executable, "-m", "neptune_backup_async", "--projects", PROJECT, "--output", str(dest)]
    command += ["--concurrency", str(concurrency), "--quiet", "--download-artifacts"]
    command += ["--s3-endpoint-url", servers["url"]]
    try:
        start = time.time()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - start
        failures = json.loads((dest / "backup-report.json").read_text())["failures"]
        downloaded = sum(p.stat().st_size for p in dest.rglob("object.bin"))
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    exit_code = os.waitstatus_to_exitcode(status)
    expected = servers["shapes"][shape]["bytes"]
    assert exit_code == 0 and downloaded == expected, (exit_code, downloaded, expected, failures)
    return {
        "wall_s": wall,
        "MB/s": downloaded / 1e6 / wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shapes", default="16x8,16x64,2x512", help="COUNTxMiB,... (default: 16x8,16x64,2x512)"
    )
    parser.add_argument(
        "--concurrency", default="1,16", help="the backup's --concurrency values (default: 1,16)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="samples per cell; the median is quoted")
    parser.add_argument(
        "--scratch", type=Path, help="where backups are written and deleted (default: a temp dir)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the servers' process
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="s3-bench-", dir=args.scratch))
    try:
        if args.serve:
            serve_all(shapes, scratch)
            return 0
        command = [sys.executable, __file__, "--serve", "--shapes", args.shapes, "--scratch", str(scratch)]
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as servers:
            assert servers.stdin is not None and servers.stdout is not None
            info = json.loads(servers.stdout.readline())
            print("| objects | c | wall s | MB/s | peak RSS MiB | client CPU s | S3 max in flight |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for shape in shapes:
                for c in (int(n) for n in args.concurrency.split(",")):
                    samples = []
                    for _ in range(args.repeat):
                        sample = backup_once(info, shape, c, scratch)
                        servers.stdin.write("peak\n")
                        servers.stdin.flush()
                        sample["s3_max_in_flight"] = int(servers.stdout.readline())
                        samples.append(sample)
                    m = sorted(samples, key=lambda s: s["wall_s"])[len(samples) // 2]
                    print(
                        f"| {shape} MiB | {c} | {m['wall_s']:.1f} | {m['MB/s']:.0f} | {m['peak_rss_mib']:.0f}"
                        f" | {m['client_cpu_s']:.1f} | {m['s3_max_in_flight']} |",
                        flush=True,
                    )
            servers.stdin.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
