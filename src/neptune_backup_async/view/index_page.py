"""The site's first page: the last backup, the verdict of verify, every workspace and project."""

from __future__ import annotations

from typing import Any

from .escape import h, url
from .parts import facts, page, when

# What each kind of object folder is called, one and many (the manifest's ``kind``).
KINDS = {
    "run": ("run", "runs"),
    "model": ("model", "models"),
    "modelVersion": ("model version", "model versions"),
    "project": ("project's own fields", "projects' own fields"),
}


def counted(counts: dict[str, int]) -> str:
    """``{"run": 8, "model": 1}`` as "8 runs and 1 model", in the order of ``KINDS``."""
    parts = [f"{n} {KINDS[k][n != 1]}" for k in KINDS if (n := counts.get(k, 0))]
    if len(parts) < 2:
        return "".join(parts) or "nothing"
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def index_page(
    projects: list[dict[str, Any]],
    report: dict[str, Any] | None,
    problems: int,
    verified: dict[str, int],
    generated: str,
) -> str:
    """``verified``: how many object folders of each kind ``verify`` checked."""
    body = ["<h1>Neptune backup</h1>"]
    if report:
        about = [
            ("last backup finished", when(report.get("finished_at"))),
            ("started", when(report.get("started_at"))),
            ("exit code", report.get("exit_code")),
        ]
        if report.get("interrupted"):
            about.append(("interrupted", "yes: run the backup again to finish it"))
        body.append(facts(about))
    else:
        body.append("<p class='muted'>No backup report found.</p>")
    verdict = "intact" if not problems else f"{problems} problem(s); see the project and run pages"
    body.append(
        f"<p>{h(counted(verified))} verified: <span class='status-{'ok' if not problems else 'damaged'}'>{h(verdict)}</span>.</p>"
    )
    by_ws: dict[str, list[dict[str, Any]]] = {}
    for p in projects:
        by_ws.setdefault(p["workspace"], []).append(p)
    for ws in sorted(by_ws):
        rows = []
        for p in sorted(by_ws[ws], key=lambda p: p["name"]):
            link = (
                f'<a href="projects/{url(p["key"])}.html">{h(p["project"])}</a>'
                if p["key"]
                else h(p["project"])
            )
            rep = p.get("report") or {}
            rows.append(
                f"<tr><td>{link}</td><td class='num'>{p['runs']}</td><td class='num'>{p['models']}</td>"
                f"<td class='num'>{p['versions']}</td>"
                f"<td class='num'>{h(rep.get('runs_found', ''))}</td><td class='num'>{h(rep.get('runs_failed', ''))}</td>"
                f"<td class='status-{h(p['status'])}'>{h(p['status'])}</td></tr>"
            )
        body.append(
            f"<h2>Workspace {h(ws)}</h2><div class='table-wrap'><table><thead><tr><th scope='col'>project</th>"
            "<th scope='col'>runs</th><th scope='col'>models</th><th scope='col'>model versions</th>"
            "<th scope='col'>runs found (last backup)</th>"
            "<th scope='col'>runs failed (last backup)</th><th scope='col'>integrity</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    if not projects:
        body.append("<p class='muted'>No projects in this backup.</p>")
    return page("Neptune backup", [("Backup", None)], "\n".join(body), "", generated)
