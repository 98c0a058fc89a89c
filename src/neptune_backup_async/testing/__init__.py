"""A fake Neptune server for offline tests, benchmarks and the demo.

It speaks the Neptune 2.x REST API as the ``neptune`` 1.x client reads it, serves a
generated or hand-built :class:`~.model.World`, and can inject latency and faults::

    from neptune_backup_async.testing import WORKLOADS, generate, serve

    with serve(generate(WORKLOADS["demo"])) as server:
        ...  # use server.api_token; server.stats counts the requests
"""

from .generator import MINIMAL, WORKLOADS, WorkloadSpec, generate
from .holding import Gather, Hold
from .model import World
from .server import FakeNeptuneServer, Faults, Stats, serve

__all__ = [
    "MINIMAL",
    "WORKLOADS",
    "FakeNeptuneServer",
    "Faults",
    "Gather",
    "Hold",
    "Stats",
    "WorkloadSpec",
    "World",
    "generate",
    "serve",
]
