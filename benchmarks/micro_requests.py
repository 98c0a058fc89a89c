"""Micro-benchmarks of one JSON request's client cost, on answers captured from the fake server.

    python benchmarks/micro_requests.py [--repeat 7]

Captures four real answers (a float series page of 10,000 and of 2,000 points, a field
listing, a runs-table page), then times, in this process, CPU time per call:

- decoding each answer with the stdlib ``json``, ``orjson`` and ``msgspec`` (whichever are
  installed), and with :func:`neptune_backup_async.remote.neptune.decoding.loads`, the one the backup uses;
- one whole JSON request of each kind (sign, send, read, decode) by the backup's
  :class:`~neptune_backup_async.remote.neptune.transport.Transport`, through ``requests``' session (as
  behind a proxy) and through its urllib3 pool.

The server runs in a process of its own, with no latency; the figures are this process's
CPU time only.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio

from fakeserver import ServerProcess
from neptune_backup_async.domain import PageRequest
from neptune_backup_async.remote.neptune import decoding
from neptune_backup_async.remote.neptune.client import NeptuneSource, connect


def per_call_ms(call: Callable[[], Any], repeat: int, budget: float = 0.3) -> float:
    """The median over ``repeat`` rounds of CPU ms per call, each round ~``budget`` s."""
    call()
    start = time.process_time()
    n = 0
    while time.process_time() - start < budget / 10:
        call()
        n += 1
    n = max(1, n * 10)
    rounds = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            call()
        rounds.append((time.process_time() - start) / n * 1000)
    return statistics.median(rounds)


def capture(source: NeptuneSource) -> dict[str, tuple[tuple[str, str], dict[str, Any]]]:
    """Each kind of answer: the operation's (method, url) and the request's keyword arguments."""
    project = source.get_project(source.projects_page(0, 100).entries[0])
    refs = source.objects_page(project, "run", "", PageRequest(limit=1000, offset=0, after=None))
    run = refs.entries[0][0]
    fields = {f.path: f for f in source.get_fields(project, run)}
    series = [f for f in fields.values() if f.type.value == "floatSeries"]
    long_one = max(series, key=lambda f: f.last_step or 0)
    columns = [{"path": c} for c in ("sys/id", "sys/creation_time", "sys/modification_time")]
    table_body = {
        "query": {"query": ""},
        "sorting": {
            "dir": "ascending",
            "aggregationMode": "none",
            "sortBy": {"name": "sys/creation_time", "type": "datetime"},
        },
        "attributeFilters": columns,
        "pagination": {"limit": 100, "offset": 0},
    }

    def page(limit: int) -> dict[str, Any]:
        return {"params": {"experimentId": run.id, "attribute": long_one.path, "offset": 0, "limit": limit}}

    url = source._url
    return {
        "series 10,000 points": (url("leaderboard", "getFloatSeriesValues"), page(10_000)),
        "series 2,000 points": (url("leaderboard", "getFloatSeriesValues"), page(2_000)),
        "field listing": (
            url("leaderboard", "getExperimentAttributes"),
            {"params": {"experimentId": run.id}},
        ),
        "runs-table page (100)": (
            url("leaderboard", "searchLeaderboardEntries"),
            {"params": {"projectIdentifier": project.id, "type": ["run"]}, "body": table_body},
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    decoders: dict[str, Callable[[bytes], Any]] = {"stdlib json": json.loads}
    try:
        import orjson

        decoders["orjson"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        decoders["msgspec"] = msgspec.json.decode
    except ImportError:
        pass
    decoders["decoding.loads (used)"] = decoding.loads
    overrides = {"runs_per_project": 100, "float_series_length": 10_000}
    with ServerProcess("W1", 0.0, overrides) as server:
        source = anyio.run(connect, server.api_token, 4)
        try:
            calls = capture(source)
            transport = source._http
            print(f"CPU ms per call, median of {args.repeat} rounds\n")
            print(
                "| answer | bytes | "
                + " | ".join(decoders)
                + " | request via requests | request via the pool |"
            )
            print("|---|---:|" + "---:|" * (len(decoders) + 2))
            for name, ((method, url), kwargs) in calls.items():
                body, _ = transport.send(method, url, name, **kwargs)
                cells = [
                    f"{per_call_ms(functools.partial(d, body), args.repeat):.3f}" for d in decoders.values()
                ]
                call = functools.partial(transport.json, method, url, name, **kwargs)
                via_pool = per_call_ms(call, args.repeat)
                pooled = dict(transport._routes)
                # The same transport with every host routed through requests, as behind a proxy.
                transport._routes.update({key: replace(r, pool=None) for key, r in pooled.items()})
                via_requests = per_call_ms(call, args.repeat)
                transport._routes.update(pooled)
                print(
                    f"| {name} | {len(body):,} | {' | '.join(cells)} | {via_requests:.3f} | {via_pool:.3f} |"
                )
        finally:
            source.close()


if __name__ == "__main__":
    main()
