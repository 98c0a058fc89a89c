"""load-wandb's names for Neptune fields (pure): injective ignoring case, reversible, and free
of what W&B reads in a key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from neptune_backup_async.to_wandb import naming


@given(st.text(max_size=200))
def test_the_escaping_is_reversible_and_leaves_nothing_wandb_reads(path: str) -> None:
    key = naming.encode(path)
    assert naming.decode(key) == path
    assert not key.startswith("_") and "." not in key and "*" not in key and "@" not in key
    assert all(segment for segment in key.split("/"))  # W&B drops an empty key


@given(st.lists(st.text(max_size=300), min_size=1, max_size=8, unique=True))
def test_keys_are_injective_ignoring_case_for_any_names(paths: list[str]) -> None:
    keys = naming.assign(paths, lambda path, key: [f"{key}.csv"])
    assert len({k.casefold() for k in keys.values()}) == len(paths)
    assert all(len(s.encode()) <= naming.MAX_SEGMENT_BYTES + 17 for k in keys.values() for s in k.split("/"))
    assert keys == naming.assign(list(reversed(paths)), lambda path, key: [f"{key}.csv"])


def test_tags_ids_and_projects_are_what_wandb_takes() -> None:
    tags = naming.tags(["gpu", "", "t" * 80, "a/b?"])
    assert "gpu" in tags and "a/b?" in tags and "" not in tags and all(1 <= len(t) <= 64 for t in tags)
    run_id = naming.run_id("ws/p", "RUN/1?")
    assert run_id.startswith("RUN_1_-") and run_id == naming.run_id("ws/p", "RUN/1?")
    assert run_id != naming.run_id("ws/q", "RUN/1?")
    assert naming.project_name("ws/my proj:1") == "ws-my proj_1"
