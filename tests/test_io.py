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
