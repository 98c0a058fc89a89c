"""A project's page: its runs table (filled in by the page's script), compare view and models."""

from __future__ import annotations

from typing import Any

from .data import natural_key
from .escape import h, json_text, url
from .parts import page, when

BASE_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("state", "state"),
    ("owner", "owner"),
    ("tags", "tags"),
    ("created", "created"),
    ("status", "integrity"),
]
MAX_PARAM_COLUMNS = 12
MAX_METRIC_COLUMNS = 12
NOSCRIPT_ROWS = 1_000  # runs listed for a browser without JavaScript


def choose_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str], list[str]]:
    """The parameter and metric columns shown (the most common ones), every parameter and every metric."""

    def common(key: str) -> list[str]:
        counts: dict[str, int] = {}
        for row in rows:
            for path in row[key]:
                counts[path] = counts.get(path, 0) + 1
        return sorted(counts, key=lambda p: (-counts[p], p))

    params, metrics = common("p"), common("m")
    return params[:MAX_PARAM_COLUMNS], metrics[:MAX_METRIC_COLUMNS], sorted(params), sorted(metrics)


def project_page(
    name: str,
    rows: list[dict[str, Any]],
    models: list[dict[str, Any]],
    own: dict[str, Any] | None,
    extra: str,
    generated: str,
) -> str:
    """``own``: the row of the project's own fields, if they were backed up."""
    runs = [r for r in rows if r["kind"] == "run"]
    params, metrics, all_params, all_metrics = choose_columns(runs)
    # id and name, then what runs are compared by (the last metric values, the parameters), then the rest
    base = [{"key": k, "label": label, "kind": "base"} for k, label in BASE_COLUMNS]
    columns = base[:2]
    columns += [{"key": m, "label": m, "title": f"{m} (last value)", "kind": "metric"} for m in metrics]
    columns += [
        {"key": p, "label": p.removeprefix("parameters/"), "title": p, "kind": "param"} for p in params
    ]
    columns += base[2:]
    table_rows = []
    for r in runs:
        row = {
            k: r[k] for k in ("id", "name", "state", "owner", "tags", "created", "status", "problems", "key")
        }
        if r["created"] is not None:  # to the second in UTC, as the rest of the site
            row["created"] = when(r["created"])
        row["href"] = f"../runs/{url(r['key'])}.html"
        row["data"] = f"../data/{url(r['key'])}.js"
        row["p"], row["m"] = r["p"], r["m"]  # all of them: the scatter plots any against any
        table_rows.append(row)
    spec = {"columns": columns, "rows": table_rows, "params": all_params, "metrics": all_metrics}
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    body = [
        f"<h1>{h(name)}</h1>",
        f"<p>{len(runs)} runs ({h(summary or 'none')}).</p>",
        f'<p><a href="../runs/{url(own["key"])}.html">The project\'s own fields</a>'
        f' <span class="status-{h(own["status"])}">{h(own["status"])}</span></p>'
        if own
        else "",
        extra,
        '<div id="runs-app"><h2>Runs</h2>',
        '<div class="toolbar"><label for="filter">Filter</label>'
        '<input id="filter" type="search" placeholder="id, name, tag, owner, state…" autocomplete="off">'
        '<details id="columns"><summary>Columns</summary><ol></ol></details>'
        '<span id="count" class="muted" aria-live="polite"></span></div>',
        '<div class="table-wrap"><table id="runs"><thead><tr></tr></thead><tbody></tbody></table></div>',
        '<div class="pager"><button id="prev" type="button">Previous</button><span id="page"></span>'
        '<button id="next" type="button">Next</button></div>',
        '<section id="compare"><h2>Compare</h2><div class="toolbar"><label for="metric">Metric</label>'
        '<select id="metric"></select><button id="compare-btn" type="button">Compare selected runs</button></div>'
        '<div id="compare-chart"></div></section>',
        '<section id="scatter"><h2>Parameter against metric</h2><div class="toolbar">'
        '<label for="scatter-x">Parameter</label><select id="scatter-x"></select>'
        '<label for="scatter-y">Metric (last value)</label><select id="scatter-y"></select></div>'
        '<p class="muted">One point per run of the table (its filter applies).</p>'
        '<div id="scatter-chart"></div></section>'
        if all_params and all_metrics
        else "",
        "</div>",
        "<noscript><p>The runs table needs JavaScript; every run page works without it.</p><ul>"
        + "".join(
            f'<li><a href="{h(r["href"])}">{h(r["id"])}</a> {h(r["name"] or "")}</li>'
            for r in table_rows[:NOSCRIPT_ROWS]
        )
        + "</ul></noscript>",
        f'<script type="application/json" id="nbv-table">{json_text(spec)}</script>',
    ]
    if models:
        model_rows = "".join(
            f'<tr><td><a href="../runs/{url(m["key"])}.html">{h(m["id"])}</a></td><td>{h(m["kind"])}</td>'
            f'<td>{h(m["name"] or "")}</td><td>{h(when(m["created"]))}</td><td class="status-{h(m["status"])}">{h(m["status"])}</td></tr>'
            for m in sorted(models, key=lambda m: (m["kind"], natural_key(m["id"])))
        )
        body.append(
            "<h2>Models and model versions</h2><div class='table-wrap'><table><thead><tr><th scope='col'>id</th>"
            "<th scope='col'>kind</th><th scope='col'>name</th><th scope='col'>created</th><th scope='col'>integrity</th>"
            f"</tr></thead><tbody>{model_rows}</tbody></table></div>"
        )
    crumbs = [("Backup", "../index.html"), (name, None)]
    return page(name, crumbs, "\n".join(body), "../", generated)
