"""Garbage collection of the local store, from roots.

Roots: every image record (tagged or dangling), leases (until they expire or the process that took
them is gone), build cache records, and each tag's index (with its attestation manifests). From an
image: its config blob, its manifest blob (if stored), its repo-digest manifests (if stored), every
stored form of each of its layers (a layer kept only as a build's snapshot: that snapshot), and
the snapshot of each chain ID. Everything else in the content and snapshot stores is removed, as
are layer rows whose blob or snapshot is gone, expired leases and
leftovers of dead processes in ``ingest/`` and ``tmp/``, and the short links in ``l/`` whose target
is gone.

    collect(store, dry_run=False) -> GcResult
    dangling_links(store) -> [Path]; leftover_tmp(store) -> [Path]   (what ``check`` reports)

Runs under the store's exclusive GC lock, so a lease added (under the shared lock) before a blob is
checked or written is always seen.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.image import chain_ids
from dockyard.imageops import Store
from dockyard.imageops.layers import forget_lost_snapshot_forms
from dockyard.metadata import BLOB, IMAGE, SNAPSHOT
from dockyard.oci.digest import Digest
from dockyard.record import field, record
from dockyard.snapshot import pid_of, process_alive

__all__ = ["GcResult", "Roots", "collect", "dangling_links", "leftover_tmp", "roots"]


@record(slots=True)
class Roots:
    blobs: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)


@record(slots=True)
class GcResult:
    blobs_removed: list[Digest] = field(default_factory=list)
    snapshots_removed: list[Digest] = field(default_factory=list)
    bytes_freed: int = 0
    temp_removed: int = 0


def roots(store: Store) -> Roots:
    """Everything reachable from images, leases and cache records."""
    meta = store.meta
    out = Roots()
    images = {str(r.id): r for r in meta.images()}
    layer_forms: dict[str, list[str]] = {}
    for layer in meta.all_layer_blobs():
        layer_forms.setdefault(str(layer.diff_id), []).append(str(layer.digest))
    # A layer kept only as a build's snapshot: that snapshot is its stored form.
    backing: dict[str, list[str]] = {}
    for form in meta.all_layer_snapshots():
        backing.setdefault(str(form.diff_id), []).append(str(form.chain_id))

    def add_image(image_id: str) -> None:
        record = images.get(image_id)
        out.blobs.add(image_id)
        if record is None:
            # A config with no image record (a build cache step's result): its layers stay too.
            diff_ids = _config_diff_ids(store, image_id)
        else:
            if record.manifest_digest:
                out.blobs.add(record.manifest_digest)
            diff_ids = [str(d) for d in record.diff_ids]
        for diff_id in diff_ids:
            out.blobs.update(layer_forms.get(str(diff_id), ()))
            out.snapshots.update(backing.get(str(diff_id), ()))
        out.snapshots.update(str(c) for c in chain_ids(diff_ids))

    for image_id in images:
        add_image(image_id)
    for _name, digest, _image_id in meta.repo_digests():
        out.blobs.add(str(digest))
    for name, _image_id in meta.tags():
        index = meta.tag_index(name)
        if index:  # a multi-platform tag: its index and each platform's manifest
            from dockyard.imageops.attestations import attestation_blobs

            out.blobs.add(index)
            out.blobs.update(str(m.manifest_digest) for m in meta.tag_platforms(name))
            out.blobs.update(attestation_blobs(store, index))
    held = [(k, v) for k, v in meta.lease_resources()]
    held += [(c.kind, c.ref) for c in meta.cache_records()]
    for kind, key in held:
        if kind == BLOB:
            out.blobs.add(key)
            # A leased layer blob keeps its other stored forms too.
            for diff_id, forms in layer_forms.items():
                if key in forms or key == diff_id:
                    out.blobs.update(forms)
            out.snapshots.update(backing.get(key, ()))
        elif kind == SNAPSHOT:
            out.snapshots.add(key)
        elif kind == IMAGE:
            add_image(key)
    return out


def _config_diff_ids(store: Store, config_digest: str) -> list[str]:
    """The layers an image config lists; none when the blob is missing or not a config."""
    import json

    try:
        doc = json.loads(store.content.read(config_digest))
        ids = doc["rootfs"]["diff_ids"]
    except (OSError, ValueError, KeyError, TypeError, DockyardError):
        return []
    return [str(d) for d in ids] if isinstance(ids, list) else []


def collect(store: Store, *, dry_run: bool = False) -> GcResult:
    """Remove what no root reaches; return what was (or, with ``dry_run``, would be) removed."""
    result = GcResult()
    if not store.root.is_dir():
        return result
    with store.gc_lock(exclusive=True):
        if not dry_run:
            store.meta.expire_leases()
            for lease_id in store.meta.lease_ids():
                # A lease made by Store.lease() names its process: a dead one's work is over.
                parts = lease_id.split("-")
                if len(parts) == 3 and parts[0] == "lease" and parts[1].isdigit() \
                        and not process_alive(int(parts[1])):
                    store.meta.delete_lease(lease_id)
        reach = roots(store)
        for blob in store.content.walk():
            if str(blob.digest) in reach.blobs:
                continue
            result.blobs_removed.append(blob.digest)
            result.bytes_freed += blob.size
            if not dry_run:
                store.content.delete(blob.digest)
        for snap in store.snapshots.walk():
            if str(snap.chain_id) in reach.snapshots:
                continue
            result.snapshots_removed.append(snap.chain_id)
            result.bytes_freed += snap.size
            if not dry_run:
                store.snapshots.remove(snap.chain_id)
        if dry_run:
            return result
        with store.meta.transaction():
            for layer in store.meta.all_layer_blobs():
                # A quarantined blob's row stays: ``check --repair`` fetches it again by that digest.
                if not store.content.exists(layer.digest) and not store.content.is_quarantined(layer.digest):
                    store.meta.remove_layer_blob(layer.diff_id, layer.digest)
            forget_lost_snapshot_forms(store)  # a removed snapshot takes its layer form along
            store.meta.forget_pushed_layers()  # a push record of a layer no longer here says nothing
        result.temp_removed += len(store.content.clean_ingest())
        result.temp_removed += len(store.snapshots.clean_tmp())
        result.temp_removed += clean_tmp(store)
        for link in dangling_links(store):
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
                result.temp_removed += 1
    return result


def dangling_links(store: Store) -> list[Path]:
    """Symlinks under ``<root>/l`` whose target is gone (a killed build's scratch directory, a
    removed snapshot). A link that resolves is left alone: a running build may be about to mount it."""
    found: list[Path] = []
    try:
        entries = list(os.scandir(store.links_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.is_symlink() and not os.path.exists(entry.path):
            found.append(Path(entry.path))
    return found


def leftover_tmp(store: Store) -> list[Path]:
    """Entries of ``<root>/tmp`` and the snapshot store's ``tmp/`` whose process is gone."""
    found: list[Path] = []
    for tmp in (store.tmp_dir, store.snapshots.tmp_dir):
        if tmp.is_dir():
            found.extend(sorted(e for e in tmp.iterdir() if not process_alive(pid_of(e.name))))
    return found


def clean_tmp(store: Store) -> int:
    """Remove ``<root>/tmp`` entries whose owning process (pid in the name) has gone.

    Mounts a killed build left inside them are detached first, so nothing is deleted through them.
    """
    removed = 0
    if not store.tmp_dir.is_dir():
        return removed
    for entry in store.tmp_dir.iterdir():
        if process_alive(pid_of(entry.name)):
            continue
        # Only now (every build calls this, and most find nothing to clean).
        import shutil

        from dockyard.executor.cleanup import mounts_under
        from dockyard.executor.mount import MNT_DETACH, umount2

        for point in mounts_under(entry):
            with contextlib.suppress(OSError):
                umount2(point, MNT_DETACH)
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    return removed
