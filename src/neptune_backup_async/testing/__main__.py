"""``python -m neptune_backup_async.testing``: serve a generated workspace until stopped.

Prints one JSON line, ``{"base_url": ..., "api_token": ..., "projects": [...]}``, then serves.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .generator import WORKLOADS, WorkloadSpec, generate
from .server import Faults, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_backup_async.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--workload", choices=sorted(WORKLOADS), default="demo", help="a named workload to start from"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered 429 or 5xx")
    parser.add_argument(
        "--artifact-root", type=Path, help="where artifact files are created (default: a temp dir)"
    )
    for f in dataclasses.fields(WorkloadSpec):
        kind = type(f.default)
        if kind is bool:
            parser.add_argument(
                f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes")
            )
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind)
    args = parser.parse_args(argv)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(WorkloadSpec)
        if getattr(args, f.name) is not None
    }
    spec = dataclasses.replace(WORKLOADS[args.workload], **overrides)
    artifact_root = args.artifact_root or Path(tempfile.mkdtemp(prefix="neptune-fake-artifacts-"))
    world = generate(spec, artifact_root)
    half = args.fault_rate / 2
    faults = Faults(latency=args.latency, rate_429=half, rate_5xx=half, seed=spec.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve(world, faults=faults, port=args.port) as server:
        line = {
            "base_url": server.base_url,
            "api_token": server.api_token,
            "projects": sorted(world.projects),
        }
        print(json.dumps(line), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
