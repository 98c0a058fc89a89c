"""The viewer end to end in a real headless browser (Debian's chromium, driven by playwright).

Backs up the fake server's demo workspace, builds the site, opens it from the file system
(no server), sorts and filters the runs table, opens a run, compares two runs, and saves
screenshots (to docs/images/ for the README too, with UPDATE_DOCS_IMAGES=1). It fails, not skips, without chromium
or playwright: install them with ``apt-get install -y chromium`` and the test extra.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import anyio

from neptune_backup_async import backup
from neptune_backup_async.testing import FakeNeptuneServer, World
from neptune_backup_async.view import build_site
from test_view import HOSTILE_NAME, make_hostile

CHROMIUM = Path("/usr/bin/chromium")
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


def test_site_in_a_browser(demo_world: World, server: FakeNeptuneServer, tmp_path: Path) -> None:
    from playwright.sync_api import Dialog, expect, sync_playwright  # a missing playwright fails the test

    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    dest = tmp_path / "backup"
    anyio.run(lambda: backup("all", dest, api_token=server.api_token, download_artifacts=True))
    make_hostile(dest, "P0-3")  # a run named <script>alert(1)</script>
    index = build_site(dest)
    shots = tmp_path / "screenshots"
    shots.mkdir()

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def on_dialog(dialog: Dialog) -> None:  # an alert() would be a script from the backup
                errors.append(f"dialog: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("request", lambda r: requests.append(r.url))

            # the index lists every project, with its run count
            page.goto(index.as_uri())
            assert page.locator("h2", has_text="workspace-0").count() == 1
            page.screenshot(path=str(shots / "index.png"), full_page=True)
            page.get_by_role("link", name="project-0", exact=True).click()

            # the runs table: 4 runs, sortable and filterable
            rows = page.locator("#runs tbody tr")
            expect(rows).to_have_count(4)  # waits for the page's script to render the table

            def ids() -> list[str]:
                return rows.locator("td:nth-child(2)").all_inner_texts()

            page.locator("#runs th", has_text="id").first.click()
            assert ids() == ["P0-1", "P0-2", "P0-3", "P0-4"]
            page.locator("#runs th", has_text="id").first.click()
            assert ids() == ["P0-4", "P0-3", "P0-2", "P0-1"]
            assert page.locator("#runs th", has_text="id").first.get_attribute("aria-sort") == "descending"
            # the hostile name is text, not markup
            assert page.locator("#runs tr[data-id='P0-3'] td:nth-child(3)").inner_text() == HOSTILE_NAME
            page.fill("#filter", "nightly")
            filtered = ids()
            assert 0 < len(filtered) < 4
            meta = {
                run_id: json.loads((next(dest.glob(f"*/*/{run_id}")) / "simple_metadata.json").read_text())
                for run_id in filtered
            }
            assert all("nightly" in m["sys/tags"] for m in meta.values())
            page.fill("#filter", "")
            assert rows.count() == 4
            page.screenshot(path=str(shots / "project.png"), full_page=True)

            # compare two runs on one chart
            page.locator("#runs tr[data-id='P0-1'] input[type=checkbox]").check()
            page.locator("#runs tr[data-id='P0-2'] input[type=checkbox]").check()
            page.select_option("#metric", "metrics/train/loss")
            page.click("#compare-btn")
            page.wait_for_selector("#compare-chart svg polyline")
            lines = page.locator("#compare-chart svg polyline.cmp-line")
            assert lines.count() == 2
            assert len(lines.first.get_attribute("points").split()) > 10  # type: ignore[union-attr]
            assert "metrics/train/loss" in (page.locator("#compare-chart svg > title").text_content() or "")
            page.locator("#compare").screenshot(path=str(shots / "compare.png"))

            # a run page: charts with data, images that load, hover shows step and value
            page.goto(index.as_uri())
            page.get_by_role("link", name="project-0", exact=True).click()
            page.locator("#runs a", has_text="P0-1").click()
            assert page.locator("h1").inner_text().startswith("P0-1")
            charts = page.locator("svg.chart[role=img]")
            assert charts.count() >= 2
            for i in range(charts.count()):
                chart = charts.nth(i)
                assert chart.locator("title").count() == 1 and chart.locator("desc").count() == 1
                assert len(chart.locator("polyline").get_attribute("points").split()) > 10  # type: ignore[union-attr]
            images = page.locator(".gallery img")
            assert images.count() == 3
            for i in range(images.count()):
                images.nth(i).scroll_into_view_if_needed()
                page.wait_for_function("img => img.complete", arg=images.nth(i).element_handle())
                assert images.nth(i).evaluate("img => img.naturalWidth") > 0
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.evaluate("window.scrollTo(0, 0)")
            box = page.locator("svg.chart").first.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] / 2)
            assert (page.locator("svg.chart .tip").first.text_content() or "").startswith("step ")
            assert page.locator("#integrity").inner_text().startswith("ok")
            page.screenshot(path=str(shots / "run.png"))
            page.screenshot(path=str(shots / "run-full.png"), full_page=True)

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
