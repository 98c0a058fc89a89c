"""The fake Neptune server in a process of its own, with its request accounting on stdin/stdout.

Run as a script, it generates a named workload, serves it and prints one JSON line
(``base_url``, ``api_token``, ``projects``). Then it answers one command per stdin line:

- ``reset``: zero the request counts, timings and CPU clock; answers ``{"ok": true}``;
- ``stats``: answers :meth:`TimedStats.snapshot` as one JSON line;
- ``quit`` or end of input: stop serving and exit. SIGTERM prints the stats, then exits.

Imported, :class:`ServerProcess` starts and drives such a process for the harness and the
profiler. The server and the backup thus never share a GIL.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from neptune_backup_async.testing import WORKLOADS, FakeNeptuneServer, Faults, Stats, WorkloadSpec, generate
from neptune_backup_async.testing.messages import Request, Response

# Requests the backup makes before it lists any run: client set-up, then the projects.
STARTUP_OPERATIONS = frozenset(
    {"getClientConfig", "swagger", "exchangeApiToken", "oauthRefresh", "listProjects", "getProject"}
)
LISTING_OPERATION = "searchLeaderboardEntries"


class TimedStats(Stats):
    """:class:`Stats` plus wall-clock times (``time.time()``) per operation and server CPU time."""

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.first_begin: dict[str, float] = {}
            self.last_begin: dict[str, float] = {}
            self.last_end = 0.0
            self.listing: list[tuple[float, int]] = []  # (time answered, runs in the page)
            self.cpu_at_reset = _cpu_seconds()

    def begin(self, operation: str) -> None:
        super().begin(operation)
        now = time.time()
        with self._lock:
            self.first_begin.setdefault(operation, now)
            self.last_begin[operation] = now

    def end(self, status: int, body_bytes: int, cut: bool) -> None:
        super().end(status, body_bytes, cut)
        with self._lock:
            self.last_end = time.time()

    def listed(self, runs: int) -> None:
        with self._lock:
            self.listing.append((time.time(), runs))

    def snapshot(self) -> dict[str, Any]:
        out = super().snapshot()
        with self._lock:
            out["listing"] = list(self.listing)
            out["first_begin"] = dict(self.first_begin)
            out["last_begin"] = dict(self.last_begin)
            out["last_end"] = self.last_end
            out["cpu_s"] = _cpu_seconds() - self.cpu_at_reset
        return out


def count_listed_runs(server: FakeNeptuneServer, stats: TimedStats) -> None:
    """Wrap ``server.answer`` so that every runs-table page notes when it was answered and how many runs it held."""
    answer = server.answer

    def counting(operation: str, request: Request) -> Response:
        response = answer(operation, request)
        if operation == LISTING_OPERATION and response.status == 200:
            stats.listed(len(json.loads(response.body).get("entries", ())))
        return response

    server.answer = counting  # type: ignore[method-assign]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the server process ---------------------------------------------------------------------


def spec_field(text: str) -> tuple[str, Any]:
    """``name=value`` for one WorkloadSpec field, the value parsed as that field's type."""
    name, _, raw = text.partition("=")
    kinds = {f.name: type(f.default) for f in dataclasses.fields(WorkloadSpec)}
    name = name.strip().replace("-", "_")
    if name not in kinds:
        raise argparse.ArgumentTypeError(f"unknown workload field {name!r}; one of {', '.join(kinds)}")
    kind = kinds[name]
    value: Any = raw.strip().lower() in ("1", "true", "yes") if kind is bool else kind(raw.strip())
    return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="W1")
    parser.add_argument("--latency", type=float, default=0.025, help="seconds added to every request")
    parser.add_argument(
        "--set",
        type=spec_field,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one WorkloadSpec field, e.g. --set file_size=10000000 (repeatable)",
    )
    return parser


def _emit(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


class _Stop(Exception):
    pass


def _on_sigterm(*_: object) -> None:
    raise _Stop


def _serve_commands(stats: TimedStats) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            stats.reset()
            _emit({"ok": True})
        elif command == "stats":
            _emit(stats.snapshot())
        elif command == "quit":
            return
        else:
            _emit({"error": f"unknown command {command!r}"})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spec = dataclasses.replace(WORKLOADS[args.workload], **dict(args.set))
    with tempfile.TemporaryDirectory(prefix="neptune-bench-artifacts-") as artifacts:
        serve_until_told(spec, args.latency, Path(artifacts))
    return 0


def serve_until_told(spec: WorkloadSpec, latency: float, artifacts: Path) -> None:
    """Generate and serve ``spec``, answering commands on stdin until ``quit``, end of input or SIGTERM."""
    world = generate(spec, artifacts)
    server = FakeNeptuneServer(world, faults=Faults(latency=latency, seed=spec.seed))
    stats = server.stats = TimedStats()
    count_listed_runs(server, stats)
    signal.signal(signal.SIGTERM, _on_sigterm)
    server.start()
    try:
        _emit(
            {"base_url": server.base_url, "api_token": server.api_token, "projects": sorted(world.projects)}
        )
        _serve_commands(stats)
    except _Stop:
        _emit(stats.snapshot())
    finally:
        server.stop()


# -- driving it from another process --------------------------------------------------------


class ServerProcess:
    """A fake server process: ``with ServerProcess("W1", 0.025) as s: s.reset(); ...; s.stats()``."""

    def __init__(
        self,
        workload: str,
        latency: float,
        overrides: dict[str, Any] | None = None,
        timeout: float = 600,
        env: dict[str, str] | None = None,
    ) -> None:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--workload",
            workload,
            "--latency",
            str(latency),
        ]
        for name, value in (overrides or {}).items():
            command += ["--set", f"{name}={value}"]
        self.timeout = timeout
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        hello = self._read()  # after the workload is generated, which may take a while
        self.base_url: str = hello["base_url"]
        self.api_token: str = hello["api_token"]
        self.projects: list[str] = hello["projects"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(_readline(self._proc.stdout)), daemon=True)
        reader.start()
        reader.join(self.timeout)
        if not result or not result[0]:
            self.close()
            raise RuntimeError("the fake server process did not answer")
        answer: dict[str, Any] = json.loads(result[0])
        return answer

    def _command(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._read()

    def reset(self) -> None:
        self._command("reset")

    def stats(self) -> dict[str, Any]:
        return self._command("stats")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
                self._proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _readline(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline()


if __name__ == "__main__":
    sys.exit(main())
