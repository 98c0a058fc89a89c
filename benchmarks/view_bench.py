"""Benchmarks of ``neptune-backup view``.

    python benchmarks/view_bench.py build [--runs 1000] [--workers N] [--keep DIR]
    python benchmarks/view_bench.py page [--keep DIR] [--repeat 5]

``build``: the fake Neptune server serves W1 with ``runs_per_project`` set to ``--runs``,
``backup`` saves it (timed apart, not part of the figure), then the site is built three
times: from scratch, again with nothing changed (the incremental path), and after one
run's manifest is touched.

``page``: backs up W3 (one run with 200 float series of 50,000 points), builds its site,
and opens the run page in headless Chromium from the file system: the page's weight (HTML
and the assets it loads), the time to the ``load`` event, and the times until the charts
of the first screen, then every chart, are drawn (as an SVG in the page, or a canvas
drawn by the page's script), measured in the page from the start of the navigation.
Medians of ``--repeat`` loads, each in a fresh browser page.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, generate, serve
from neptune_backup_async.view import build_site
from neptune_backup_async.view.browser import HOW_TO_INSTALL, find_browser

# Checked at every frame from the start of the page: when the charts of the first screen,
# then all of them, are drawn (an inline SVG, the viewer before uPlot, or a canvas), in ms
# since the navigation started.
WATCH = """(() => {
  const drawn = screen => [...document.querySelectorAll("figure.chart-box")]
    .filter(f => !screen || f.getBoundingClientRect().top < innerHeight)
    .every(f => f.querySelector("svg.chart, canvas"));
  window.__drawn = {};
  const check = () => {
    if (document.readyState !== "loading") {
      if (!__drawn.first && drawn(true)) __drawn.first = performance.now();
      if (!__drawn.all && drawn(false)) __drawn.all = performance.now();
    }
    if (!__drawn.all) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();"""


def _backup(spec_name: str, runs: int | None, dest: Path, tmp: Path) -> None:
    if (dest / "backup-report.json").is_file():
        return
    spec = WORKLOADS[spec_name]
    if runs is not None:
        spec = dataclasses.replace(spec, runs_per_project=runs)
    started = time.perf_counter()
    world = generate(spec, artifact_root=tmp / "artifact-sources")
    with serve(world) as server:
        anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=32))
    print(f"backup of {spec_name}: {time.perf_counter() - started:.1f} s (not part of the figure)")


def build(args: argparse.Namespace, dest: Path, tmp: Path) -> None:
    _backup("W1", args.runs, dest, tmp)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and "_site" not in p.parts)
    print(f"backup: {size / 2**20:.0f} MiB; cores: {os.cpu_count()}")
    site = tmp / "site"
    started = time.perf_counter()
    build_site(dest, site, workers=args.workers)
    cold = time.perf_counter() - started
    site_size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    print(f"site from scratch: {cold:.1f} s ({site_size / 2**20:.0f} MiB)")
    started = time.perf_counter()
    build_site(dest, site, workers=args.workers)
    print(f"rebuild, nothing changed: {time.perf_counter() - started:.1f} s")
    manifest = next(dest.glob("*/*/*/.manifest.json"))
    manifest.touch()
    started = time.perf_counter()
    build_site(dest, site, workers=args.workers)
    print(f"rebuild, one run changed: {time.perf_counter() - started:.1f} s")


def page(args: argparse.Namespace, dest: Path, tmp: Path) -> None:
    from playwright.sync_api import sync_playwright

    browser_path = find_browser()
    if browser_path is None:
        raise SystemExit(f"no browser found: {HOW_TO_INSTALL}")
    _backup("W3", None, dest, tmp)
    site = tmp / "site"
    started = time.perf_counter()
    build_site(dest, site)
    print(f"site built in {time.perf_counter() - started:.1f} s")
    run_page = next(p for p in (site / "runs").glob("*.html") if "_project" not in p.name)
    loaded: list[float] = []
    first: list[float] = []
    drawn: list[float] = []
    weight = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(browser_path), args=["--no-sandbox"])
        try:
            for _ in range(args.repeat):
                tab = browser.new_page(viewport={"width": 1400, "height": 900})
                sizes: dict[str, int] = {}
                tab.on(
                    "requestfinished",
                    lambda r, sizes=sizes: sizes.__setitem__(r.url, r.sizes()["responseBodySize"]),
                )
                tab.add_init_script(WATCH)
                tab.goto(run_page.as_uri(), wait_until="load")
                tab.wait_for_function("() => window.__drawn.all")
                timing = tab.evaluate(
                    "[performance.getEntriesByType('navigation')[0].loadEventStart, __drawn.first, __drawn.all]"
                )
                loaded.append(timing[0] / 1000)
                first.append(timing[1] / 1000)
                drawn.append(timing[2] / 1000)
                weight = sum(sizes.values()) or sum(
                    Path(u.removeprefix("file://")).stat().st_size for u in sizes
                )
                tab.close()
        finally:
            browser.close()
    charts = len(list(re.finditer('<figure class="chart-box">', run_page.read_text(encoding="utf-8"))))
    print(
        f"run page with {charts} charts: {run_page.stat().st_size / 2**10:.0f} KiB of HTML,"
        f" {weight / 2**10:.0f} KiB with its assets"
    )
    print(
        f"load event: {statistics.median(loaded) * 1000:.0f} ms; the charts on the first screen drawn:"
        f" {statistics.median(first) * 1000:.0f} ms; every chart drawn: {statistics.median(drawn) * 1000:.0f} ms"
        f" (medians of {args.repeat})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build", help="build the site of many W1 runs")
    b.add_argument("--runs", type=int, default=1_000)
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    pg = sub.add_parser("page", help="weight and load time of a run page with 200 charts")
    pg.add_argument("--repeat", type=int, default=5)
    for p in (b, pg):
        p.add_argument("--keep", type=Path, help="back up into this folder and keep it (reused when present)")
    args = parser.parse_args()
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake server speaks plain http
    tmp = Path(tempfile.mkdtemp(prefix="view-bench-"))
    try:
        (build if args.what == "build" else page)(args, args.keep or tmp / "backup", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
