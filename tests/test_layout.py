"""The layout is the on-disk contract: safe, injective and stable for any name the server sends."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neptune_backup_async.disk import files
from neptune_backup_async.domain import FieldType
from neptune_backup_async.errors import LayoutError
from neptune_backup_async.format import layout

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
    assert layout.notebook_file("source_code/notebook") == PurePosixPath("source_code/notebook.ipynb")
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


# -- one object's fields never meet, ignoring case ----------------------------------------------

EXTS = [None, "a", "A", "_", "csv", "zip", "json", "artifact.json", "A~1", "%"]
# Each kind a field can have, with the files it then takes: a field has one kind, so two
# fields must never meet whichever kinds they have.
VARIANTS: list[tuple[FieldType, str | None]] = [
    (FieldType.FLOAT_SERIES, None),
    (FieldType.FILE_SET, None),
    (FieldType.ARTIFACT, None),
    (FieldType.IMAGE_SERIES, None),
    (FieldType.NOTEBOOK_REF, None),  # its checkpoint's .ipynb
    *((FieldType.FILE, ext) for ext in EXTS),
]
ARTIFACT_INNER = ["train.csv", "Train.csv", "index.json", "sub/x", "SUB/x"]


def _outputs(run: layout.RunLayout, path: str, kind: FieldType, ext: str | None) -> list[PurePosixPath]:
    """Every file the layout gives a field of this kind."""
    if kind is FieldType.ARTIFACT:
        return [run.field_file(path, kind), *run.artifact_files(path, ARTIFACT_INNER)]
    if kind is FieldType.IMAGE_SERIES:
        return [run.image_file(path, 0, "png"), run.image_file(path, 10, "PNG"), run.image_index(path)]
    if kind is FieldType.NOTEBOOK_REF:
        return [run.notebook_file(path)]
    return [run.field_file(path, kind, ext)]


def _assert_no_two_fields_meet(paths: list[str], reserved: tuple[str, ...] = ()) -> None:
    """Whatever kind each field has: one field per folded file path, one spelling per folded
    folder, and never one field's file where another's folder is."""
    files: dict[str, set[str]] = {}
    folders: dict[str, tuple[str, set[str]]] = {}
    for kind, ext in VARIANTS:
        run = layout.RunLayout(paths, reserved)  # one per kind: a field's own kinds never meet
        for path in paths:
            for rel in _outputs(run, path, kind, ext):
                posix = rel.as_posix()
                assert not rel.name.startswith(".") and ".." not in rel.parts and "." not in rel.parts, rel
                assert all(len(part.encode()) <= 255 for part in rel.parts), rel
                files.setdefault(posix.casefold(), set()).add(path)
                for parent in (posix[:i] for i, c in enumerate(posix) if c == "/"):
                    spelled, owners = folders.setdefault(parent.casefold(), (parent, set()))
                    assert spelled == parent, f"{parent} and {spelled} differ only in case"
                    owners.add(path)
    for folded, owners in files.items():
        assert len(owners) == 1, f"{sorted(owners)} share {folded}"
        in_folder = folders.get(folded, ("", set()))[1]
        assert not in_folder - owners, f"{folded} of {owners} is also the folder of {sorted(in_folder)}"
    assert not {f.split("/")[0] for f in [*files, *folders]} & {n.casefold() for n in reserved}


@pytest.mark.slow  # 2,800 names, each of every kind: seconds of CPU
def test_every_short_name_from_an_adversarial_alphabet_gets_a_path_of_its_own() -> None:
    alphabet = "aA~%./_"
    paths = ["".join(c) for n in range(1, 5) for c in itertools.product(alphabet, repeat=n)]
    assert len(paths) == 2800
    _assert_no_two_fields_meet(paths, reserved=("_versions",))
    # Without "/" no name is also a folder of others (which marks it), so our suffixes are
    # what tells these apart: "a" with the extension "a" against a field "a.a".
    _assert_no_two_fields_meet([p for p in paths if "/" not in p])


def test_the_names_of_the_issue_are_told_apart() -> None:
    run = layout.RunLayout(["metrics/loss", "metrics/Loss", "metrics/Loss~5082800c"])
    files = {p: run.field_file(p, FieldType.FLOAT_SERIES).as_posix() for p in run._stems}
    assert files == {
        "metrics/loss": "metrics/loss.csv",
        "metrics/Loss": "metrics/Loss~5082800c.csv",  # the hash of its path, as format 1 wrote it
        "metrics/Loss~5082800c": "metrics/Loss%7E5082800c.csv",  # our mark is never a name's
    }


def test_suffixes_we_add_never_meet_a_field_named_like_them() -> None:
    run = layout.RunLayout(
        ["loss", "loss.csv", "img", "img/index", "art", "art.artifact", "simple_metadata", "nb", "nb.ipynb"]
    )
    assert run.notebook_file("nb") == PurePosixPath("nb.ipynb")
    assert run.field_file("nb.ipynb", FieldType.FILE) != PurePosixPath("nb.ipynb")
    assert run.field_file("loss", FieldType.FLOAT_SERIES) == PurePosixPath("loss.csv")
    assert run.field_file("loss.csv", FieldType.FILE) != PurePosixPath("loss.csv")
    assert run.field_file("art.artifact", FieldType.FILE, "json") != run.field_file("art", FieldType.ARTIFACT)
    assert run.image_index("img") != run.field_file("img/index", FieldType.FILE, "json")
    assert run.field_file("simple_metadata", FieldType.FILE, "json") == PurePosixPath(
        "%73imple_metadata.json"
    )


def test_folders_that_differ_only_in_case_are_told_apart() -> None:
    run = layout.RunLayout(["metrics/loss", "Metrics/acc", "METRICS/x/y"])
    parts = {run.stem(p).parts[0] for p in ["metrics/loss", "Metrics/acc", "METRICS/x/y"]}
    assert len({p.casefold() for p in parts}) == 3 and "metrics" in parts


segments = st.one_of(
    st.sampled_from(
        ["a", "A", "loss", "Loss", "x.csv", "index", "0", "_versions", "simple_metadata", "~", "%", "."]
    ),
    st.text(alphabet="aAbB~%._-é\u0301ßS", max_size=6),
)
adversarial_paths = st.lists(segments, min_size=1, max_size=3).map("/".join)


@pytest.mark.slow  # seconds of CPU
@settings(deadline=None, max_examples=40)
@given(st.lists(adversarial_paths, min_size=1, max_size=4, unique=True))
def test_file_names_fed_back_as_field_names_get_paths_of_their_own(paths: list[str]) -> None:
    produced = []
    for kind, ext in VARIANTS:
        run = layout.RunLayout(paths)
        produced += [rel.as_posix() for p in paths for rel in _outputs(run, p, kind, ext)]
    fed_back = list(dict.fromkeys([*paths, *produced, *(p.upper() for p in produced)]))
    _assert_no_two_fields_meet(fed_back)


def test_long_names_sharing_a_250_character_prefix_stay_apart_and_fit() -> None:
    prefix = "x" * 250
    crafted = layout.safe_segment("x" * 300)  # a name that looks like a shortened one
    names = [prefix, prefix + "y", prefix + "Y", prefix + "~", prefix + ".csv", "x" * 300, crafted, "x" * 199]
    segs = [layout.safe_segment(n) for n in names]
    assert len({s.casefold() for s in segs}) == len(names)
    assert all(len(s.encode()) <= layout.MAX_SEGMENT_BYTES for s in segs)
    # As run ids: two runs never share a folder.
    folders = {layout.container_dir("ws", "p", n).as_posix().casefold() for n in names}
    assert len(folders) == len(names)
    # As fields, with every suffix and the temporary name of each file within NAME_MAX.
    paths = [f"m/{n}" for n in names]
    _assert_no_two_fields_meet(paths)
    run = layout.RunLayout(paths)
    for p in paths:
        rel = run.field_file(p, FieldType.FILE, "e" * 100)
        temp = files.temp_name(rel, "shard-16-of-16-4194304-123456789")
        assert len(temp.name.encode()) <= 255 and temp.name.endswith(files.TEMP_SUFFIX)


def test_the_layout_refuses_to_give_one_path_to_two_fields() -> None:
    run = layout.RunLayout(["a", "b"])
    run.claim("a", PurePosixPath("x/Loss.csv"))
    with pytest.raises(LayoutError, match=r"'b' would be saved as x/loss\.csv, which meets 'a'"):
        run.claim("b", PurePosixPath("x/loss.csv"))
    with pytest.raises(LayoutError, match="meets 'the folder x'"):
        run.claim("b", PurePosixPath("X/other.csv"))
    with pytest.raises(LayoutError):
        run.claim("b", PurePosixPath("x/Loss.csv/inside"))
    run.claim("a", PurePosixPath("x/Loss.csv"))  # the same field again (a retry) is fine


def test_a_notebook_refs_earlier_files_are_its_ref_alone_or_its_checkpoint_where_the_layout_puts_it() -> None:
    run = layout.RunLayout(["nb", "nb.ipynb"])
    kind = FieldType.NOTEBOOK_REF.value
    assert run.files_of("nb", kind, [layout.SIMPLE_METADATA], None)  # saved before, or refused
    assert run.files_of("nb", kind, ["nb.ipynb"], None)
    assert not run.files_of("nb", kind, ["other.ipynb"], None)
    assert not run.files_of("nb", kind, [], None)
    assert not run.files_of("f", FieldType.FLOAT.value, ["f.ipynb"], None)
