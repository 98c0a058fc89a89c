"""Where a Chromium-family browser is installed: for the viewer's browser test and benchmark.

The site itself needs no particular browser; this only finds one that Playwright can drive
headless. Pure lookups on the file system, no browser is started.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from .data import natural_key

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge")

# Installs that are often not on PATH (macOS application bundles, Windows, Linux packages).
LOCATIONS: tuple[str, ...] = (
    "/usr/lib/chromium/chromium",
    "/opt/google/chrome/chrome",
    "/snap/bin/chromium",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
)

# Playwright's own downloads (``python -m playwright install chromium``), newest first.
_PLAYWRIGHT_EXECUTABLES = (
    "chromium-*/chrome-linux/chrome",
    "chromium-*/chrome-linux64/chrome",
    "chromium-*/chrome-mac/Chromium.app/Contents/MacOS/Chromium",
    "chromium-*/chrome-mac-arm64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
    "chromium-*/chrome-win/chrome.exe",
    "chromium_headless_shell-*/chrome-linux/headless_shell",
    "chromium_headless_shell-*/chrome-headless-shell-linux64/chrome-headless-shell",
)

HOW_TO_INSTALL = (
    "install Chromium or Chrome (Debian/Ubuntu: `apt-get install chromium`), or let Playwright"
    " download its own (`python -m playwright install chromium`)"
)


def playwright_folder(env: Mapping[str, str]) -> Path:
    """Where Playwright keeps the browsers it downloads (``PLAYWRIGHT_BROWSERS_PATH`` first)."""
    if env.get("PLAYWRIGHT_BROWSERS_PATH"):
        return Path(env["PLAYWRIGHT_BROWSERS_PATH"])
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "ms-playwright"
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "ms-playwright"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "ms-playwright"


def find_browser(
    env: Mapping[str, str] = os.environ, locations: tuple[str, ...] | None = None
) -> Path | None:
    """A Chromium-family executable: on ``PATH``, at a usual location (default ``LOCATIONS``),
    or in Playwright's folder."""
    for name in NAMES:
        found = shutil.which(name, path=env.get("PATH", ""))
        if found:
            return Path(found)
    for location in LOCATIONS if locations is None else locations:
        if os.access(location, os.X_OK):
            return Path(location)
    folder = playwright_folder(env)
    for pattern in _PLAYWRIGHT_EXECUTABLES:  # the newest revision first
        found_in = sorted(folder.glob(pattern), key=lambda p: natural_key(str(p)), reverse=True)
        if found_in:
            return found_in[0]
    return None
