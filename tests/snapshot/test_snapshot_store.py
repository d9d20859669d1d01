"""The snapshot store: atomic creation, concurrent creators, removal, leftovers of dead processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.snapshot import SnapshotStore, tree_size
from tests.content.storekit import root

__all__ = ["root"]

CHAIN = Digest("sha256:" + "1" * 64)


def test_create_exists_size_remove(root: Path) -> None:
    snaps = SnapshotStore(root / "snapshots")
    assert list(snaps.walk()) == []

    def fill(d: Path) -> None:
        (d / "etc").mkdir()
        (d / "etc" / "hostname").write_bytes(b"box\n")

    path = snaps.create(CHAIN, fill)
    assert path == snaps.path(CHAIN) and (path / "etc" / "hostname").read_bytes() == b"box\n"
    assert snaps.exists(CHAIN) and snaps.size(CHAIN) == 4
    assert snaps.create(CHAIN, lambda d: pytest.fail("filled twice")) == path
    assert [s.chain_id for s in snaps.walk()] == [CHAIN]
    assert snaps.remove(CHAIN) is True
    assert not snaps.exists(CHAIN) and not path.exists()
    assert snaps.remove(CHAIN) is False


def test_failed_fill_leaves_nothing(root: Path) -> None:
    snaps = SnapshotStore(root / "snapshots")

    def fill(d: Path) -> None:
        (d / "half").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        snaps.create(CHAIN, fill)
    assert not snaps.exists(CHAIN)
    assert list((root / "snapshots" / "tmp").iterdir()) == []


def test_read_only_dirs_are_removed(root: Path) -> None:
    snaps = SnapshotStore(root / "snapshots")

    def fill(d: Path) -> None:
        (d / "ro").mkdir()
        (d / "ro" / "f").write_bytes(b"x")
        os.chmod(d / "ro", 0o500)

    snaps.create(CHAIN, fill)
    assert snaps.remove(CHAIN)


def _make(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    snaps = SnapshotStore(path)
    barrier.wait()

    def fill(d: Path) -> None:
        for i in range(200):
            (d / f"f{i}").write_bytes(b"data")

    p = snaps.create(CHAIN, fill)
    assert len(list(p.iterdir())) == 200


def test_concurrent_creators_both_succeed(root: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_make, args=(str(root / "snapshots"), barrier)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    snaps = SnapshotStore(root / "snapshots")
    assert snaps.size(CHAIN) == 800
    assert list((root / "snapshots" / "tmp").iterdir()) == []


def test_clean_tmp_removes_only_dead_processes_leftovers(root: Path) -> None:
    snaps = SnapshotStore(root / "snapshots")
    tmp = root / "snapshots" / "tmp"
    tmp.mkdir(parents=True)
    dead = tmp / "new-0123.999999.abcd"  # pid 999999 does not run
    mine = tmp / f"new-0123.{os.getpid()}.abcd"
    dead.mkdir()
    mine.mkdir()
    removed = snaps.clean_tmp()
    assert removed == [dead] and mine.exists()
    os.utime(mine, (time.time() - 7200, time.time() - 7200))
    assert snaps.clean_tmp(max_age=3600) == [mine]


def test_size_counts_a_hard_linked_file_once(root: Path) -> None:
    snaps = SnapshotStore(root / "snapshots")

    def fill(d: Path) -> None:
        (d / "bin").mkdir()
        (d / "bin" / "busybox").write_bytes(b"x" * 1000)
        for name in ("sh", "ls", "cat"):  # busybox's applets: one inode, four names
            os.link(d / "bin" / "busybox", d / "bin" / name)
        (d / "other").write_bytes(b"y" * 10)
        os.symlink("bin/busybox", d / "sh")  # a symlink counts its target's length

    snaps.create(CHAIN, fill)
    assert snaps.size(CHAIN) == 1000 + 10 + len("bin/busybox")
    assert tree_size(snaps.path(CHAIN)) == snaps.size(CHAIN)
