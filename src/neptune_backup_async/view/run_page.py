"""The page of one run (or model, model version, or a project's own fields)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .charts import chart, num
from .data import MONITORING, Run, cached_series, read_artifact, read_image_index
from .escape import h, url
from .logs import logs
from .parts import SCALAR_TYPES, Links, facts, fmt_value, page, page_key, size_text, status_of, when


def _tree(items: Iterable[tuple[str, Any]], strip: str = "") -> str:
    """Fields as nested lists of their namespaces."""
    root: dict[str, Any] = {}
    for path, value in items:
        parts = path[len(strip) :].split("/") if strip and path.startswith(strip) else path.split("/")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a value and a namespace of the same name
                child = node[part + "/"] = {}
            node = child
        node[parts[-1]] = _Leaf(value)

    def render(node: dict[str, Any]) -> str:
        out = []
        for name in sorted(node):
            child = node[name]
            if isinstance(child, _Leaf):
                out.append(
                    f'<li><span class="key">{h(name)}</span> = <span class="val">{h(fmt_value(child.value))}</span></li>'
                )
            else:
                out.append(f"<li><details open><summary>{h(name)}</summary>{render(child)}</details></li>")
        return f'<ul class="tree">{"".join(out)}</ul>'

    return render(root) if root else '<p class="muted">none</p>'


@dataclass
class _Leaf:
    value: Any


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"c{self.n}"


def _charts(run: Run, paths: list[str], links: Links, ids: _Ids) -> str:
    out = []
    for path in paths:
        rel = run.field_file(path, ".csv")
        if rel is None:
            continue
        series = cached_series(run, rel)
        href = links.backup_file(run, rel)
        last = (
            f"last {h(num(series.values[-1]))} at step {h(num(series.steps[-1]))}"
            if series.values
            else "empty"
        )
        out.append(
            f'<figure class="chart-box"><figcaption><strong>{h(path)}</strong> — {len(series.values)} points, {last}'
            f' · <a href="{href}">CSV</a></figcaption>'
            f"{chart(path, series, ids())}</figure>"
        )
    return f'<div class="charts">{"".join(out)}</div>' if out else ""


def _gallery(run: Run, path: str, links: Links) -> str:
    record = run.manifest.fields[path]
    index_rel = next((f for f in record.files if f.endswith("/index.json")), None)
    if index_rel is None:
        return ""
    folder = index_rel.rsplit("/", 1)[0]
    items = read_image_index(run.folder / index_rel)
    figures = []
    for item in items:
        name = str(item.get("file") or "")
        rel = f"{folder}/{name}"
        if not name or rel not in run.manifest.files:
            continue
        step = item.get("step")
        caption = f"step {num(float(step))}" if isinstance(step, (int, float)) else "no step"
        label = item.get("name") or name
        desc = item.get("description")
        alt = f"{path} {label}, {caption}"
        figures.append(
            f'<figure><a href="{links.backup_file(run, rel)}"><img loading="lazy" src="{links.backup_file(run, rel)}"'
            f' alt="{h(alt)}"></a><figcaption>{h(caption)} · {h(label)}'
            + (f"<br><span class='muted'>{h(desc)}</span>" if desc else "")
            + "</figcaption></figure>"
        )
    return (
        f'<h3>{h(path)}</h3><p class="muted">{len(figures)} images ·'
        f' <a href="{links.backup_file(run, index_rel)}">index.json</a></p><div class="gallery">{"".join(figures)}</div>'
    )


def _files(run: Run, links: Links) -> str:
    rows = []
    for path in run.fields_of("file", "fileSet", "artifact"):
        if path.startswith("source_code/"):
            continue
        record = run.manifest.fields[path]
        kind = {"file": "file", "fileSet": "file set", "artifact": "artifact"}[record.type]
        items = []
        for rel in record.files:
            items.append(
                f'<a href="{links.backup_file(run, rel)}">{h(rel)}</a> ({h(size_text(run.file_size(rel)))})'
            )
        extra = ""
        if record.type == "artifact":
            listing_rel = run.field_file(path, ".artifact.json")
            doc = read_artifact(run.folder / listing_rel) if listing_rel else {}
            files = doc.get("files") if isinstance(doc.get("files"), list) else []
            listed = "".join(
                f"<li>{h(f.get('path'))} ({h(size_text(f.get('size') if isinstance(f.get('size'), int) else None))},"
                f" {h(f.get('type'))})</li>"
                for f in files or []
                if isinstance(f, dict)
            )
            extra = f"<details><summary>hash {h(doc.get('hash', ''))}</summary><ul>{listed}</ul></details>"
        rows.append(f"<tr><td>{h(path)}</td><td>{kind}</td><td>{'<br>'.join(items)}{extra}</td></tr>")
    if not rows:
        return ""
    return (
        '<div class="table-wrap"><table><thead><tr><th scope="col">field</th><th scope="col">type</th>'
        f'<th scope="col">files</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _source(run: Run, links: Links) -> str:
    parts = []
    for path in run.fields_of("gitRef"):
        git = run.meta.get(path)
        if not isinstance(git, dict):
            continue
        commit: dict[str, Any] = git["commit"] if isinstance(git.get("commit"), dict) else {}
        about = [
            ("commit", commit.get("commit_id")),
            ("message", commit.get("message")),
            ("author", f"{commit.get('author_name') or ''} <{commit.get('author_email') or ''}>"),
            ("date", commit.get("commit_date")),
            ("branch", git.get("current_branch")),
            ("dirty", git.get("repository_dirty")),
            ("remotes", git.get("remotes")),
        ]
        parts.append(f"<h3>git ref: {h(path)}</h3>" + facts(about))
    for path in run.fields_of("notebookRef"):
        ref = run.meta.get(path)
        if isinstance(ref, dict):
            parts.append(f"<h3>notebook: {h(path)}</h3>" + facts(sorted(ref.items())))
    simple = [(p, run.meta.get(p)) for p in run.fields_of(*SCALAR_TYPES) if p.startswith("source_code/")]
    if simple:
        parts.append(facts(simple))
    files = []
    for path in run.fields_of("file", "fileSet", "artifact"):
        if path.startswith("source_code/"):
            for rel in run.manifest.fields[path].files:
                files.append(
                    f'<li>{h(path)}: <a href="{links.backup_file(run, rel)}">{h(rel)}</a>'
                    f" ({h(size_text(run.file_size(rel)))})</li>"
                )
    if files:
        parts.append(f"<h3>source files</h3><ul>{''.join(files)}</ul>")
    return "".join(parts)


def run_page(run: Run, links: Links, project_href: str, project_name: str) -> str:
    meta = run.meta
    ids = _Ids()
    status = status_of(run)
    name = meta.get("sys/name")
    title = f"{run.sys_id} {name}" if name else run.sys_id
    body = [f"<h1>{h(run.sys_id)}{(' — ' + h(name)) if name else ''}</h1>"]
    about = [
        ("kind", run.manifest.kind),
        ("project", run.manifest.project),
        ("state", meta.get("sys/state")),
        ("owner", meta.get("sys/owner")),
        ("tags", meta.get("sys/tags")),
        ("created", when(meta.get("sys/creation_time"))),
        ("modified", when(meta.get("sys/modification_time"))),
        ("description", meta.get("sys/description")),
    ]
    body.append(facts((k, v) for k, v in about if v not in (None, "", [])))  # a model has no state
    # integrity
    failed = run.manifest.failures
    problems = "".join(f"<li>{h(line)}</li>" for line in run.problems)
    verdict = {
        "ok": "complete and intact: every file matches its manifest",
        "failed": "some fields could not be backed up",
        "incomplete": "the backup of this run is incomplete",
        "damaged": "files are missing, damaged or unexpected",
    }[status]
    body.append(
        f'<h2>Integrity</h2><p class="status-{status}" id="integrity">{h(status)}: {h(verdict)}'
        f" (manifest: {'complete' if run.manifest.complete else 'not complete'}; {len(run.manifest.files)} files)</p>"
    )
    if failed:
        body.append(
            "<p>Failed fields:</p><ul class='problems'>"
            + "".join(f"<li>{h(p)}: {h(why)}</li>" for p, why in failed.items())
            + "</ul>"
        )
    if problems:
        body.append(f'<p>What <code>verify</code> says:</p><ul class="problems">{problems}</ul>')
    # parameters and other values
    simple = [
        (p, meta[p])
        for p in run.fields_of(*SCALAR_TYPES)
        if p in meta and not p.startswith(("sys/", MONITORING, "source_code/"))
    ]
    params = [(p, v) for p, v in simple if p.startswith("parameters/")]
    others = [(p, v) for p, v in simple if not p.startswith("parameters/")]
    body.append("<h2>Parameters</h2>" + _tree(params, "parameters/"))
    if others:
        body.append("<h2>Other values</h2>" + _tree(others))
    metrics = [p for p in run.fields_of("floatSeries") if not p.startswith(MONITORING)]
    if metrics:
        body.append("<h2>Metrics</h2>" + _charts(run, metrics, links, ids))
    texts = [p for p in run.fields_of("stringSeries") if not p.startswith(MONITORING)]
    if texts:
        body.append("<h2>Logs</h2>" + logs(run, texts, links))
    images = run.fields_of("imageSeries")
    if images:
        body.append("<h2>Images</h2>" + "".join(_gallery(run, p, links) for p in images))
    files = _files(run, links)
    if files:
        body.append("<h2>Files and artifacts</h2>" + files)
    # monitoring, grouped by namespace
    namespaces: dict[str, list[str]] = {}
    for path in run.manifest.fields:
        if path.startswith(MONITORING):
            ns = "/".join(path.split("/")[:2])
            namespaces.setdefault(ns, []).append(path)
    if namespaces:
        body.append("<h2>Monitoring</h2>")
        for ns in sorted(namespaces):
            paths = sorted(namespaces[ns])
            values = [
                (p, meta[p]) for p in paths if p in meta and run.manifest.fields[p].type in SCALAR_TYPES
            ]
            section = f"<h3>{h(ns)}</h3>" + (facts(values) if values else "")
            section += _charts(run, [p for p in paths if p in run.fields_of("floatSeries")], links, ids)
            section += logs(run, [p for p in paths if p in run.fields_of("stringSeries")], links)
            body.append(f"<section>{section}</section>")
    source = _source(run, links)
    if source:
        body.append("<h2>Source code</h2>" + source)
    sys_values = [(p, meta[p]) for p in sorted(meta) if p.startswith("sys/")]
    body.append(
        "<h2>System fields</h2><details><summary>all sys/ fields</summary>" + facts(sys_values) + "</details>"
    )
    crumbs: list[tuple[str, str | None]] = [
        ("Backup", f"{links.root}index.html"),
        (project_name, project_href),
    ]
    if run.manifest.kind == "modelVersion":  # <ws>/<project>/_models/<MODEL>/_versions/<VERSION>
        model_key = page_key(*run.rel.split("/")[:4])
        crumbs.append((run.manifest.model_id or run.rel.split("/")[3], f"{url(model_key)}.html"))
    crumbs.append((run.sys_id, None))
    return page(title, crumbs, "\n".join(body), links.root, None)
