"""The reader of W&B's offline transaction log (tests/wandb_log.py) against runs that wandb
itself writes offline: every kind of record the load-wandb tests compare comes back as sent."""

from __future__ import annotations

import base64
import hashlib
import math
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neptune_backup_async.testing.generator import tiny_png
from optional import need

wandb = need("wandb", "wandb")
need("PIL", "wandb")  # wandb.Image needs pillow, which wandb itself does not require

from wandb_log import FIRST, LAST, MIDDLE, CorruptLog, LoggedRun, _chunks, read_all, read_run, records  # noqa: E402


@pytest.fixture(scope="module")
def wandb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """wandb's own folders (settings, cache, artifact staging) in a temporary place, and quiet."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            mp.setenv(var, str(home / var.lower()))
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_API_KEY", raising=False)
        yield home


def offline(root: Path, run_id: str, **init: Any) -> Any:
    settings = wandb.Settings(silent=True, console=init.pop("console", "off"), x_disable_stats=True)
    return wandb.init(mode="offline", dir=root, id=run_id, project="proj", settings=settings, **init)


def finish(run: Any) -> None:
    """Finish ``run`` and stop wandb-core: ``finish()`` can return before the core has written the
    log out (seen here: a 7-byte log right after it), and stopping the core flushes every log."""
    run.finish()
    wandb.teardown()


def only_run(root: Path) -> LoggedRun:
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    return read_run(run_dir)


@pytest.fixture(scope="module")
def everything(wandb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LoggedRun, Path]:
    """One offline run with every kind of record the loader writes."""
    root = tmp_path_factory.mktemp("everything")
    src = root / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(bytes(range(256)) * 3)
    (src / "notes.txt").write_text("é ünïcode\n")
    (src / "plot.png").write_bytes(tiny_png((200, 30, 10)))
    run = offline(
        root,
        "everything1",
        name="the name",
        notes="a description",
        group="grp",
        tags=["t1", "t 2"],
        config={
            "lr": 0.5,
            "nested": {"deep": {"s": "x"}},
            "nan": math.nan,
            "inf": -math.inf,
            "list": [1, "a"],
        },
    )
    run.config.update({"later": True})
    run.define_metric("train/step")
    run.define_metric("train/loss", step_metric="train/step")
    run.log({"train/loss": 0.25, "train/step": 0.5, "_timestamp": 1_700_000_000.125})
    run.log({"train/loss": math.nan, "train/step": 1.5, "_timestamp": 1_700_000_001.5})
    run.log({"text": "a string point", "edge": math.inf})
    run.log({"images/plot": wandb.Image(str(src / "plot.png"), caption="at 2.5"), "images/plot@step": 2.5})
    run.log({"table": wandb.Table(columns=["step", "line"], data=[[1.5, "first"], [2.5, "second"]])})
    run.summary["final"] = {"acc": 0.75}
    run.save(str(src / "notes.txt"), base_path=str(src), policy="now")
    art = wandb.Artifact("model-files", type="model", metadata={"source": "neptune"})
    art.add_file(str(src / "weights.bin"), name="dir/weights.bin")
    art.add_file(str(src / "notes.txt"))
    run.log_artifact(art, aliases=["v-latest"])
    finish(run)
    return only_run(root), src


def test_run_fields_config_and_summary(everything: tuple[LoggedRun, Path]) -> None:
    run, _ = everything
    assert (run.id, run.name, run.project, run.notes, run.group) == (
        "everything1",
        "the name",
        "proj",
        "a description",
        "grp",
    )
    assert run.tags == ["t1", "t 2"]
    assert run.finished and not run.resumed
    assert run.config["lr"] == 0.5 and run.config["nested"] == {"deep": {"s": "x"}}
    # wandb itself writes a NaN config value as null (the infinities survive): the loader must
    # encode NaN in config another way, and this pins the reason down
    assert run.config["nan"] is None and run.config["inf"] == -math.inf
    assert run.config["list"] == [1, "a"] and run.config["later"] is True
    assert "_wandb" not in run.config and "_wandb" not in run.summary
    assert run.summary["final"] == {"acc": 0.75}
    assert run.summary["text"] == "a string point" and run.summary["edge"] == math.inf


def test_history_keeps_given_timestamps_and_float_steps(everything: tuple[LoggedRun, Path]) -> None:
    run, _ = everything
    first, second, third = run.history[:3]
    assert (first["train/loss"], first["train/step"], first["_timestamp"], first["_step"]) == (
        0.25,
        0.5,
        1_700_000_000.125,
        0,
    )
    assert math.isnan(second["train/loss"]) and second["train/step"] == 1.5 and second["_step"] == 1
    assert second["_timestamp"] == 1_700_000_001.5
    assert third["text"] == "a string point" and third["edge"] == math.inf
    assert run.metrics["train/loss"]["step_metric"] == "train/step"
    assert "step_metric" not in run.metrics["train/step"]


def test_tables_files_and_artifacts(everything: tuple[LoggedRun, Path]) -> None:
    run, src = everything
    (table_row,) = [row for row in run.history if "table" in row]
    assert table_row["table"]["_type"] == "table-file" and table_row["table"]["nrows"] == 2
    table_file = run.dir / "files" / table_row["table"]["path"]
    assert table_file.is_file() and table_row["table"]["path"] in run.files
    assert "notes.txt" in run.files and "requirements.txt" not in run.files
    assert (run.dir / "files" / "notes.txt").read_bytes() == (src / "notes.txt").read_bytes()

    (model,) = [a for a in run.artifacts if a.name == "model-files"]
    assert model.type == "model" and "v-latest" in model.aliases and model.metadata == {"source": "neptune"}

    def md5(path: Path) -> tuple[str, int]:
        data = path.read_bytes()
        return base64.b64encode(hashlib.md5(data).digest()).decode(), len(data)

    assert model.entries == {"dir/weights.bin": md5(src / "weights.bin"), "notes.txt": md5(src / "notes.txt")}
    for name, staged in model.local_paths.items():
        assert md5(Path(staged)) == model.entries[name]


def test_images_keep_their_bytes(everything: tuple[LoggedRun, Path]) -> None:
    run, src = everything
    (row,) = [row for row in run.history if "images/plot" in row]
    image = row["images/plot"]
    assert image["_type"] == "image-file" and image["caption"] == "at 2.5" and row["images/plot@step"] == 2.5
    assert image["path"] in run.files
    assert (run.dir / "files" / image["path"]).read_bytes() == (src / "plot.png").read_bytes()


def test_console_output_lines(wandb_home: Path, tmp_path: Path) -> None:
    run = offline(tmp_path, "console1", console="wrap_raw")
    print("line one")
    print("line two")
    finish(run)
    output = only_run(tmp_path).output
    assert output[output.index("line one") + 1] == "line two"


@pytest.fixture(scope="module")
def big_log(wandb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A run whose records span 32 KiB blocks: one value of 100 KB and many of 3 KB."""
    root = tmp_path_factory.mktemp("big")
    texts = [f"{i:04d}" + "x" * 3000 for i in range(40)] + ["y" * 100_000]
    run = offline(root, "bigrun1")
    for text in texts:
        run.log({"text": text})
    finish(run)
    (log,) = (root / "wandb").glob("offline-run-*/run-bigrun1.wandb")
    return log, texts


def test_records_spanning_blocks(big_log: tuple[Path, list[str]]) -> None:
    log, texts = big_log
    kinds = [kind for _, kind, _ in _chunks(log.read_bytes(), log)]
    assert {FIRST, MIDDLE, LAST} <= set(kinds), "the log must hold records split across blocks"
    assert [row["text"] for row in read_run(log.parent).history] == texts


def test_damage_is_detected(big_log: tuple[Path, list[str]], tmp_path: Path) -> None:
    log, _ = big_log
    data = log.read_bytes()
    broken = tmp_path / "run-x.wandb"

    def fails(content: bytes, message: str) -> None:
        broken.write_bytes(content)
        with pytest.raises(CorruptLog, match=message):
            list(records(broken))

    flipped = bytearray(data)
    flipped[40_000] ^= 0x01
    fails(bytes(flipped), "checksum mismatch")
    fails(data[:50_000], "cut short|overflows")
    fails(b"NOPE" + data[4:], "not a W&B transaction log")
    first_chunk = struct.pack("<IHB", 0, 0, LAST)
    fails(data[:7] + first_chunk, "checksum mismatch|out of order")


def test_read_all_groups_runs_of_one_id_oldest_first(wandb_home: Path, tmp_path: Path) -> None:
    for i in range(2):
        run = offline(tmp_path, "again1", resume="allow")
        run.log({"i": i})
        finish(run)
    run = offline(tmp_path, "other1")
    finish(run)
    (kept := tmp_path / ".neptune-backup" / "superseded").mkdir(parents=True)
    shutil.copytree(next((tmp_path / "wandb").glob("offline-run-*-other1")), kept / "offline-run-x-other1")
    found = read_all(tmp_path)
    assert read_all(tmp_path / "wandb").keys() == found.keys()
    assert sorted(found) == ["again1", "other1"] and len(found["other1"]) == 1, "only what wandb sync uploads"
    assert [r.history[0]["i"] for r in found["again1"]] == [0, 1]
    assert len({r.dir for r in found["again1"]}) == 2
