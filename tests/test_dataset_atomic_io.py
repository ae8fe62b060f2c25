"""Atomic writes: complete files or the old file, never a half-written one, and no temp files left over."""

import os
import stat

import pytest

from cpm_core.atomic_io import atomic_output, atomic_write_bytes, atomic_write_text


def test_write_text_creates_parent_and_readable_file(tmp_path):
    target = tmp_path / "sub" / "labels.json"
    atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["labels.json"]


def test_replace_keeps_the_old_files_mode(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("precious")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "precious"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_output_for_tools_that_open_the_file(tmp_path):
    target = tmp_path / "out.dat"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        assert not target.exists()
        tmp.write_bytes(b"x" * 10)
    assert target.read_bytes() == b"x" * 10
    assert os.listdir(tmp_path) == ["out.dat"]
