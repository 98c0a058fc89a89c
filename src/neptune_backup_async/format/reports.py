"""Reports read back from DEST: checked before they are used, and merged across shards."""

from __future__ import annotations

import datetime as dt
import errno
import json
import re
from pathlib import Path
from typing import Any

from .. import domain
from ..errors import NotABackupError
from .manifest import Damaged, typed
from .reader import read_own


def finished_time(path: Path) -> dt.datetime | None:
    """When the backup whose report is at ``path`` finished (or started, if it has no end); None without one."""
    try:
        doc = read_report(path)
        return domain.parse_iso(doc.get("finished_at") or doc["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_NOTHING = type(None)
# The keys of a report that readers rely on, and their types; the first three must be there.
_KEYS: dict[str, tuple[type, ...]] = {
    "totals": (dict,),
    "projects": (dict,),
    "exit_code": (int,),
    "destination": (str, _NOTHING),
    "started_at": (str, _NOTHING),
    "finished_at": (str, _NOTHING),
    "previous_backup": (str, _NOTHING),
    "interrupted": (bool,),
    "dry_run": (bool,),
    "selection": (dict,),
    "failures": (list,),
    "notices": (list,),
    "retries": (dict,),
    "throttled_seconds": (int, float),
}
_SHARD = re.compile(r"[0-9]+/[1-9][0-9]*")


def check_report(doc: Any) -> dict[str, Any]:
    """``doc`` if it is a report of the shape :meth:`BackupReport.to_json` writes, as far as
    readers rely on it; else raise :class:`Damaged`, saying why."""
    typed(doc, (dict,), "the report")
    if doc.get("format") != 2:
        raise Damaged(f"unknown report format {doc.get('format')!r}")
    for key, types in _KEYS.items():
        if key in doc or key in ("totals", "projects", "exit_code"):
            typed(doc.get(key), types, key)
    for key in ("started_at", "finished_at", "previous_backup"):
        if doc.get(key) is not None:
            try:
                domain.parse_iso(doc[key])
            except ValueError:
                raise Damaged(f"{key} {doc[key]!r} is not a time") from None
    for key, value in doc["totals"].items():
        typed(value, (int,), f"totals.{key}")
    for name, project in doc["projects"].items():
        for key, value in typed(project, (dict,), f"project {name}").items():
            if key == "planned":
                for kind, tally in typed(value, (dict,), f"{name}: planned").items():
                    for stat in ("fields", "bytes"):
                        typed(
                            typed(tally, (dict,), f"{name}: planned {kind}").get(stat),
                            (int,),
                            f"{kind} {stat}",
                        )
            else:
                typed(value, (bool,) if key == "listed" else (int,), f"{name}: {key}")
    for note in [*doc.get("failures", []), *doc.get("notices", [])]:
        typed(note, (dict,), "a failure or notice")
        typed(note.get("project"), (str,), "a note's project")
        typed(note.get("reason"), (str,), "a note's reason")
        for key in ("run", "field"):
            typed(note.get(key), (str, _NOTHING), f"a note's {key}")
    for reason, count in doc.get("retries", {}).items():
        typed(count, (int,), f"retries {reason!r}")
    shard = doc.get("selection", {}).get("shard")
    if shard is not None and not (isinstance(shard, str) and _SHARD.fullmatch(shard)):
        raise Damaged(f"the shard {shard!r} is not K/N")
    checked: dict[str, Any] = doc
    return checked


def read_report(path: Path) -> dict[str, Any]:
    """The report at ``path``, checked (blocking; never through a symbolic link). Raises
    OSError, or ValueError for a file that is not a report of ours."""
    data = read_own(path)
    if data is None:
        raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
    return check_report(json.loads(data.decode("utf-8")))


def load_reports(dest: Path) -> dict[str, Any]:
    """The report of the backup in ``dest``, merged from its shards' reports if it has several."""
    if not dest.is_dir():
        what = "is not a folder" if dest.exists() else "does not exist"
        raise NotABackupError(f"{dest} {what}. Give the folder a backup was written to.")
    paths = sorted(dest.glob("backup-report*.json"))
    if not paths:
        raise NotABackupError(f"{dest} holds no backup report (backup-report*.json).")
    docs = []
    for path in paths:
        try:
            docs.append(read_report(path))
        except (OSError, ValueError) as e:
            raise NotABackupError(f"Cannot read {path} ({e}). Run the backup again to rewrite it.") from None
    return merge(docs)


def _when(doc: dict[str, Any]) -> dt.datetime:
    stamp = doc.get("finished_at") or doc.get("started_at")
    return domain.parse_iso(stamp) if stamp else dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _covers(newer: dict[str, Any], older: dict[str, Any]) -> bool:
    """Whether ``newer`` backed up every object ``older`` did: the same filters (or none), its
    projects and more, and the whole workspace or the same shard."""
    new_sel, old_sel = dict(newer.get("selection", {})), dict(older.get("selection", {}))
    new_shard, old_shard = new_sel.pop("shard", None), old_sel.pop("shard", None)
    return (
        (not new_sel or new_sel == old_sel)
        and set(newer["projects"]) >= set(older["projects"])
        and new_shard in (None, old_shard)
    )


def current(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reports that no later one supersedes: a report made later replaces an older one for
    the objects it covers (a whole backup after its shards, a shard run again), so nothing is
    counted twice. A whole backup that later shards only partly redo keeps its counts; those
    shards then add their failures and notices, not their counts (see :func:`merge`)."""
    docs = sorted(docs, key=_when)
    return [old for i, old in enumerate(docs) if not any(_covers(new, old) for new in docs[i + 1 :])]


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several (of the shards of one backup): counts add up, notes are joined.

    Reports that a later one supersedes are left out (:func:`current`). Shards that a report
    names but none was found for are listed under ``missing_shards`` and make the exit code 1:
    that part of the workspace was not backed up, unless a whole backup did it.
    """
    docs = current(docs)
    whole = [d for d in docs if not d.get("selection", {}).get("shard")]
    counted = whole or docs  # shards later than a whole backup overlap it: its counts stand
    if len(docs) == 1 and not docs[0].get("selection", {}).get("shard"):
        return docs[0]
    totals: dict[str, Any] = {}
    projects: dict[str, dict[str, Any]] = {}
    for doc in counted:
        for key, value in doc["totals"].items():
            if key != "projects":
                totals[key] = totals.get(key, 0) + value
        for name, summary in doc["projects"].items():
            into = projects.setdefault(name, {"listed": True})
            for key, value in summary.items():
                if key == "listed":
                    into["listed"] = into["listed"] and value
                elif key == "planned":
                    for kind, p in value.items():
                        tally = into.setdefault("planned", {}).setdefault(kind, {"fields": 0, "bytes": 0})
                        tally["fields"] += p["fields"]
                        tally["bytes"] += p["bytes"]
                else:
                    into[key] = into.get(key, 0) + value
    totals["projects"] = len(projects)
    retries: dict[str, int] = {}
    for doc in counted:
        for reason, count in doc.get("retries", {}).items():
            retries[reason] = retries.get(reason, 0) + count
    shards = sorted({d.get("selection", {}).get("shard") for d in docs} - {None})
    counts = {int(s.split("/")[1]) for s in shards}
    missing = [f"{k}/{n}" for n in sorted(counts) for k in range(n) if f"{k}/{n}" not in shards and not whole]
    started = [d["started_at"] for d in docs if d.get("started_at")]
    finished = [d["finished_at"] for d in docs if d.get("finished_at")]
    return {
        "format": 2,
        "merged_from": len(docs),
        "shards": shards,
        "missing_shards": missing,
        "destination": docs[0].get("destination"),
        "started_at": min(started, key=domain.parse_iso) if started else None,
        "finished_at": max(finished, key=domain.parse_iso) if len(finished) == len(docs) else None,
        "interrupted": any(d.get("interrupted") for d in docs),
        "dry_run": all(d.get("dry_run") for d in docs),
        "exit_code": max([int(d.get("exit_code", 1)) for d in docs] + [1 if missing else 0]),
        "totals": totals,
        "projects": dict(sorted(projects.items())),
        "failures": [n for d in docs for n in d.get("failures", [])],
        "notices": [n for d in docs for n in d.get("notices", [])],
        "retries": dict(sorted(retries.items())),
        "throttled_seconds": round(sum(d.get("throttled_seconds", 0.0) for d in counted), 3),
    }
