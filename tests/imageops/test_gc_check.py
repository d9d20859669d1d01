"""GC from roots (images, leases, cache records) and ``check`` with and without repair."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.image import chain_ids
from dockyard.imageops.gc import collect
from dockyard.metadata import CacheRecord
from dockyard.oci.digest import Digest
from tests.content.storekit import (
    client,
    commit_forever,
    commit_many,
    gc_loop,
    make_image,
    make_tar,
    root,
    spawn_context,
)

__all__ = ["client", "root"]


def test_gc_keeps_what_images_reach_and_removes_the_rest(client: Client) -> None:
    store = client.store
    kept = make_image(client, [make_tar({"a": b"1"})], names=["keep"], compression="gzip")
    dangling = make_image(client, [make_tar({"b": b"2"})])  # untagged images are roots too
    orphan = store.content.ingest(b"nobody points here")
    client.unpack("keep")
    result = collect(store)
    assert result.blobs_removed == [orphan.digest]
    assert store.content.exists(kept.id) and store.content.exists(dangling.id)
    assert store.snapshots.exists(chain_ids(kept.diff_ids)[0])
    client.remove("keep")
    result = collect(store)
    assert not store.content.exists(kept.id)
    assert not store.snapshots.exists(chain_ids(kept.diff_ids)[0])
    assert store.meta.layer_blobs(kept.diff_ids[0]) == []


def test_leases_protect_work_in_flight_until_released_or_expired(client: Client) -> None:
    store = client.store
    with client.lease() as lease:
        layer = client.store_layer(make_tar({"x": b"in flight"}), lease=lease)
        blob = store.content.ingest(b"manifest", before_publish=lease.add_blob)
        collect(store)
        assert store.content.exists(layer.digest) and store.content.exists(blob.digest)
    collect(store)
    assert not store.content.exists(layer.digest) and not store.content.exists(blob.digest)
    short = store.lease(ttl=0.01)
    short.add_blob(store.content.ingest(b"expiring").digest)
    time.sleep(0.05)
    collect(store)
    assert list(store.content.walk()) == []


def test_leases_of_dead_processes_end(client: Client) -> None:
    store = client.store
    dead = store.lease(lease_id="lease-999999-0123abcd")  # no process 999999 runs
    dead.add_blob(store.content.ingest(b"orphaned work").digest)
    alive = store.lease()
    alive.add_blob(store.content.ingest(b"live work").digest)
    result = collect(store)
    assert result.blobs_removed == [Digest.from_bytes(b"orphaned work")]
    assert store.meta.lease_ids() == [alive.id]


def test_cache_records_are_roots(client: Client) -> None:
    store = client.store
    blob = store.content.ingest(b"cached result")
    store.meta.put_cache(CacheRecord("k", "blob", str(blob.digest)))
    collect(store)
    assert store.content.exists(blob.digest)
    store.meta.delete_cache("k")
    collect(store)
    assert not store.content.exists(blob.digest)


def test_dry_run_removes_nothing(client: Client) -> None:
    orphan = client.store.content.ingest(b"x")
    assert collect(client.store, dry_run=True).blobs_removed == [orphan.digest]
    assert client.store.content.exists(orphan.digest)


@pytest.mark.slow
def test_gc_in_another_process_never_breaks_a_commit(root: Path) -> None:
    Client(root).images()  # create the schema
    ctx = spawn_context()
    procs = [ctx.Process(target=commit_many, args=(str(root), p)) for p in ("p", "q")]
    procs.append(ctx.Process(target=gc_loop, args=(str(root), 4.0)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    c = Client(root)
    assert len(c.images()) == 30
    report = c.check()
    assert report.ok, report.problems


def test_check_finds_and_repairs_damage(client: Client) -> None:
    store = client.store
    good = make_image(client, [make_tar({"g": b"good"})], names=["good"])
    bad = make_image(client, [make_tar({"b": b"bad"})], names=["bad"])
    assert client.check().ok
    # Corrupt the layer of "bad", and leave a tag pointing nowhere.
    store.content.path(bad.diff_ids[0]).write_bytes(b"garbage")
    store.meta.set_tag("docker.io/library/ghost:latest", "sha256:" + "f" * 64)
    report = client.check()
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"blob {bad.diff_ids[0]}: content hashes to" in text
    assert f"image {bad.id}: layer {bad.diff_ids[0]} has no stored blob" in text
    assert "tag docker.io/library/ghost:latest: points to missing image" in text
    assert store.content.exists(bad.diff_ids[0])  # without repair nothing changes
    repaired = client.check(repair=True)
    assert f"moved corrupt blob {bad.diff_ids[0]} to the quarantine" in repaired.repaired
    assert "removed tag docker.io/library/ghost:latest" in repaired.repaired
    # Built here, so no registry to fetch it from: the image stays (never removed behind the user's
    # back), its blob stays in quarantine, and both are said.
    assert len(repaired.unrepaired) == 1
    assert repaired.unrepaired[0].startswith(f"image {bad.id} (docker.io/library/bad:latest): layer ")
    assert "pull it again or remove it" in repaired.unrepaired[0]
    assert sorted(str(s.id) for s in client.images()) == sorted([str(good.id), str(bad.id)])
    assert store.content.quarantined() == [bad.diff_ids[0]] and not store.content.exists(bad.diff_ids[0])
    again = client.check()
    assert f"blob {bad.diff_ids[0]}: corrupt, kept in quarantine" in "\n".join(again.problems)
    client.remove("bad")
    assert client.check(repair=True).unrepaired == []
    assert store.content.quarantined() == []  # nothing uses it any more
    assert client.check().ok
    assert [s.id for s in client.images()] == [good.id]


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3])
def test_sigkill_at_any_moment_leaves_a_consistent_store(root: Path, delay: float) -> None:
    Client(root).images()
    ready = root.parent / "ready"
    proc = spawn_context().Process(target=commit_forever, args=(str(root), str(ready)))
    proc.start()
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    c = Client(root)
    report = c.check()
    assert report.ok, report.problems
    for summary in c.images():  # everything committed is whole: it unpacks
        c.unpack(str(summary.id))
    c.gc()
    assert c.store.content.ingest_files() == []
    assert not (root / "snapshots" / "tmp").exists() or list((root / "snapshots" / "tmp").iterdir()) == []
    assert c.check().ok and c.check().notes == []


def test_gc_lock_taken_again_by_its_holder_opens_no_second_lock(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A build step takes the shared lock several times over, nested: one lock file descriptor.
    import fcntl
    import threading

    from dockyard.imageops import Store

    store = Store(tmp_path / "store")
    with store.gc_lock():  # not made yet: the first lock makes it
        pass
    assert (tmp_path / "store" / "gc.lock").is_file()
    opened: list[str] = []
    real_open = os.open

    def open_(path: str, *args: int) -> int:
        if str(path).endswith("gc.lock"):
            opened.append(str(path))
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", open_)
    taken = threading.Event()
    release = threading.Event()

    def other_thread() -> None:
        with store.gc_lock():  # another thread's shared hold is its own
            taken.set()
            release.wait(5)

    with store.gc_lock(), store.gc_lock(), store.gc_lock():
        assert len(opened) == 1
        thread = threading.Thread(target=other_thread)
        thread.start()
        assert taken.wait(5)
        assert len(opened) == 2
        # Still held (shared) after the inner holds end: a collector cannot take it.
        fd = real_open(str(tmp_path / "store" / "gc.lock"), os.O_RDWR | os.O_CLOEXEC)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            release.set()
            thread.join(5)
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = real_open(str(tmp_path / "store" / "gc.lock"), os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # all released
    finally:
        os.close(fd)
    with store.gc_lock(exclusive=True):
        assert len(opened) == 3
