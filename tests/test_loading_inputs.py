"""What the loaders take from a backup is input: names inside it that would lead elsewhere,
or land two files on one path, are not followed (pure parts; the loads are end to end in
test_load_mlflow*.py and test_load_wandb*.py)."""

from __future__ import annotations

import json

from neptune_backup_async.loading.files import _apart
from neptune_backup_async.loading.report import redact_uri
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
