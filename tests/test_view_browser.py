"""The viewer end to end in a real headless browser (Chromium or Chrome, driven by playwright).

Backs up a fake workspace whose run ids need natural sorting (P0-1 … P0-11), builds the
site, opens it from the file system (no server), uses the runs table (order, filter,
columns, the id column kept in view), compares two runs, and on a run page zooms,
switches to a log scale, smooths and plots by time. Saves screenshots (to docs/images/ for
the README too, with UPDATE_DOCS_IMAGES=1).

Without a browser (or playwright) the test is skipped with the reason and how to install
one, except where NEPTUNE_BACKUP_REQUIRE_OPTIONAL=1 (set by CI): there it fails.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from memory_source import MemorySource
from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, generate
from neptune_backup_async.view import build_site
from neptune_backup_async.view.browser import HOW_TO_INSTALL, find_browser
from neptune_backup_async.view.charts import epoch_seconds
from optional import REQUIRE, unavailable
from test_view import HOSTILE_NAME, make_hostile

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
RUNS = 11  # P0-1 … P0-11: text order would put P0-10 and P0-11 before P0-2


@pytest.fixture
def chromium() -> Path:
    """The browser to drive; skips (fails where REQUIRE is set) when it or playwright is missing."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed: pip install -e '.[test]'"
    browser = find_browser()
    if browser is None:
        problem = f"no Chromium-family browser found on PATH, in the usual places or Playwright's folder: {HOW_TO_INSTALL}"
    if problem is None:
        assert browser is not None
        return browser
    unavailable(problem)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(backup, index.html) of one project of RUNS runs with every field type, a hostile P0-3."""
    spec = dataclasses.replace(WORKLOADS["demo"], projects_per_workspace=1, runs_per_project=RUNS)
    world = generate(spec, artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "backup"
    anyio.run(lambda: backup("all", dest, source=MemorySource(world), download_artifacts=True))
    make_hostile(dest, "P0-3")  # a run named <script>alert(1)</script>
    yield dest, build_site(dest)


@pytest.mark.slow
def test_site_in_a_browser(chromium: Path, site: tuple[Path, Path], tmp_path: Path) -> None:
    from playwright.sync_api import Dialog, expect, sync_playwright

    dest, index = site
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def on_dialog(dialog: Dialog) -> None:  # an alert() would be a script from the backup
                errors.append(f"dialog: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("request", lambda r: requests.append(r.url))

            page.goto(index.as_uri())
            assert page.locator("h2", has_text="workspace-0").count() == 1
            page.screenshot(path=str(shots / "index.png"), full_page=True)
            page.get_by_role("link", name="project-0", exact=True).click()
            _runs_table(page, expect, dest)
            page.screenshot(path=str(shots / "project.png"), full_page=True)
            _compare(page, expect)
            page.locator("#compare").screenshot(path=str(shots / "compare.png"))
            _scatter(page, expect, dest)
            page.locator("#scatter").screenshot(path=str(shots / "scatter.png"))
            _run_page(page, expect, dest, shots)
            _model_version(page, index)

            # the hostile run's page renders its name as text, and no script of its runs
            page.goto((index.parent / "runs" / "workspace-0~project-0~P0-3.html").as_uri())
            assert HOSTILE_NAME in page.locator("h1").inner_text()
        finally:
            browser.close()

    assert errors == []
    assert all(url.startswith("file://") for url in requests), [
        u for u in requests if not u.startswith("file://")
    ]
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":  # refresh the README's screenshots on request only
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots / "run.png", DOCS_IMAGES / "run.png")
        shutil.copyfile(shots / "compare.png", DOCS_IMAGES / "compare.png")


def _runs_table(page: Any, expect: Any, dest: Path) -> None:
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(RUNS)  # waits for the page's script to render the table
    id_header = page.locator("#runs th.id-col")
    natural = [f"P0-{i}" for i in range(1, RUNS + 1)]

    def ids() -> list[str]:
        texts: list[str] = rows.locator("td.id-col").all_inner_texts()
        return [t.strip() for t in texts]

    def headers() -> list[str]:
        texts: list[str] = page.locator("#runs thead th").all_inner_texts()
        return [t.replace("\u25b2", "").replace("\u25bc", "").strip() for t in texts]

    # natural order of the ids by default, both ways when the header is clicked
    assert ids() == natural
    assert id_header.get_attribute("aria-sort") == "ascending"
    id_header.click()
    assert ids() == natural[::-1]
    assert id_header.get_attribute("aria-sort") == "descending"
    id_header.click()
    # the hostile name is text, not markup
    assert page.locator("#runs tr[data-id='P0-3'] td[data-col='base:name']").inner_text() == HOSTILE_NAME

    # the last metric values come right after id and name
    assert headers()[:4] == ["id", "name", "metrics/train/acc", "metrics/train/loss"]

    # filtering keeps the runs with the tag, and only those
    page.fill("#filter", "nightly")
    filtered = ids()
    assert 0 < len(filtered) < RUNS
    meta = {
        run_id: json.loads((next(dest.glob(f"*/*/{run_id}")) / "simple_metadata.json").read_text())
        for run_id in filtered
    }
    assert all("nightly" in m["sys/tags"] for m in meta.values())
    page.fill("#filter", "")
    expect(rows).to_have_count(RUNS)

    # the id column stays in view when the table scrolls sideways
    page.set_viewport_size({"width": 700, "height": 900})
    wrap = page.locator("#runs-app .table-wrap")
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth + 300")
    wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; }")
    wrap_box, id_box = wrap.bounding_box(), page.locator("#runs td.id-col").first.bounding_box()
    name_box = page.locator("#runs td[data-col='base:name']").first.bounding_box()
    assert abs(id_box["x"] - wrap_box["x"]) < 2
    assert name_box["x"] + name_box["width"] < wrap_box["x"]  # scrolled out, under the id column
    page.set_viewport_size({"width": 1280, "height": 900})

    # choose columns: hide the name, move the state column to the front; kept after a reload
    page.locator("#columns summary").click()
    page.locator("#columns li[data-col='base:name'] input").uncheck()
    for _ in range(len(headers())):
        left = page.locator("#columns li[data-col='base:state'] button").first
        if left.is_disabled():
            break
        left.click()
    assert headers()[:2] == ["id", "state"] and "name" not in headers()
    page.reload()
    expect(rows).to_have_count(RUNS)
    assert headers()[:2] == ["id", "state"] and "name" not in headers()
    page.evaluate("localStorage.clear()")
    page.reload()
    expect(rows).to_have_count(RUNS)
    assert headers()[:2] == ["id", "name"]


def _compare(page: Any, expect: Any) -> None:
    for run_id in ("P0-10", "P0-3", "P0-1"):
        page.locator(f"#runs tr[data-id='{run_id}'] input[type=checkbox]").check()
    page.select_option("#metric", "metrics/train/loss")
    page.click("#compare-btn")
    page.wait_for_selector("#compare-chart canvas")
    labels = [t.strip() for t in page.locator("#compare-chart .u-legend .u-series th").all_inner_texts()]
    assert [label.split(" ")[0] for label in labels] == ["step", "P0-1", "P0-3", "P0-10"]  # natural order
    assert labels[2] == f"P0-3 ({HOSTILE_NAME})"  # the hostile name as text in the legend
    assert "metrics/train/loss for 3 runs" in page.locator("#compare-desc").inner_text()
    lengths = page.locator("#compare-chart .plot").evaluate(
        "b => b.nbvChart.plot.data.slice(1).map(s => s.filter(v => v !== null).length)"
    )
    assert lengths == [100, 100, 100]
    # compare again with other runs: the chart is replaced, not added to
    page.locator("#runs tr[data-id='P0-3'] input[type=checkbox]").uncheck()
    page.locator("#runs tr[data-id='P0-2'] input[type=checkbox]").check()
    page.click("#compare-btn")
    expect(page.locator("#compare-chart .u-legend .u-series th").nth(2)).to_have_text("P0-2 (run-2)")
    assert page.locator("#compare-chart canvas").count() == 1


def _scatter(page: Any, expect: Any, dest: Path) -> None:
    """A parameter against a metric's last value: a point per run of the table, from the backup."""
    page.select_option("#scatter-x", "parameters/optimizer/p0")
    page.select_option("#scatter-y", "metrics/train/loss")
    chart = page.locator("#scatter-chart .plot")
    expect(chart.locator("canvas")).to_have_count(1)
    want: dict[str, tuple[float, float]] = {}
    for folder in dest.glob("*/*/P0-*"):
        meta = json.loads((folder / "simple_metadata.json").read_text())
        last = (folder / "metrics" / "train" / "loss.csv").read_text().strip().split("\n")[-1]
        want[folder.name] = (meta["parameters/optimizer/p0"], float(last.split(",")[1]))
    assert len(want) == RUNS
    xs, ys = chart.evaluate("b => b.nbvChart.plot.data")
    assert sorted(zip(xs, ys, strict=True)) == sorted(want.values())
    assert (
        page.locator("#scatter-desc")
        .inner_text()
        .startswith(
            f"Scatter of metrics/train/loss (last value) against parameters/optimizer/p0 for {RUNS} runs: "
        )
    )

    # hovering a point names its run
    chart.scroll_into_view_if_needed()
    x, y = chart.evaluate(
        "b => { const u = b.nbvChart.plot; return [u.valToPos(u.data[0][0], 'x'), u.valToPos(u.data[1][0], 'y')]; }"
    )
    box = chart.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    run_id = next(k for k, v in want.items() if v == (xs[0], ys[0]))
    assert chart.locator(".u-legend .u-value").nth(1).inner_text().endswith(f"({run_id})")

    # the table's filter applies
    page.fill("#filter", "nightly")
    shown = page.locator("#runs tbody tr").count()
    assert 0 < shown < RUNS
    assert len(chart.evaluate("b => b.nbvChart.plot.data[0]")) == shown
    page.fill("#filter", "")
    expect(page.locator("#runs tbody tr")).to_have_count(RUNS)

    # a parameter of strings: one column of points per value, the values along x
    page.select_option("#scatter-x", "parameters/optimizer/p3")
    names = sorted(
        {
            str(
                json.loads((dest.glob(f"*/*/{r}").__next__() / "simple_metadata.json").read_text())[
                    "parameters/optimizer/p3"
                ]
            )
            for r in want
        }
    )
    assert chart.evaluate("b => b.nbvChart.plot.axes[0]._values") == names
    assert len(chart.evaluate("b => b.nbvChart.plot.data[0]")) == RUNS


def _run_page(page: Any, expect: Any, dest: Path, shots: Path) -> None:
    page.locator("#runs a", has_text="P0-1").first.click()
    assert page.locator("h1").inner_text().startswith("P0-1")
    plots = page.locator(".plot[role=img]")
    assert plots.count() >= 2
    for i in range(plots.count()):  # every chart is drawn once it is scrolled to
        plots.nth(i).scroll_into_view_if_needed()
        expect(plots.nth(i).locator("canvas")).to_have_count(1)
        assert plots.nth(i).locator(".sr").count() == 1 and plots.nth(i).locator(".desc").count() == 1
    images = page.locator(".gallery img")
    assert images.count() == 3
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=images.nth(i).element_handle())
        assert images.nth(i).evaluate("img => img.naturalWidth") > 0
    assert page.locator("#integrity").inner_text().startswith("ok")
    _log_search(page, expect, dest)

    loss = page.locator(".plot", has=page.locator(".sr", has_text="metrics/train/loss")).first
    loss.scroll_into_view_if_needed()
    desc = loss.locator(".desc")

    def x_range() -> list[float]:
        got: list[float] = loss.evaluate("b => [b.nbvChart.plot.scales.x.min, b.nbvChart.plot.scales.x.max]")
        return got

    def pixels() -> str:
        got: str = loss.locator("canvas").evaluate("c => c.toDataURL()")
        return got

    # hovering shows the step and value under the cursor
    over = loss.locator(".u-over")
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    step_text, value_text = loss.locator(".u-legend .u-value").all_inner_texts()
    assert 40 <= float(step_text) <= 60 and float(value_text) > 0

    # zoom: drag across the middle of the chart
    assert x_range() == [0, 99]
    before = pixels()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    low, high = x_range()
    assert 15 < low < 35 and 50 < high < 70
    assert f"Zoomed in on step {_fmt(low)} to {_fmt(high)}." in desc.inner_text()
    zoomed = pixels()
    assert zoomed != before
    page.screenshot(path=str(shots / "run-zoomed.png"))

    # log scale: another y axis, the same zoom
    page.locator("#log-scale").check()
    assert loss.evaluate("b => b.nbvChart.plot.scales.y.distr") == 3
    assert x_range() == [low, high]
    assert "Log scale." in desc.inner_text()
    assert pixels() not in (before, zoomed)
    # the y axis fits the line shown, with a little room, and has ticks to read it by
    lo, hi, y_min, y_max, labels = loss.evaluate(
        """b => { const u = b.nbvChart.plot, xs = u.data[0], s = u.scales;
            const ys = u.data[1].filter((y, i) => xs[i] >= s.x.min && xs[i] <= s.x.max);
            return [Math.min(...ys), Math.max(...ys), s.y.min, s.y.max, u.axes[1]._values.filter(v => v).length]; }"""
    )
    assert y_min < lo < hi < y_max
    assert math.log(y_max / y_min) < 1.2 * math.log(hi / lo)  # uPlot made it 0.4 to 1 for 0.43 to 0.51
    assert labels >= 3
    page.locator("#log-scale").uncheck()
    assert "Log scale" not in desc.inner_text()
    page.locator(".plot .u-over").first.dblclick()  # zoom out (the first chart is not the loss)
    loss.locator(".u-over").dblclick()
    assert x_range() == [0, 99] and "Zoomed" not in desc.inner_text()

    # smoothing adds a smoothed line beside the raw one
    page.locator("#smoothing").fill("0.9")
    series = loss.evaluate("b => b.nbvChart.plot.data.length")
    assert series == 3 and "Smoothed (weight 0.9)." in desc.inner_text()
    raw, smooth = loss.evaluate("b => [b.nbvChart.plot.data[1], b.nbvChart.plot.data[2]]")
    assert max(smooth) - min(smooth) < max(raw) - min(raw)
    page.locator("#smoothing").fill("0")

    # x by time: the axis runs over the times of the CSV
    csv = (next(dest.glob("*/*/P0-1")) / "metrics" / "train" / "loss.csv").read_text().splitlines()
    first, last = epoch_seconds(csv[1].split(",")[2]), epoch_seconds(csv[-1].split(",")[2])
    page.select_option("#x-axis", "time")
    assert loss.evaluate("b => b.nbvChart.plot.scales.x.time") is True
    assert x_range() == pytest.approx([first, last], abs=0.01)
    assert "x axis: time (UTC)." in desc.inner_text()
    page.select_option("#x-axis", "step")

    page.set_viewport_size({"width": 1280, "height": 1000})
    page.locator("#x-axis").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -60)")
    loss.locator(".u-over").hover()
    page.screenshot(path=str(shots / "run.png"))
    page.screenshot(path=str(shots / "run-full.png"), full_page=True)


def _log_search(page: Any, expect: Any, dest: Path) -> None:
    """The search box above a log keeps the lines that hold what is typed, in any case."""
    rows = list(csv.reader((next(dest.glob("*/*/P0-1")) / "logs" / "train.csv").open(newline="")))[1:]
    want = [text for _, text, _ in rows if "line 1" in text.lower()]
    assert 0 < len(want) < len(rows)
    log = page.locator("pre.log[aria-label='logs/train']")
    search = page.get_by_role("searchbox", name="search logs/train")
    search.scroll_into_view_if_needed()
    search.fill("LINE 1")
    shown = [t.strip().split(" ", 1)[1] for t in log.locator(".line:visible").all_inner_texts()]
    assert shown == want
    expect(search.locator("xpath=..")).to_contain_text(f"{len(want)} of {len(rows)} lines hold")
    search.fill("")
    expect(log.locator(".line:visible")).to_have_count(len(rows))


def _fmt(v: float) -> str:
    """A number as the page's script writes it (6 significant digits, integers plain)."""
    return str(int(v)) if v == int(v) else format(float(f"{v:.6g}"), "")


def _model_version(page: Any, index: Path) -> None:
    """A model version's breadcrumb leads to its model."""
    page.goto(
        (index.parent / "runs" / "workspace-0~project-0~_models~P0-MOD~_versions~P0-MOD-1.html").as_uri()
    )
    crumbs = page.locator("nav[aria-label=breadcrumbs]")
    assert crumbs.inner_text() == "Backup / workspace-0/project-0 / P0-MOD / P0-MOD-1"
    crumbs.get_by_role("link", name="P0-MOD", exact=True).click()
    assert page.locator("h1").inner_text().startswith("P0-MOD")
    assert page.locator("dl.facts dd").first.inner_text() == "model"


# -- without a browser ------------------------------------------------------------------------


def _run_browser_test(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    """This module's browser test in a fresh pytest, with every place a browser could be hidden."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE}
    env.update(
        PATH=str(empty), HOME=str(empty), PLAYWRIGHT_BROWSERS_PATH=str(empty), XDG_CACHE_HOME=str(empty)
    )
    if require:
        env[REQUIRE] = "1"
    # LOCATIONS are fixed paths (such as /usr/lib/chromium/chromium): hide them too
    code = (
        "import sys, pytest; from neptune_backup_async.view import browser; browser.LOCATIONS = ();"
        " sys.exit(pytest.main(sys.argv[1:]))"
    )
    test = f"{Path(__file__).resolve()}::test_site_in_a_browser"
    return subprocess.run(
        # -n 0: in this one process (not in workers, which would not have the LOCATIONS above)
        [sys.executable, "-c", code, "-q", "-rs", "-p", "no:cacheprovider", "-n", "0", test],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_without_a_browser_the_test_skips_and_says_how_to_enable_it(tmp_path: Path) -> None:
    result = _run_browser_test(tmp_path, require=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "no Chromium-family browser found" in result.stdout
    assert "apt-get install chromium" in result.stdout and "playwright install chromium" in result.stdout


@pytest.mark.slow
def test_without_a_browser_the_test_fails_where_ci_requires_it(tmp_path: Path) -> None:
    result = _run_browser_test(tmp_path, require=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout
    assert "no Chromium-family browser found" in result.stdout
    assert f"{REQUIRE}=1: this test must run here" in result.stdout


def test_find_browser_looks_on_path_then_usual_places_then_playwright(tmp_path: Path) -> None:
    def executable(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path

    env = {"PATH": str(tmp_path / "bin"), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "pw")}
    assert find_browser(env, locations=()) is None
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "chromium").write_text("not executable")
    assert find_browser(env, locations=()) is None
    old = executable(tmp_path / "pw" / "chromium-999" / "chrome-linux" / "chrome")
    new = executable(tmp_path / "pw" / "chromium-1091" / "chrome-linux" / "chrome")
    assert find_browser(env, locations=()) == new != old  # the newest revision, not the last in text order
    usual = executable(tmp_path / "opt" / "chrome")
    assert find_browser(env, locations=(str(usual),)) == usual
    on_path = executable(tmp_path / "bin" / "google-chrome")
    assert find_browser(env, locations=(str(usual),)) == on_path
