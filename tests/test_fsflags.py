"""``fsflags``: the stores' scratch directories spread new directories over ext4's block groups."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

import pytest

from dockyard.fsflags import spread_subdirectories
from dockyard.imageops import Store

TOPDIR = 0x00020000


def flags(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, 0x80086601, struct.pack("i", 0)))[0])
    except OSError:
        return None
    finally:
        os.close(fd)


@pytest.fixture
def ext4_dir(tmp_path: Path) -> Path:
    if flags(tmp_path) is None:
        pytest.skip("the test's directory is on a filesystem without inode flags")
    return tmp_path


def test_the_stores_scratch_directories_are_tops_of_hierarchies(ext4_dir: Path) -> None:
    store = Store(ext4_dir / "store", fsync=False)
    store.make_tmp("build")
    assert flags(store.tmp_dir) & TOPDIR  # type: ignore[operator]
    store.snapshots.create("sha256:" + "1" * 64, lambda d: (d / "f").write_text("x"))
    assert flags(store.snapshots.tmp_dir) & TOPDIR  # type: ignore[operator]
    assert not flags(store.root) & TOPDIR  # type: ignore[operator]


def test_other_flags_are_kept_and_a_second_call_changes_nothing(ext4_dir: Path) -> None:
    before = flags(ext4_dir)
    assert before is not None
    spread_subdirectories(ext4_dir)
    spread_subdirectories(ext4_dir)
    assert flags(ext4_dir) == before | TOPDIR


def test_a_filesystem_without_flags_or_a_missing_directory_is_no_error(tmp_path: Path) -> None:
    spread_subdirectories(tmp_path / "missing")
    if os.path.isdir("/dev/shm"):
        spread_subdirectories("/dev/shm")  # tmpfs: refused, quietly
