"""``build_site``: a static HTML site from a backup, rebuilding only the runs that changed."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import NotABackupError
from ..format import layout
from ..format.reports import load_reports
from ..format.verify import container_folders, verify
from . import assets
from .data import load_run, natural_key
from .escape import h, url
from .index_page import index_page
from .parts import Links, page_key
from .project_page import project_page
from .rows import compare_data, table_row
from .run_page import run_page

SITE_DIR = "_site"
STATE = ".view-state.json"
STATE_VERSION = 1
PARALLEL_FROM = 40  # rebuild in worker processes from this many changed runs


def _write(path: Path, text: str) -> None:
    """Write through a temporary name, so a page is never seen half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    _write(path, text)


def _fingerprint(manifest: Path) -> list[Any]:
    st = manifest.stat()
    return [st.st_mtime_ns, st.st_size, hashlib.sha256(manifest.read_bytes()).hexdigest()]


def _build_run(task: tuple[str, str, str, list[str], str, str]) -> tuple[str, dict[str, Any] | None]:
    """Write one run's page and compare data; return its table row (None when its manifest
    cannot be read). Runs in a worker process."""
    dest_s, site_s, rel, problems, key, to_dest = task
    dest, site = Path(dest_s), Path(site_s)
    try:
        run = load_run(dest, dest / rel, problems)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return rel, None  # verify names the damage; the project page lists the folder
    project = run.manifest.project
    project_key = page_key(*rel.split("/")[:2])
    links = Links(root="../", dest=to_dest)
    html = run_page(run, links, f"../projects/{url(project_key)}.html", project)
    _write(site / "runs" / f"{key}.html", html)
    _write(site / "data" / f"{key}.js", compare_data(run, key))
    return rel, table_row(run, key)


def _rel_posix(target: Path, start: Path) -> str:
    rel = os.path.relpath(target.resolve(), start.resolve()).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"


def build_site(dest: Path, output: Path | None = None, *, workers: int | None = None) -> Path:
    """Write the site of the backup ``dest`` into ``output`` (default ``dest/_site``); return its index.html.

    Raises NotABackupError when ``dest`` holds no backup.
    """
    dest = Path(dest)
    site = Path(output) if output is not None else dest / SITE_DIR
    verification = verify(dest)  # raises NotABackupError; its problems are each run's integrity
    problems: dict[str, list[str]] = {}
    for problem in verification.problems:
        run_rel = "/".join(problem.path.split("/")[:3])
        problems.setdefault(run_rel, []).append(str(problem))
    site.mkdir(parents=True, exist_ok=True)
    to_dest = _rel_posix(dest, site / "runs")

    state_path = site / STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if (
            state.get("version") != STATE_VERSION
            or state.get("to_dest") != to_dest
            or state.get("assets") != assets.DIGEST
        ):
            state = {}
    except (OSError, ValueError):
        state = {}
    old_runs: dict[str, Any] = state.get("runs", {}) if isinstance(state.get("runs"), dict) else {}

    runs: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str, str, list[str], str, str]] = []
    no_manifest: dict[str, list[str]] = {}
    site_resolved = site.resolve()
    for folder in container_folders(dest):
        if folder.resolve().is_relative_to(site_resolved):
            continue
        rel = folder.relative_to(dest).as_posix()
        manifest = folder / layout.MANIFEST
        if not manifest.is_file():
            no_manifest.setdefault("/".join(rel.split("/")[:2]), []).append(rel)
            continue
        key = page_key(*rel.split("/"))
        try:
            fingerprint = _fingerprint(manifest)
        except OSError:
            continue
        run_problems = sorted(problems.get(rel, []))
        old = old_runs.get(rel)
        if (
            isinstance(old, dict)
            and old.get("manifest") == fingerprint
            and old.get("problems") == run_problems
            and (site / "runs" / f"{key}.html").is_file()
            and (site / "data" / f"{key}.js").is_file()
        ):
            runs[rel] = old
            continue
        runs[rel] = {"manifest": fingerprint, "problems": run_problems}
        todo.append((str(dest), str(site), rel, run_problems, key, to_dest))

    for rel, row in _rebuild(todo, workers):
        if row is None:
            del runs[rel]  # not kept in the state: tried again next time
            no_manifest.setdefault("/".join(rel.split("/")[:2]), []).append(rel)
        else:
            runs[rel]["row"] = row

    # pages of runs no longer in the backup
    keep = {f"{r['row']['key']}" for r in runs.values() if "row" in r}
    for folder_name, suffix in (("runs", ".html"), ("data", ".js")):
        folder = site / folder_name
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.endswith(suffix) and path.name[: -len(suffix)] not in keep:
                    path.unlink()

    generated = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    report = _read_report(dest)
    for name, text in assets.ASSETS.items():
        _write_if_changed(site / "assets" / name, text)

    by_project: dict[str, list[dict[str, Any]]] = {}
    for rel in sorted(runs, key=natural_key):  # P0-2 before P0-10, in the table and without JavaScript
        if "row" in runs[rel]:
            by_project.setdefault("/".join(rel.split("/")[:2]), []).append(runs[rel]["row"])
    project_names = _project_names(dest, runs)
    project_entries = []
    for prel in sorted(set(by_project) | set(no_manifest)):
        rows = by_project.get(prel, [])
        name = project_names.get(prel, prel)
        key = page_key(*prel.split("/"))
        missing = no_manifest.get(prel, [])
        extra = ""
        if missing:
            extra = (
                "<p class='status-incomplete'>Run folders without a readable manifest (their backup did not"
                " finish, or the manifest is damaged):</p><ul>"
                + "".join(f"<li>{h(m)}</li>" for m in missing)
                + "</ul>"
            )
        models = [r for r in rows if r["kind"] in ("model", "modelVersion")]
        own = next((r for r in rows if r["kind"] == "project"), None)
        _write(site / "projects" / f"{key}.html", project_page(name, rows, models, own, extra, generated))
        statuses = {r["status"] for r in rows} | ({"incomplete"} if missing else set())
        status = next((s for s in ("damaged", "failed", "incomplete") if s in statuses), "ok")
        project_entries.append(
            {
                "workspace": name.split("/")[0],
                "name": name,
                "project": name.split("/", 1)[-1],
                "key": key,
                "runs": sum(1 for r in rows if r["kind"] == "run") + len(missing),
                "models": sum(1 for r in models if r["kind"] == "model"),
                "versions": sum(1 for r in models if r["kind"] == "modelVersion"),
                "status": status,
                "report": (report or {}).get("projects", {}).get(name),
            }
        )
    # projects the last backup listed but that have no run folder
    listed = {p["name"] for p in project_entries}
    for name, rep in sorted(((report or {}).get("projects") or {}).items()):
        if name not in listed:
            project_entries.append(
                {"workspace": name.split("/")[0], "name": name, "project": name.split("/", 1)[-1], "key": "",
                 "runs": 0, "models": 0, "versions": 0, "status": "ok", "report": rep}
            )  # fmt: skip
    old_projects = (
        {p.name for p in (site / "projects").glob("*.html")} if (site / "projects").is_dir() else set()
    )
    for stale in old_projects - {f"{p['key']}.html" for p in project_entries if p["key"]}:
        (site / "projects" / stale).unlink()
    verified: dict[str, int] = {}  # the object folders verify read a manifest of, by kind
    for row in (r for rows in by_project.values() for r in rows):
        verified[row["kind"]] = verified.get(row["kind"], 0) + 1
    index = site / "index.html"
    _write(
        index,
        index_page(project_entries, report, len(verification.problems), verified, generated),
    )
    _write(
        state_path,
        json.dumps(
            {"version": STATE_VERSION, "to_dest": to_dest, "assets": assets.DIGEST, "runs": runs},
            sort_keys=True,
            indent=1,
            allow_nan=True,
        ),
    )
    return index


def _rebuild(
    todo: list[tuple[str, str, str, list[str], str, str]], workers: int | None
) -> Iterable[tuple[str, dict[str, Any] | None]]:
    count = workers if workers is not None else (os.cpu_count() or 1)
    if len(todo) < PARALLEL_FROM or count <= 1:
        return [_build_run(t) for t in todo]
    with concurrent.futures.ProcessPoolExecutor(max_workers=count) as pool:
        return list(pool.map(_build_run, todo, chunksize=8))


def _read_report(dest: Path) -> dict[str, Any] | None:
    """The backup's report, merged from its shards' if it was sharded; None if there is none."""
    try:
        return load_reports(dest)
    except (NotABackupError, KeyError, TypeError, ValueError):
        return None


def _project_names(dest: Path, runs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The original ``workspace/project`` name of each project folder, from one of its manifests."""
    names: dict[str, str] = {}
    for rel in sorted(runs):
        prel = "/".join(rel.split("/")[:2])
        if prel in names:
            continue
        try:
            doc = json.loads((dest / rel / layout.MANIFEST).read_text(encoding="utf-8"))
            names[prel] = str(doc["project"])
        except (OSError, ValueError, KeyError, TypeError):
            names[prel] = prel
    return names
