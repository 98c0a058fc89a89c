"""What the loaders take from a backup is input: names inside it that would lead elsewhere,
or land two files on one path, are not followed (pure parts; the loads are end to end in
test_load_mlflow*.py and test_load_wandb*.py)."""

from __future__ import annotations

import json

import pytest

from neptune_backup_async.loading.files import _apart
from neptune_backup_async.loading.report import redact_uri
from neptune_backup_async.loading.series import parse_float_series, parse_string_series, read_as
from neptune_backup_async.to_wandb import convert


def _index(*files: str) -> bytes:
    items = [
        {"index": i, "file": f, "step": float(i), "timestamp": 1_700_000_000_000 + i}
        for i, f in enumerate(files)
    ]
    return json.dumps(items).encode("utf-8")


def test_an_image_item_is_logged_only_from_a_file_the_manifest_named() -> None:
    laid = {"neptune/files/imgs/0.png", "neptune/files/imgs/1.png"}
    index = _index("0.png", "../../../../etc/passwd", "1.png", "/abs.png", "2.png")
    items = convert.image_items(index, "neptune/files/imgs", laid)
    assert [i.value.file for i in items] == ["neptune/files/imgs/0.png", "neptune/files/imgs/1.png"]
    assert [i.step for i in items] == [0.0, 2.0]


def test_zip_members_that_would_land_on_one_path_are_not_unpacked() -> None:
    assert _apart(["a.txt", "b/c.txt", "b/d.txt"])
    assert not _apart(["a.txt", "a.txt"])  # the second would overwrite the first
    assert not _apart(["a", "a/b"])  # a file where the other needs a folder
    assert not _apart(["x/y/z", "x/y"])


def test_where_a_load_went_is_reported_without_its_secret() -> None:
    assert redact_uri("https://user:s3cret@mlflow.example:8443/x") == "https://user:***@mlflow.example:8443/x"
    assert redact_uri("https://KEY123@wandb.example") == "https://***@wandb.example"  # a key as user name
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_series_time_that_cannot_be_read_is_an_error_not_a_time() -> None:
    header = "step,value,timestamp"
    [point] = parse_float_series([header, "1.0,0.5,2024-01-02T03:04:05.006Z", ""])
    assert point.timestamp == 1_704_164_645_006
    assert parse_float_series([header, "1.0,0.5,253402300800000"])[0].timestamp == 253_402_300_800_000
    with pytest.raises(ValueError) as raised, read_as("m/loss.csv"):  # as the loaders read: naming the file
        parse_float_series([header, "1.0,0.5,yesterday"])
    assert str(raised.value) == "m/loss.csv: a series point has an unreadable timestamp 'yesterday'"
    with pytest.raises(ValueError, match="unreadable timestamp ''"):
        parse_string_series(f"{header}\n1.0,text,\n")
    with pytest.raises(ValueError, match="unreadable timestamp 'soon'"):
        convert.image_items(
            json.dumps([{"file": "0.png", "step": 0.0, "timestamp": "soon"}]).encode(), "f", {"f/0.png"}
        )
