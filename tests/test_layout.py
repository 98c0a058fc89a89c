"""The layout is the on-disk contract: safe, injective and stable for any name the server sends."""

from __future__ import annotations

import hashlib
import os
from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from neptune_backup_async import layout
from neptune_backup_async.source import FieldType

names = st.text(min_size=0, max_size=300)
field_paths = st.lists(names, min_size=1, max_size=4).map("/".join)


def _inside(rel: PurePosixPath) -> bool:
    root = "/backup"
    return os.path.normpath(os.path.join(root, rel)).startswith(root + "/") and not rel.is_absolute()


@given(names)
def test_segment_is_one_safe_name(name: str) -> None:
    seg = layout.safe_segment(name)
    assert seg not in ("", ".", "..")
    assert "/" not in seg and "\\" not in seg and "\x00" not in seg
    assert not seg.startswith(".")
    assert all(ord(c) >= 32 and c not in '<>:"|?*' for c in seg)
    assert len(seg.encode()) <= layout.MAX_SEGMENT_BYTES
    assert layout.safe_segment(name) == seg  # stable


@given(names, names)
def test_segment_is_injective(a: str, b: str) -> None:
    if a != b:
        assert layout.safe_segment(a) != layout.safe_segment(b)


@given(field_paths, st.sampled_from(list(FieldType)), st.one_of(st.none(), names))
def test_field_files_stay_inside_the_run_folder(path: str, kind: FieldType, ext: str | None) -> None:
    rel = layout.field_file(path, kind, ext)
    assert _inside(rel)
    assert not rel.name.startswith(".")  # never a temporary or the manifest
    if not kind.is_simple:
        assert rel.name not in (layout.SIMPLE_METADATA, layout.MANIFEST)


@given(field_paths, field_paths)
def test_different_fields_of_one_kind_get_different_files(a: str, b: str) -> None:
    if a != b:
        assert layout.field_file(a, FieldType.FLOAT_SERIES) != layout.field_file(b, FieldType.FLOAT_SERIES)


@given(field_paths, field_paths)
def test_artifact_files_stay_inside(field: str, inner: str) -> None:
    assert _inside(layout.artifact_file(field, inner))


def test_ordinary_names_keep_the_seed_layout() -> None:
    assert layout.field_file("metrics/train/loss", FieldType.FLOAT_SERIES) == PurePosixPath(
        "metrics/train/loss.csv"
    )
    assert layout.field_file("data/sample", FieldType.FILE, "bin") == PurePosixPath("data/sample.bin")
    assert layout.field_file("source_code/files", FieldType.FILE_SET) == PurePosixPath(
        "source_code/files.zip"
    )
    assert layout.field_file("parameters/lr", FieldType.FLOAT) == PurePosixPath("simple_metadata.json")
    assert layout.image_file("images/pred", 2, "png") == PurePosixPath("images/pred/2.png")
    assert layout.container_dir("ws", "proj", "PROJ-1") == PurePosixPath("ws/proj/PROJ-1")


def test_hostile_names_are_escaped_not_dropped() -> None:
    assert layout.safe_path("../../etc/passwd") == PurePosixPath("%2E%2E/%2E%2E/etc/passwd")
    assert layout.safe_segment("CON") == "%43ON"
    assert layout.safe_segment("a\\b") == "a%5Cb"
    assert layout.safe_segment("100%") == "100%25"
    # A file field that would land on our own simple_metadata.json is moved aside.
    assert layout.field_file("simple_metadata", FieldType.FILE, "json") == PurePosixPath(
        "%73imple_metadata.json"
    )


def test_long_names_are_shortened_with_a_hash() -> None:
    a, b = "x" * 300, "x" * 299 + "y"
    assert len(layout.safe_segment(a).encode()) <= layout.MAX_SEGMENT_BYTES
    assert layout.safe_segment(a) != layout.safe_segment(b)


case_variants = st.lists(
    st.sampled_from(
        ["loss", "Loss", "LOSS", "metrics/acc", "Metrics/acc", "metrics/Acc", "con", "CON", "a/b", "A/B"]
    ),
    unique=True,
)


@given(st.one_of(case_variants, st.lists(field_paths, unique=True, max_size=6)))
def test_a_run_never_has_two_files_that_differ_only_in_case(paths: list[str]) -> None:
    run = layout.RunLayout(paths)
    files = [run.field_file(p, FieldType.FLOAT_SERIES).as_posix().casefold() for p in paths]
    assert len(set(files)) == len(files)
    assert all(_inside(run.field_file(p, FieldType.FILE, "bin")) for p in paths)


@given(case_variants)
def test_the_case_rule_is_stable_and_keeps_lower_case_names(paths: list[str]) -> None:
    run, again = layout.RunLayout(paths), layout.RunLayout(reversed(paths))
    for path in paths:
        assert run.stem(path) == again.stem(path)
        if path == path.lower() and path != "con":
            assert run.stem(path) == layout.safe_path(path)


def test_case_clashes_get_a_hash_of_their_own_path() -> None:
    run = layout.RunLayout(["metrics/loss", "metrics/Loss"])
    digest = hashlib.sha256(b"metrics/Loss").hexdigest()[:8]
    assert run.field_file("metrics/loss", FieldType.FLOAT_SERIES) == PurePosixPath("metrics/loss.csv")
    assert run.field_file("metrics/Loss", FieldType.FLOAT_SERIES) == PurePosixPath(
        f"metrics/Loss~{digest}.csv"
    )
    assert layout.RunLayout(["metrics/Loss"]).field_file(
        "metrics/Loss", FieldType.FLOAT_SERIES
    ) == PurePosixPath("metrics/Loss.csv")  # no clash, no change


objects = st.tuples(st.sampled_from(["run", "model", "modelVersion", "project"]), names, names)


def _folder(obj: tuple[str, str, str]) -> PurePosixPath:
    kind, sys_id, model_id = obj
    return layout.container_dir("ws", "proj", sys_id, kind, model_id)


@given(objects, objects)
def test_objects_never_share_a_folder_or_nest_in_one_another_wrongly(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    fa, fb = _folder(a), _folder(b)
    same = a[0] == b[0] and a[1] == b[1] and (a[0] != "modelVersion" or a[2] == b[2])
    if a[0] == b[0] == "project":
        same = True  # one project folder per project
    assert (fa == fb) == same
    # Only a version sits inside another object's folder, and only in its model's.
    if fa != fb and fb.is_relative_to(fa):
        assert (a[0], b[0]) == ("model", "modelVersion") and a[1] == b[2]
        assert fb.parent.parent == fa and fb.parent.name == layout.VERSIONS_FOLDER


@given(st.lists(field_paths, unique=True, max_size=6))
def test_no_field_of_a_model_lands_in_its_versions_folder(paths: list[str]) -> None:
    model = layout.RunLayout([*paths, "_versions/x", "_VERSIONS"], reserved=[layout.VERSIONS_FOLDER])
    for path in [*paths, "_versions/x", "_VERSIONS"]:
        top = model.field_file(path, FieldType.FILE, "txt").parts[0]
        assert top.casefold() != layout.VERSIONS_FOLDER
    assert model.field_file("_versions/x", FieldType.FILE, "txt") == PurePosixPath("%5Fversions/x.txt")
