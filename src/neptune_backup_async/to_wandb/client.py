"""Every call into W&B, through its public client (``wandb``); blocking.

No other module of the package imports ``wandb``, so the package imports without it and the
command can say how to install it. Each run is written whole by ``write``: started (resumed
when it exists), its config, metric definitions, history rows and files, then finished.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BackupError
from . import convert, naming
from .plan import Run

INSTALL_HINT = 'load-wandb needs W&B\'s client. Install it with: pip install "neptune-backup-async[wandb]"'
LOGGERS = ("wandb",)


class WandbMissingError(BackupError):
    """The optional ``wandb`` package is not installed."""

    exit_code = 2


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise WandbMissingError(INSTALL_HINT) from None
    return wandb


def require_wandb() -> None:
    _wandb()


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """wandb sets environment variables and ``sys.excepthook`` while it runs: put them back."""
    environ, hook = dict(os.environ), sys.excepthook
    try:
        yield
    finally:
        sys.excepthook = hook
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)


def _with_images(wandb: Any, row: dict[str, Any], run_files: Path) -> dict[str, Any]:
    """The row with each image item as a ``wandb.Image`` of its run file (kept byte for byte
    under ``media/images/``). An item wandb cannot open (no pillow, or not an image) is left
    out of the row, with its step: it stays a run file."""
    out = dict(row)
    for key, value in row.items():
        if isinstance(value, convert.ImageRef):
            try:
                out[key] = wandb.Image(str(run_files / value.file), caption=value.caption)
            except (ImportError, OSError, ValueError):
                del out[key], out[naming.step_metric(key)]
    return out


def write(
    entity: str | None,
    project: str,
    run_of: Run,
    offline: bool,
    where: Path,
    config: dict[str, Any],
    series_keys: Sequence[str],
    first_step: int,
    rows: Sequence[dict[str, Any]],
    staged: Path,
    files: Sequence[str],
) -> Path:
    """Write one run; returns its run folder (``where/wandb/<offline-|>run-<time>-<id>``),
    which holds what wandb wrote locally.

    ``rows`` get ``_step`` ``first_step``, ``first_step + 1``, ...: the same rows always the
    same steps, so a row that W&B already holds is one it ignores (it takes steps only forward).
    ``files`` (relative to ``staged``, where they were laid out and checked) are moved into
    the run's files folder and saved, after the history."""
    wandb = _wandb()
    settings = wandb.Settings(
        mode="offline" if offline else "online",
        silent=True,
        console="off",
        x_disable_stats=True,  # the machine loading is not the machine that ran
        x_disable_meta=True,
        disable_git=True,
        save_code=False,
        disable_job_creation=True,
        x_save_requirements=False,
    )
    run = wandb.init(
        dir=str(where),
        id=run_of.id,
        entity=entity,
        project=project,
        name=run_of.name,
        notes=run_of.notes or None,
        tags=run_of.tags,
        group=run_of.group,
        job_type=run_of.job_type,
        resume="allow",
        reinit="create_new",
        settings=settings,
    )
    try:
        if config:
            run.config.update(config, allow_val_change=True)
        for key in series_keys:
            run.define_metric(key, step_metric=naming.step_metric(key))
        run_files = Path(run.dir)
        for rel in files:
            (run_files / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / rel, run_files / rel)
        for i, row in enumerate(rows):
            run.log(_with_images(wandb, row, run_files), step=first_step + i)
        for rel in files:
            run.save(str(run_files / rel), base_path=str(run_files), policy="now", glob=False)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=1 if run_of.failed else 0)
    return run_files.parent


def read_online_state(entity: str | None, project: str, run_id: str, name: str) -> bytes | None:
    """The bytes of the run file ``name`` of the run on the W&B server; None when the run or
    the file is not there. Any other failure (the network, the server) is raised: taken for
    "nothing loaded", it would have the run written again from its first row."""
    wandb = _wandb()
    api = wandb.Api()
    path = "/".join([entity or api.default_entity, project, run_id])
    try:
        run = api.run(path)
    except ValueError:  # RunNotFoundError; older clients raise a plain ValueError
        return None
    found = list(run.files(names=[name]))
    if not found:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        found[0].download(root=tmp, replace=True)
        return (Path(tmp) / name).read_bytes()


def teardown() -> None:
    """Stop the service wandb started for this process (it starts again when needed)."""
    if "wandb" in sys.modules:
        _wandb().teardown()
