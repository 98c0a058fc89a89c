"""Tests that need an optional dependency (a browser, the mlflow extra): skipped with the
reason and the way to install it where it is missing, except where CI requires them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

#: `.ci/run` sets it to 1: there a missing optional dependency is a failure, not a skip.
REQUIRE = "NEPTUNE_BACKUP_REQUIRE_OPTIONAL"


def unavailable(problem: str) -> NoReturn:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{problem} ({REQUIRE}=1: this test must run here)", pytrace=False)
    pytest.skip(f"{problem} (where {REQUIRE}=1, as in CI, this fails instead)", allow_module_level=True)


def need(module: str, extra: str) -> ModuleType:
    """``module``, from the package's ``extra``; a whole test module may call this at import."""
    try:
        return importlib.import_module(module)
    except ImportError:
        unavailable(f"{module} is not installed: pip install -e '.[{extra}]'")
