"""The offline HTML viewer: escaping, LTTB, the runs-table data, determinism, incremental rebuilds."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_source import MemorySource
from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, generate
from neptune_backup_async.view import add_arguments, build_site, lttb, run
from neptune_backup_async.view.charts import MAX_POINTS, chart, drawn_points, epoch_seconds
from neptune_backup_async.view.data import FloatSeries, natural_key
from neptune_backup_async.view.escape import json_text
from neptune_backup_async.view.site import page_key

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_TAG = "say \"hi\" & 'bye' <!--"
HOSTILE_PARAM = "parameters/<img src=x onerror=alert(3)>"
HOSTILE_LOG = "done </script><script>alert(2)</script>"
GENERATED = re.compile(r'<time class="generated" datetime="[^"]*">[^<]*</time>')


@pytest.fixture(scope="module")
def demo_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo workspace backed up once for the module; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("view-demo")
    world = generate(WORKLOADS["demo"], artifact_root=root / "artifact-sources")
    dest = root / "backup"
    anyio.run(lambda: backup("all", dest, source=MemorySource(world), download_artifacts=True))
    yield dest


@pytest.fixture
def dest(demo_backup: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "backup"
    shutil.copytree(demo_backup, copy)
    return copy


def _run_folder(dest: Path, run_id: str) -> Path:
    return next(dest.glob(f"*/*/{run_id}"))


def rewrite(folder: Path, rel: str, content: bytes) -> None:
    """Change a file of a run and its manifest entry alike, so that the run stays intact."""
    (folder / rel).write_bytes(content)
    manifest_path = folder / ".manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"][rel] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True), encoding="utf-8")


def make_hostile(dest: Path, run_id: str = "P0-1") -> Path:
    folder = _run_folder(dest, run_id)
    meta = json.loads((folder / "simple_metadata.json").read_text(encoding="utf-8"))
    meta["sys/name"] = HOSTILE_NAME
    meta["sys/tags"] = sorted([*meta["sys/tags"], HOSTILE_TAG])
    meta[HOSTILE_PARAM] = HOSTILE_NAME
    rewrite(folder, "simple_metadata.json", json.dumps(meta, indent=4, sort_keys=True).encode())
    manifest = json.loads((folder / ".manifest.json").read_text(encoding="utf-8"))
    manifest["fields"][HOSTILE_PARAM] = {"type": "string", "status": "ok", "files": ["simple_metadata.json"]}
    (folder / ".manifest.json").write_text(json.dumps(manifest, indent=4, sort_keys=True), encoding="utf-8")
    log = folder / "logs" / "train.csv"
    text = log.read_text(encoding="utf-8")
    rewrite(folder, "logs/train.csv", (text + f'20,"{HOSTILE_LOG}",2024-01-01T00:00:00.000+00:00\n').encode())
    return folder


def _script_json(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="nbv-table">(.*?)</script>', html, re.S)
    assert match
    doc = json.loads(match.group(1))
    assert isinstance(doc, dict)
    return doc


def _project_page(site: Path, project: str = "project-0") -> str:
    return next((site / "projects").glob(f"*{project}.html")).read_text(encoding="utf-8")


def _run_page(site: Path, run_id: str) -> Path:
    return next((site / "runs").glob(f"*~{run_id}.html"))


# -- escaping ---------------------------------------------------------------------------------


def test_hostile_strings_are_escaped(dest: Path, tmp_path: Path) -> None:
    make_hostile(dest)
    site = tmp_path / "site"
    build_site(dest, site)
    page = _run_page(site, "P0-1").read_text(encoding="utf-8")
    assert HOSTILE_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "alert(2)" in page and "&lt;/script&gt;&lt;script&gt;alert(2)" in page
    assert "say &quot;hi&quot; &amp; &#x27;bye&#x27; &lt;!--" in page
    assert re.findall("<script[^>]*>", page) == [  # only the site's own scripts
        '<script src="../assets/uPlot.iife.min.js">',
        '<script src="../assets/view.js">',
    ]
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(3)&gt;" in page
    project = _project_page(site)
    # the table data is JSON inside <script>: no "</script>" or "<!--" can end or confuse it
    assert project.count("</script>") == 3 and "<!--" not in project  # uPlot, view.js and the data
    doc = _script_json(project)
    rows = {r["id"]: r for r in doc["rows"]}  # type: ignore[attr-defined]
    assert rows["P0-1"]["name"] == HOSTILE_NAME
    assert HOSTILE_TAG in rows["P0-1"]["tags"]
    assert HOSTILE_NAME not in project
    assert "<img src=x" not in project
    assert rows["P0-1"]["p"][HOSTILE_PARAM] == HOSTILE_NAME


def test_json_text_is_safe_in_script() -> None:
    text = json_text({"a": "</script><!-- & \u2028", "n": [math.nan, math.inf, -math.inf, 1.5]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028", "n": ["NaN", "Infinity", "-Infinity", 1.5]}


def test_chart_has_text_alternative_and_survives_non_finite_values() -> None:
    times = ["2024-01-01T00:00:00.000+00:00", "2024-01-01T00:00:01.500+00:00", "bad", "2024-01-01T01:00:00Z"]
    box = chart("metrics/<b>", FloatSeries([0, 1, 2, 3], [1.0, math.nan, math.inf, 0.5], times), "c1")
    assert box.startswith('<div class="plot" role="img" aria-labelledby="c1-t c1-d"')
    assert '<span class="sr" id="c1-t">metrics/&lt;b&gt;</span>' in box
    assert "step from 0 to 3, value from 0.5 to 1; 4 points, 2 not finite; last value 0.5 at step 3." in box
    data = json.loads(unescape(re.search(r'data-points="([^"]*)"', box).group(1)))  # type: ignore[union-attr]
    assert data == [[0, 3], [1.0, 0.5], [0, 3600], 1704067200]  # steps, values, seconds after t0, t0 (UTC)
    empty = chart("nothing", FloatSeries([0], [math.nan], [""]), "c2")
    assert "no finite values to draw (1 points)" in empty


def test_chart_data_is_downsampled_keeping_the_extremes_and_times() -> None:
    n = 10 * MAX_POINTS
    values = [math.sin(i / 300) for i in range(n)]
    values[12_345] = 7.0
    times = [f"2024-01-01T00:00:{i % 60:02d}.000+00:00" for i in range(n)]
    drawn = drawn_points(FloatSeries([float(i) for i in range(n)], values, times), MAX_POINTS)
    steps, ys, ts, t0 = json.loads(drawn.data)
    assert drawn.finite == n and drawn.x_range == (0, n - 1) and drawn.y_range == (min(values), 7.0)
    assert len(steps) == len(ys) == len(ts) == MAX_POINTS
    assert steps[0] == 0 and steps[-1] == n - 1 and 7.0 in ys and steps[ys.index(7.0)] == 12_345
    assert t0 + ts[ys.index(7.0)] == epoch_seconds(times[12_345])
    assert epoch_seconds("2024-01-01T00:00:00") == 1704067200.0 and epoch_seconds("nonsense") is None


def test_natural_key_sorts_numbers_by_value() -> None:
    ids = ["P0-10", "P0-2", "P0-1", "P1-1", "P0-11", "P0-MOD", "P0-2b"]
    assert sorted(ids, key=natural_key) == ["P0-1", "P0-2", "P0-2b", "P0-10", "P0-11", "P0-MOD", "P1-1"]


def test_page_keys_are_injective() -> None:
    assert page_key("a~b", "c") != page_key("a", "b~c")
    long = page_key("w" * 200, "p" * 200, "R-1")
    assert len(long.encode()) < 200 and long != page_key("w" * 200, "p" * 200, "R-2")


# -- LTTB -------------------------------------------------------------------------------------


def _check_lttb(ys: list[float], threshold: int) -> None:
    xs = [float(i) for i in range(len(ys))]
    picked = lttb(xs, ys, threshold)
    if len(ys) <= threshold:
        assert picked == list(range(len(ys)))
        return
    assert len(picked) == threshold
    assert picked == sorted(set(picked))
    assert picked[0] == 0 and picked[-1] == len(ys) - 1
    assert ys.index(min(ys)) in picked and ys.index(max(ys)) in picked


def test_lttb_keeps_first_last_and_extremes() -> None:
    rnd = random.Random(7)
    ys = [math.sin(i / 50) + rnd.gauss(0, 0.1) for i in range(10_000)]
    ys[4321], ys[4322] = 50.0, -50.0  # both extremes in one bucket
    _check_lttb(ys, 2_000)
    _check_lttb(ys[:1500], 2_000)
    _check_lttb([1.0] * 100, 10)
    with pytest.raises(ValueError):
        lttb([0.0, 1.0, 2.0, 3.0, 4.0], [0.0] * 5, 3)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300),
    st.integers(min_value=4, max_value=120),
)
def test_lttb_property(ys: list[float], threshold: int) -> None:
    _check_lttb(ys, threshold)


# -- the runs table ---------------------------------------------------------------------------


def test_runs_table_data(dest: Path, tmp_path: Path) -> None:
    index = build_site(dest, tmp_path / "site")
    site = index.parent
    html = index.read_text(encoding="utf-8")
    assert "workspace-0" in html and "project-0" in html and "project-1" in html
    doc = _script_json(_project_page(site))
    rows = {r["id"]: r for r in doc["rows"]}  # type: ignore[attr-defined]
    assert sorted(rows) == ["P0-1", "P0-2", "P0-3", "P0-4"]
    for run_id, row in rows.items():
        folder = _run_folder(dest, run_id)
        meta = json.loads((folder / "simple_metadata.json").read_text(encoding="utf-8"))
        assert row["name"] == meta["sys/name"] and row["owner"] == meta["sys/owner"]
        assert row["tags"] == meta["sys/tags"] and row["status"] == "ok"
        assert row["p"]["parameters/optimizer/p0"] == meta["parameters/optimizer/p0"]
        last = (folder / "metrics/train/loss.csv").read_text(encoding="utf-8").strip().split("\n")[-1]
        assert row["m"]["metrics/train/loss"] == float(last.split(",")[1])
        assert (site / "runs" / f"{row['key']}.html").is_file()
    assert "metrics/train/loss" in doc["metrics"]  # type: ignore[operator]
    # every parameter, for the scatter of any parameter against any metric
    metas = [json.loads((_run_folder(dest, i) / "simple_metadata.json").read_text()) for i in rows]
    params = sorted({k for meta in metas for k in meta if k.startswith("parameters/")})
    assert doc["params"] == params and len(params) > 1
    assert all(rows[m["sys/id"]]["p"] == {k: v for k, v in m.items() if k in params} for m in metas)


def _utc(text: str) -> str:
    moment = dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cells(html: str, first: str) -> list[str]:
    """The cells of the table row whose first cell holds ``first``, as text."""
    row = re.search(rf"<tr><td>(?:<a [^>]*>)?{re.escape(first)}(?:</a>)?</td>.*?</tr>", html)
    assert row, first
    return [re.sub("<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))]


def test_index_says_when_and_what_in_words(dest: Path, tmp_path: Path) -> None:
    """Times to the second in UTC, "interrupted" only when the backup was, models apart from
    their versions, and what was verified counted by kind."""
    report_path = dest / "backup-report.json"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    html = build_site(dest, tmp_path / "site").read_text(encoding="utf-8")
    assert f"<dt>last backup finished</dt><dd>{_utc(report['finished_at'])}</dd>" in html
    assert f"<dt>started</dt><dd>{_utc(report['started_at'])}</dd>" in html
    assert report["finished_at"] not in html and "interrupted" not in html
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html).group(1)  # type: ignore[union-attr]
    assert re.sub("<[^>]+>", "|", header).replace("||", "|").strip("|").split("|")[:4] == [
        "project", "runs", "models", "model versions"
    ]  # fmt: skip
    assert _cells(html, "project-0")[:4] == ["project-0", "4", "1", "2"]
    assert "8 runs, 2 models, 4 model versions and 2 projects&#x27; own fields verified:" in html

    report["interrupted"] = True
    report_path.write_text(json.dumps(report), encoding="utf-8")
    html = build_site(dest, tmp_path / "site").read_text(encoding="utf-8")
    assert "<dt>interrupted</dt><dd>yes: run the backup again to finish it</dd>" in html


def test_times_are_shown_to_the_second_in_utc(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    meta = json.loads((_run_folder(dest, "P0-1") / "simple_metadata.json").read_text(encoding="utf-8"))
    page = _run_page(site, "P0-1").read_text(encoding="utf-8")
    assert f"<dt>created</dt><dd>{_utc(meta['sys/creation_time'])}</dd>" in page
    assert f"<dt>modified</dt><dd>{_utc(meta['sys/modification_time'])}</dd>" in page
    project = _project_page(site)
    rows = {r["id"]: r for r in _script_json(project)["rows"]}  # type: ignore[attr-defined]
    assert rows["P0-1"]["created"] == _utc(meta["sys/creation_time"])
    model = json.loads(
        (_run_folder(dest, "_models/P0-MOD") / "simple_metadata.json").read_text(encoding="utf-8")
    )
    assert _cells(project, "P0-MOD")[3] == _utc(model["sys/creation_time"])


def test_pages_leave_out_facts_without_a_value(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent

    def head_facts(run_id: str) -> str:
        page = _run_page(site, run_id).read_text(encoding="utf-8")
        return re.search(r'<dl class="facts">(.*?)</dl>', page).group(1)  # type: ignore[union-attr]

    model, own = head_facts("P0-MOD"), head_facts("_project")
    assert "<dd></dd>" not in model and "<dd></dd>" not in own
    assert "<dt>state</dt>" not in model and "<dt>owner</dt><dd>" in model  # a model has an owner
    assert "<dt>owner</dt>" not in own and "<dt>kind</dt><dd>project</dd>" in own
    run_facts = head_facts("P0-1")
    assert "<dt>state</dt><dd>" in run_facts and "<dt>tags</dt><dd>" in run_facts


def test_log_steps_are_padded_to_one_width(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    page = _run_page(site, "P0-1").read_text(encoding="utf-8")
    log = re.search(r'<pre class="log"[^>]*aria-label="logs/train">(.*?)</pre>', page, re.S).group(1)  # type: ignore[union-attr]
    steps = re.findall(r'<span class="step">([^<]*)</span>', log)
    assert steps[0] == " 0" and steps[9] == " 9" and steps[10] == "10" and len(steps) == 20
    assert {len(s) for s in steps} == {2}
    # each line an element of its own, newline included, for the page's search to hide
    assert log.startswith('<span class="line"><span class="step"> 0</span> train line 0: ')
    assert log.count('<span class="line">') == 20 and log.endswith("\n</span>")


def test_run_page_shows_every_kind_of_field(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    page = _run_page(site, "P0-1").read_text(encoding="utf-8")
    for text in ("metrics/train/loss", '<div class="plot" role="img"', 'class="sr"', 'class="desc"', "logs/train", "images/predictions",
                 "index.json", "datasets/train", "data/sample.bin", "source_code/files.zip", "Monitoring",
                 "Alice Example", "ok: complete and intact"):  # fmt: skip
        assert text in page, text
    # links point at the backup's own files, which exist
    for href in re.findall(r'href="(\.\./[^"]+)"', page):
        target = (site / "runs" / href).resolve()
        assert target.exists(), href


def test_integrity_from_verify(dest: Path, tmp_path: Path) -> None:
    folder = _run_folder(dest, "P0-2")
    (folder / "data" / "sample.bin").write_bytes(b"damaged")
    site = build_site(dest, tmp_path / "site").parent
    page = _run_page(site, "P0-2").read_text(encoding="utf-8")
    assert "damaged" in page and "corrupt: " in page and "data/sample.bin" in page
    rows = {r["id"]: r for r in _script_json(_project_page(site))["rows"]}  # type: ignore[attr-defined]
    assert rows["P0-2"]["status"] == "damaged" and rows["P0-1"]["status"] == "ok"


def test_site_inside_backup_keeps_verify_clean(dest: Path) -> None:
    from neptune_backup_async.format.verify import verify

    index = build_site(dest)
    assert index == dest / "_site" / "index.html"
    assert verify(dest).problems == []


# -- determinism and incremental rebuilds ----------------------------------------------------


def _files(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_same_backup_same_site(dest: Path, tmp_path: Path) -> None:
    a = _files(build_site(dest, tmp_path / "a").parent)
    b = _files(build_site(dest, tmp_path / "b").parent)
    assert a.keys() == b.keys()
    for name in a:
        strip = GENERATED.sub("", a[name].decode()), GENERATED.sub("", b[name].decode())
        assert strip[0] == strip[1], name


def test_incremental_rebuild_touches_only_changed_runs(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    pages = sorted((site / "runs").glob("*.html"))
    assert len(pages) == 16  # 8 runs, 2 models, 4 versions and 2 projects' own fields
    for page in pages:
        os.utime(page, (1, 1))
    build_site(dest, site)
    assert [p.name for p in pages if p.stat().st_mtime != 1] == []
    manifest = _run_folder(dest, "P1-3") / ".manifest.json"
    st_ = manifest.stat()
    os.utime(manifest, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    build_site(dest, site)
    assert [p.name for p in pages if p.stat().st_mtime != 1] == ["workspace-0~project-1~P1-3.html"]


def test_cli_run(dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(dest), "--output", str(tmp_path / "out")])
    assert run(args) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "out" / "index.html").resolve())


def test_not_a_backup(tmp_path: Path) -> None:
    from neptune_backup_async import NotABackupError

    with pytest.raises(NotABackupError):
        build_site(tmp_path)


def test_serve(dest: Path) -> None:
    import urllib.request

    from neptune_backup_async.view import serve

    index = build_site(dest)
    server, address = serve(index, dest)
    try:
        assert address.startswith("http://127.0.0.1:") and address.endswith("/_site/index.html")
        with urllib.request.urlopen(address, timeout=10) as response:
            assert b"Neptune backup" in response.read()
    finally:
        server.shutdown()
        server.server_close()


def test_unreadable_manifest_and_missing_manifest(dest: Path, tmp_path: Path) -> None:
    (_run_folder(dest, "P0-2") / ".manifest.json").write_text("{not json", encoding="utf-8")
    (_run_folder(dest, "P0-3") / ".manifest.json").unlink()
    site = build_site(dest, tmp_path / "site").parent
    project = _project_page(site)
    assert "workspace-0/project-0/P0-2" in project and "workspace-0/project-0/P0-3" in project
    rows = {r["id"] for r in _script_json(project)["rows"]}  # type: ignore[attr-defined]
    assert rows == {"P0-1", "P0-4"}
    assert "damaged" in (site / "index.html").read_text(encoding="utf-8")


def test_models_are_listed_apart(dest: Path, tmp_path: Path) -> None:
    manifest_path = _run_folder(dest, "P0-4") / ".manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["kind"] = "model"
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True), encoding="utf-8")
    site = build_site(dest, tmp_path / "site").parent
    project = _project_page(site)
    assert "Models and model versions" in project and "workspace-0~project-0~P0-4.html" in project
    rows = {r["id"] for r in _script_json(project)["rows"]}  # type: ignore[attr-defined]
    assert rows == {"P0-1", "P0-2", "P0-3"}
    other = _project_page(site, "project-1")
    assert (
        "workspace-0~project-1~_models~P1-MOD.html" in other
        and "P1-4.html" not in other.split("Models and")[1]
    )


def test_model_version_breadcrumb_leads_to_its_model(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    page = _run_page(site, "P0-MOD-1").read_text(encoding="utf-8")
    trail = re.search(r'<nav aria-label="breadcrumbs">(.*?)</nav>', page).group(1)  # type: ignore[union-attr]
    assert trail == (
        '<a href="../index.html">Backup</a> / <a href="../projects/workspace-0~project-0.html">'
        'workspace-0/project-0</a> / <a href="workspace-0~project-0~_models~P0-MOD.html">P0-MOD</a> / P0-MOD-1'
    )
    assert (site / "runs" / "workspace-0~project-0~_models~P0-MOD.html").is_file()


def test_runs_are_in_natural_id_order(dest: Path, tmp_path: Path) -> None:
    """P0-2 before P0-10 in the embedded rows (the table's order) and the list without JavaScript."""
    folder = _run_folder(dest, "P0-4")
    manifest = json.loads((folder / ".manifest.json").read_text(encoding="utf-8"))
    manifest["sys_id"] = "P0-10"
    (folder / ".manifest.json").write_text(json.dumps(manifest, indent=4, sort_keys=True), encoding="utf-8")
    folder.rename(folder.with_name("P0-10"))
    project = _project_page(build_site(dest, tmp_path / "site").parent)
    ids = [r["id"] for r in _script_json(project)["rows"]]  # type: ignore[attr-defined]
    assert ids == ["P0-1", "P0-2", "P0-3", "P0-10"]
    noscript = project.split("<noscript>")[1]
    assert [noscript.index(f">{i}</a>") for i in ids] == sorted(noscript.index(f">{i}</a>") for i in ids)


def test_rebuild_follows_damage(dest: Path, tmp_path: Path) -> None:
    site = build_site(dest, tmp_path / "site").parent
    page = _run_page(site, "P0-2")
    assert "ok: complete and intact" in page.read_text(encoding="utf-8")
    (_run_folder(dest, "P0-2") / "data" / "sample.bin").write_bytes(b"damaged")  # the manifest is unchanged
    build_site(dest, site)
    assert "damaged: files are missing" in page.read_text(encoding="utf-8")
