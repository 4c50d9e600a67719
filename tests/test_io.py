"""Atomic writes: the old file or the new one, never a partial one, and no leftovers."""

import os
import stat

import pytest

from aiayn.errors import ConfigError
from aiayn.io import atomic_path, atomic_write_text, read_json_object


def test_atomic_write_replaces_whole_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_finished_file_follows_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_read_json_object_names_file_and_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(ConfigError, match=r"r.json:3: invalid JSON"):
        read_json_object(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        read_json_object(path)
    with pytest.raises(ConfigError, match="no such recipe"):
        read_json_object(tmp_path / "missing.json", "recipe")


def test_the_new_file_is_on_disk_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    """A power cut after the rename must not leave the new name on unflushed data: the
    temporary file is fsynced before `os.replace`, its directory after."""
    import aiayn.io

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(aiayn.io.os, "fsync", fsync)
    monkeypatch.setattr(aiayn.io.os, "replace", replace)
    path = tmp_path / "weights.bin"
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert events[0][1] == events[1][1] == str(tmp)  # the temporary file, flushed, renamed
    assert events[2][1] == str(tmp_path)  # then the directory that holds the new name
    assert path.read_bytes() == b"new"
