"""A layer a build commits is on disk once: as its snapshot. Its tar (the diff ID's bytes) is written
again from the snapshot, verified, when a save, push or export needs it; GC drops both together."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.builder import workspace
from dockyard.builder.prune import prune_cache
from dockyard.client import Client
from dockyard.errors import CorruptData
from dockyard.image import chain_ids
from dockyard.imageops.check import check
from dockyard.imageops.commit import layer_blob
from dockyard.imageops.gc import collect
from dockyard.imageops.layers import RegeneratedLayer, has_layer, open_form, stored_forms
from dockyard.imageops.save import SaveItem, save
from dockyard.snapshot import tree_size
from tests.builder.conftest import Builds, busybox_tar

BASE = "FROM busybox:local\n"
EPOCH = 1_700_000_000


def _files(n: int = 120, size: int = 24_000) -> dict[str, str | bytes]:
    """About 3 MB in ``n`` files over a few directories (random: no compression helps)."""
    files: dict[str, str | bytes] = {f"d{i % 6}/f{i}.bin": os.urandom(size) for i in range(n)}
    files["d0/small.txt"] = "hello\n"
    return files


def _context(builds: Builds) -> Path:
    return builds.context(BASE + "COPY . /app\nRUN ln -s /app/d0/small.txt /link && rm /bin/vi\n",
                          _files())


def _content_bytes(root: Path) -> int:
    blobs = root / "content" / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file())


@contextlib.contextmanager
def _other_client(name: str) -> Iterator[Client]:
    root = Path("/dev/shm") / f"dy-once-{name}-{os.getpid()}-{os.urandom(4).hex()}"
    c = Client(root)
    try:
        with open(busybox_tar(), "rb") as f:
            c.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
        yield c
    finally:
        c.close()
        subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _blob_commit(self: workspace.Workspace, upper: Path, parent_chain: object, *,
                 mtime_clamp: int | None = None) -> contextlib.AbstractContextManager[workspace.Committed]:
    """The commit as it was: the layer tar written into the content store as a blob."""
    return self._commit_blob(upper, parent_chain, mtime_clamp,  # type: ignore[arg-type]
                             empty=not workspace._has_entries(upper))


def _save_bytes(client: Client, image: str, tmp: Path) -> bytes:
    out = tmp / f"save-{uuid.uuid4().hex[:6]}.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        save(client.store, [SaveItem(client.resolve(image), [image])], fd)
    finally:
        os.close(fd)
    return out.read_bytes()


def _saved_blobs(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        return {"sha256:" + m.name.rsplit("/", 1)[1]: tf.extractfile(m).read()  # type: ignore[union-attr]
                for m in tf.getmembers() if m.name.startswith("blobs/sha256/") and m.isfile()}


def test_a_built_layer_is_kept_once_as_its_snapshot(builds: Builds) -> None:
    store = builds.client.store
    ctx = _context(builds)
    context_bytes = sum(p.stat().st_size for p in ctx.rglob("*") if p.is_file())
    before = _content_bytes(store.root)
    builds.build(ctx, tags=["once:1"])
    config = builds.client.image_config("once:1")
    added = _content_bytes(store.root) - before
    # Configs and the 1 KiB empty layer only: no layer tar of the 3 MB copied.
    assert added < context_bytes // 20, (added, context_bytes)
    copy_layer = config.diff_ids[-2]
    assert store.meta.layer_blobs(copy_layer) == []  # no blob form at all
    (form,) = store.meta.layer_snapshots(copy_layer)
    chain = chain_ids(config.diff_ids)[-2]
    assert form.chain_id == chain and form.content_size == tree_size(store.snapshots.path(chain))
    assert has_layer(store, copy_layer)
    (backed,) = stored_forms(store, copy_layer)
    assert backed.digest == copy_layer and backed.size > context_bytes
    # The tar written again hashes to the diff ID (open_form verifies it as it streams).
    reader, size = open_form(store, copy_layer)
    with reader:
        data = reader.read()
    assert len(data) == size == backed.size
    # docker's sizes of the image are those of the snapshot-backed layers
    assert builds.client.image_record("once:1").size >= context_bytes
    # a rebuild is all cache hits: the snapshot-backed layers count as present
    again = builds.build(ctx, tags=["once:2"])
    assert again.cached == again.steps
    assert check(store).ok


def test_save_and_compressed_forms_match_the_stored_blob_path(builds: Builds, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(builds)
    builds.build(ctx, tags=["same:1"], source_date_epoch=EPOCH)
    new = builds.client
    diff_ids = new.image_config("same:1").diff_ids
    assert not any(new.store.content.exists(d) for d in diff_ids[1:])  # built layers: no blob
    with _other_client("old") as old:
        monkeypatch.setattr(workspace.Workspace, "commit", _blob_commit)
        result = Builds(old, tmp_path / "old").build(ctx, tags=["same:1"], source_date_epoch=EPOCH)
        monkeypatch.undo()
        # (the configs differ only in the base's import time)
        assert old.image_config(result.image_id).diff_ids == diff_ids
        assert all(old.store.content.exists(d) for d in diff_ids)  # the old path stored every tar
        # `save` writes the tars again from the snapshots: byte for byte the stored blobs
        saved_new = _saved_blobs(_save_bytes(new, "same:1", tmp_path))
        saved_old = _saved_blobs(_save_bytes(old, "same:1", tmp_path))
        for diff_id in diff_ids:
            assert saved_new[diff_id] == saved_old[diff_id] == old.store.content.read(diff_id)
        for diff_id in diff_ids[1:]:
            for compression in ("gzip", "zstd"):
                made = layer_blob(new.store, diff_id, compression)
                assert made.digest == layer_blob(old.store, diff_id, compression).digest
                assert made.uncompressed_size == len(saved_old[diff_id])
        # asked for the uncompressed blob itself, the layer gets one (verified)
        plain = layer_blob(new.store, diff_ids[-2], "none")
        assert plain.digest == diff_ids[-2] and new.store.content.exists(plain.digest)


def _tamper(builds: Builds, image: str) -> str:
    """Change one byte of one file in the snapshot of the image's COPY layer; its diff ID."""
    store = builds.client.store
    config = builds.client.image_config(image)
    chain = chain_ids(config.diff_ids)[-2]
    victim = store.snapshots.path(chain) / "app" / "d1" / "f1.bin"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    return str(config.diff_ids[-2])


def test_a_changed_snapshot_is_never_saved_as_the_layer(builds: Builds, tmp_path: Path) -> None:
    builds.build(_context(builds), tags=["bad:1"])
    diff_id = _tamper(builds, "bad:1")
    out = tmp_path / "bad.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with pytest.raises(CorruptData) as caught:
            save(builds.client.store, [SaveItem(builds.client.resolve("bad:1"), ["bad:1"])], fd)
    finally:
        os.close(fd)
    message = str(caught.value)
    assert diff_id in message and "snapshot" in message and "\n" not in message
    # the archive stops short of the layer's end: no whole wrong tar in it
    written = out.read_bytes()
    header = written.find(f"blobs/sha256/{diff_id.removeprefix('sha256:')}".encode())
    assert header > 0
    assert len(written) - header - 512 < builds.client.store.meta.layer_snapshots(diff_id)[0].size
    with pytest.raises(CorruptData, match="snapshot"):
        layer_blob(builds.client.store, diff_id, "gzip")
    assert not any(f.media_type.endswith("gzip") for f in builds.client.store.meta.layer_blobs(diff_id))
    report = check(builds.client.store)
    assert any(diff_id in p and "snapshot" in p for p in report.problems), report.problems


def test_gc_keeps_the_snapshot_of_a_kept_layer_and_drops_both_together(builds: Builds) -> None:
    store = builds.client.store
    ctx = _context(builds)
    builds.build(ctx, tags=["gc:1"])
    config = builds.client.image_config("gc:1")
    rows = store.meta.all_layer_snapshots()
    assert {str(r.diff_id) for r in rows} >= {str(d) for d in config.diff_ids[1:]}
    prune_cache(store, all=True)
    collect(store)  # the image holds them: its layers' snapshots stay, and so do the rows
    for diff_id in config.diff_ids[1:]:
        assert has_layer(store, diff_id)
    assert check(store).ok
    builds.client.remove("gc:1")
    prune_cache(store, all=True)
    collect(store)
    assert store.meta.all_layer_snapshots() == []
    for diff_id, chain in zip(config.diff_ids[1:], chain_ids(config.diff_ids)[1:], strict=True):
        assert not store.snapshots.exists(chain) and not has_layer(store, diff_id)


def test_a_snapshot_gone_takes_its_layer_form_along(builds: Builds) -> None:
    store = builds.client.store
    builds.build(_context(builds), tags=["lost:1"])
    config = builds.client.image_config("lost:1")
    chain = chain_ids(config.diff_ids)[-2]
    store.snapshots.remove(chain)  # as if lost: the image now lacks that layer
    diff_id = config.diff_ids[-2]
    assert not has_layer(store, diff_id) and stored_forms(store, diff_id) == []
    report = check(store)
    assert f"image {builds.client.resolve('lost:1')}: layer {diff_id} has no stored blob" in report.problems
    assert any("snapshot" in p and "missing" in p for p in report.problems)


@pytest.mark.registry
def test_push_of_snapshot_backed_layers_and_of_a_changed_one(builds: Builds) -> None:
    from dockyard.imageops.push import push
    from dockyard.oci.reference import parse_normalized
    from dockyard.registry.client import RegistryClient, RegistryOptions
    from tests.registry.client.peers import PLAIN, delete_blob, start_peer_registries

    start_peer_registries()
    store = builds.client.store
    builds.build(_context(builds), tags=["pushed:1"])
    diff_ids = builds.client.image_config("pushed:1").diff_ids
    repo = f"{PLAIN}/dytest/once-{uuid.uuid4().hex[:8]}"
    with RegistryClient(RegistryOptions(backoff=0.01)) as rc:
        good = push(store, rc, parse_normalized(f"{repo}:good"), source="pushed:1")
        assert set(good.layers.values()) == {"uploaded"}
        with _other_client("pull") as other:
            from dockyard.imageops.pull import pull

            got = pull(other.store, rc, parse_normalized(f"{repo}:good"))
            assert got.image_id == str(builds.client.resolve("pushed:1"))
            assert other.image_config(got.image_id).diff_ids == diff_ids
        diff_id = _tamper(builds, "pushed:1")
        # The first push kept no compressed copy, only its digest; with the blob gone from the
        # registry too, the layer must be written again from its (now changed) snapshot.
        pushed = store.meta.pushed_layer(diff_id, "gzip")
        assert pushed is not None and not store.content.exists(pushed[0])
        delete_blob(parse_normalized(repo).path, pushed[0])
        with pytest.raises(CorruptData, match="snapshot"):
            push(store, rc, parse_normalized(f"{repo}:bad"), source="pushed:1")
        with pytest.raises(Exception, match=r"(?i)unknown|not found|manifest"):
            rc.repository(PLAIN, parse_normalized(f"{repo}:bad").path).get_manifest("bad")


def test_a_reader_closed_early_stops_writing_the_tar(builds: Builds) -> None:
    builds.build(_context(builds), tags=["early:1"])
    diff_id = builds.client.image_config("early:1").diff_ids[-2]
    reader, size = open_form(builds.client.store, diff_id)
    assert isinstance(reader, RegeneratedLayer)
    with reader:
        assert len(reader.read(1000)) == 1000 < size
    assert not reader._thread.is_alive()


def test_a_commit_whose_transaction_never_ends_leaves_no_row(builds: Builds) -> None:
    # The row naming the snapshot commits with the step's transaction, after the snapshot is in
    # place: a failure (or a kill) before then leaves a snapshot nothing names, which GC removes.
    store = builds.client.store
    with store.lease() as lease:
        ws = workspace.Workspace(store, lease)
        upper = ws.new_dir("upper")
        (upper / "f").write_bytes(os.urandom(5000))
        with pytest.raises(RuntimeError), ws.commit(upper, None) as committed:
            assert store.snapshots.exists(committed.chain_id)
            assert store.meta.layer_snapshots(committed.layer.diff_id)  # inside the transaction
            raise RuntimeError("killed")
        ws.close()
    assert store.meta.all_layer_snapshots() == []
    collect(store)
    assert not store.snapshots.exists(committed.chain_id)
    # done again, it holds
    with store.lease() as lease:
        ws = workspace.Workspace(store, lease)
        upper = ws.new_dir("upper")
        (upper / "f").write_bytes(b"once")
        with ws.commit(upper, None) as committed:
            pass
        ws.close()
        (form,) = store.meta.layer_snapshots(committed.layer.diff_id)
        reader, _ = open_form(store, form.diff_id)
        with reader:
            assert b"once" in reader.read()


def test_the_cli_says_so_in_one_line(builds: Builds, tmp_path: Path) -> None:
    import sys

    builds.build(_context(builds), tags=["cli:1"])
    diff_id = _tamper(builds, "cli:1")

    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(builds.client.root), *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DOCKYARD_DEBUG": ""})

    saved = dockyard("save", "-o", str(tmp_path / "cli.tar"), "cli:1")
    assert saved.returncode != 0
    lines = saved.stderr.strip().splitlines()
    assert len(lines) == 1 and diff_id in lines[0] and "snapshot" in lines[0], saved.stderr
    checked = dockyard("system", "check")
    assert checked.returncode != 0 and diff_id in checked.stdout + checked.stderr
