"""The questions asked on a terminal when --projects or --output is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_helpers import Terminal, cli_env, no_traceback
from neptune_backup_async.cli.prompt import check_destination, choose_projects, yes_or_no
from neptune_backup_async.testing import FakeNeptuneServer, World

PROJECTS = ["ws/a", "ws/b", "ws/c"]


@pytest.mark.parametrize(
    ("answer", "chosen"),
    [
        ("2", ["ws/b"]),
        ("3, 1", ["ws/c", "ws/a"]),
        ("1-2", ["ws/a", "ws/b"]),
        ("all", PROJECTS),
        (" ALL ", PROJECTS),
        ("ws/c,2", ["ws/c", "ws/b"]),
        ("ws/a 1", ["ws/a"]),  # said twice, backed up once
    ],
)
def test_projects_are_chosen_by_number_name_or_all(answer: str, chosen: list[str]) -> None:
    assert choose_projects(answer, PROJECTS) == chosen


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "Type the numbers or names of the projects, or 'all'."),
        ("4", "There is no project 4: the numbers go from 1 to 3."),
        ("0", "There is no project 0: the numbers go from 1 to 3."),
        ("2-9", "There is no project 2-9: the numbers go from 1 to 3."),
        ("2-1", "There is no project 2-1: the range is backwards; write 1-2."),
        ("ws/zzz", "'ws/zzz' is not one of the projects listed"),
        ("all,1", "'all' is not one of the projects listed"),
    ],
)
def test_a_bad_project_answer_says_what_to_type(answer: str, message: str) -> None:
    with pytest.raises(ValueError) as bad:
        choose_projects(answer, PROJECTS)
    assert str(bad.value).startswith(message)


def test_destination_answers(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    assert check_destination(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert check_destination("") == Path("neptune-backup")
    with pytest.raises(ValueError, match="a-file is a file; give a folder"):
        check_destination(str(tmp_path / "a-file"))
    inside = tmp_path / "a-file" / "inside"
    with pytest.raises(ValueError) as bad:
        check_destination(str(inside))
    assert str(bad.value) == f"Cannot create {inside}: {tmp_path / 'a-file'} is a file."
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert [yes_or_no(a) for a in ("y", "YES", "", "n", "No")] == [True, True, False, False, False]
    with pytest.raises(ValueError, match="Answer y or n"):
        yes_or_no("maybe")


def test_the_prompt_numbers_projects_re_asks_and_creates_nothing_before_valid_answers(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "a-file").write_text("")
    term = Terminal(["--quiet"], cli_env(server.api_token), home)
    try:
        projects = "Projects to back up (numbers or names, comma-separated; 1-3 for a range; or 'all'): "
        screen = term.read_until(projects)
        assert "  1  workspace-0/project-0\r\n  2  workspace-0/project-1\r\n" in screen
        # Each bad answer is followed by what is wrong, and the same question again.
        term.type("3")
        term.read_until("3\r\n  There is no project 3: the numbers go from 1 to 2.\r\n" + projects)
        term.type("workspace-0/nope")
        term.read_until(
            "  'workspace-0/nope' is not one of the projects listed: type its number or its full name"
            " (WORKSPACE/PROJECT), or 'all'.\r\n" + projects
        )
        term.type("2")
        output = "Where to write the backup [./neptune-backup]: "
        term.read_until(output)
        term.type("a-file/dest")
        term.read_until(f"  Cannot create a-file/dest: {home / 'a-file'} is a file.\r\n" + output)
        term.type("answers-dest")
        artifacts = "Download the files artifacts point to? [y/N]: "
        term.read_until(artifacts)
        term.type("perhaps")
        term.read_until("  Answer y or n.\r\n" + artifacts)
        # Every answer so far was checked, the bad ones asked again: nothing has been created.
        assert sorted(p.name for p in home.iterdir()) == ["a-file"]
        term.type("y")
        screen = term.read_to_end()
    finally:
        term.close()
    assert term.proc.returncode == 0, screen
    assert "4 of 4 runs backed up (0 unchanged, 0 failed)" in screen
    no_traceback(screen)
    dest = home / "answers-dest"
    project = demo_world.project("workspace-0/project-1")
    for run in project.runs:  # project 2 of the list, with the artifacts' files as answered
        assert (
            dest / "workspace-0" / "project-1" / run.sys_id / "datasets" / "train" / "part-0.bin"
        ).is_file()
    assert not (dest / "workspace-0" / "project-0").exists()


def test_the_prompt_takes_all_and_ends_cleanly_without_an_answer(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    term = Terminal(["--quiet"], cli_env(server.api_token), home)
    try:
        term.read_until("or 'all'): ")
        term.type("all")
        term.read_until("Where to write the backup [./neptune-backup]: ")
        os.write(term.master, b"\x04")  # Ctrl-D: no answer
        screen = term.read_to_end()
    finally:
        term.close()
    assert term.proc.returncode == 2
    assert "error: No answer given; nothing was backed up." in screen
    no_traceback(screen)
    assert list(home.iterdir()) == []


def test_a_folder_that_cannot_be_created_is_asked_again_and_ctrl_d_ends_on_a_new_line(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    term = Terminal(["--quiet", "--projects", "all"], cli_env(server.api_token), home)
    output = "Where to write the backup [./neptune-backup]: "
    try:
        term.read_until(output)
        term.type("/proc/nope/x")  # /proc exists, and even root cannot create a folder in it
        term.read_until("  Cannot create /proc/nope/x in /proc (")
        term.read_until("); choose another folder.\r\n" + output)
        os.write(term.master, b"\x04")  # Ctrl-D: no answer
        screen = term.read_to_end()
    finally:
        term.close()
    assert term.proc.returncode == 2
    assert "error: No answer given; nothing was backed up." in screen.splitlines()
    no_traceback(screen)
    assert list(home.iterdir()) == []
