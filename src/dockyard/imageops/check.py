"""Verify the local store: every blob's digest and every reference between records and content.

    check(store, repair=False, registry=None) -> CheckReport

Checks: each blob re-hashes to its name; blobs in quarantine (found corrupt by an export or a check);
stray files under ``blobs/``; each image's config blob exists, is valid and belongs to it, and each of
its layers has a stored blob (or the snapshot a build kept it as, whose tar is written again and
must hash to the diff ID); tags and repo digests point at existing images; layer rows point at
existing blobs or snapshots; snapshot directories are complete; leftovers of dead processes in ``ingest/`` and
``tmp/``; dangling short links in ``l/``. With ``repair``: corrupt blobs go to the quarantine, what
an image lost is fetched again from the registry it was pulled from or pushed to (``registry``),
quarantined blobs nothing uses any more, dangling rows and leftovers are removed, and GC runs. An
image is never removed: one that stays broken is reported as not repaired, for its owner to pull
again or remove.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError
from dockyard.imageops import Store
from dockyard.imageops.gc import dangling_links, leftover_tmp
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.record import field, record
from dockyard.snapshot import pid_of, process_alive

if TYPE_CHECKING:
    from dockyard.registry.client import RegistryClient

__all__ = ["CheckReport", "check"]


@record(slots=True)
class CheckReport:
    """Problems found (one line each), what was repaired, notes, and how much was checked."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)  # with repair: what is still broken, and why
    notes: list[str] = field(default_factory=list)  # harmless leftovers GC will remove
    blobs_checked: int = 0
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Store, repair: bool = False, registry: RegistryClient | None = None) -> CheckReport:
    """Check ``store``; with ``repair``, fix what can be fixed (``registry`` re-fetches lost blobs)."""
    report = CheckReport()
    if not store.root.is_dir():
        return report
    meta, content = store.meta, store.content
    corrupt: set[str] = set()
    for blob in content.walk():
        report.blobs_checked += 1
        try:
            actual = content.verify(blob.digest)
        except OSError as exc:
            actual = Digest("sha256:" + "0" * 64)
            report.problems.append(f"blob {blob.digest}: unreadable: {exc.strerror}")
        if actual != blob.digest:
            corrupt.add(str(blob.digest))
            report.problems.append(f"blob {blob.digest}: content hashes to {actual}")
            if repair:
                content.quarantine(blob.digest)
                report.repaired.append(f"moved corrupt blob {blob.digest} to the quarantine")
    for digest in content.quarantined():
        if str(digest) not in corrupt:
            corrupt.add(str(digest))
            report.problems.append(f"blob {digest}: corrupt, kept in quarantine at "
                                   f"{content.quarantine_path(digest)}")
    for path in content.stray_entries():
        report.problems.append(f"stray file in the content store: {path}")
        if repair:
            path.unlink(missing_ok=True) if not path.is_dir() else None
            report.repaired.append(f"removed {path}")
    if repair:
        _refetch_lost(store, registry, corrupt, report)

    backed = _check_snapshot_forms(store, repair, report)
    broken_images: dict[str, str] = {}
    for stored in meta.images():
        report.images_checked += 1
        image_id = str(stored.id)
        reason = ""
        if image_id in corrupt or not content.exists(image_id):
            reason = "config blob is missing" if image_id not in corrupt else "config blob is corrupt"
        else:
            try:
                config = ImageConfig.from_json(content.read(image_id), f"config of image {image_id}")
                if [str(d) for d in config.diff_ids] != [str(d) for d in stored.diff_ids]:
                    reason = "layers recorded differ from its config"
            except DockyardError as exc:
                reason = f"config is invalid: {exc}"
        if not reason:
            for diff_id in stored.diff_ids:
                if not any(str(f.digest) not in corrupt and content.exists(f.digest)
                           for f in meta.layer_blobs(diff_id)) and str(diff_id) not in backed:
                    reason = f"layer {diff_id} has no stored blob"
                    break
        if reason:
            report.problems.append(f"image {image_id}: {reason}")
            broken_images[image_id] = reason
    for name, image_id in meta.tags():
        if meta.get_image(image_id) is None:
            report.problems.append(f"tag {name}: points to missing image {image_id}")
            if repair:
                meta.remove_tag(name)
                report.repaired.append(f"removed tag {name}")
    for name, digest, image_id in meta.repo_digests():
        if meta.get_image(image_id) is None:
            report.problems.append(f"repo digest {name}@{digest}: points to missing image {image_id}")
            if repair:
                meta.remove_repo_digest(name, digest)
                report.repaired.append(f"removed repo digest {name}@{digest}")
    # Layer rows of images kept broken stay: they say what to fetch again once a source is known.
    broken_layers = {str(d) for i in broken_images for d in _diff_ids(store, i)}
    for layer in meta.all_layer_blobs():
        if content.exists(layer.digest):
            continue
        if content.is_quarantined(layer.digest):
            report.problems.append(f"layer {layer.diff_id}: blob {layer.digest} is corrupt (in quarantine)")
            continue  # the row says where to fetch it from again: keep it
        report.problems.append(f"layer {layer.diff_id}: blob {layer.digest} is missing")
        if repair and str(layer.diff_id) not in broken_layers:
            meta.remove_layer_blob(layer.diff_id, layer.digest)
            report.repaired.append(f"forgot layer blob {layer.digest}")
    for path in store.snapshots.incomplete():
        report.problems.append(f"incomplete snapshot directory {path}")
        if repair:
            store.snapshots.remove(f"{path.parent.name}:{path.name}")
            report.repaired.append(f"removed {path}")
    # A process killed mid-write leaves a private temp file: garbage, not damage.
    for path in content.ingest_files():
        if not process_alive(pid_of(path.name)):
            report.notes.append(f"leftover ingest file {path.name} (its writer is gone; GC removes it)")
    for path in leftover_tmp(store):
        report.notes.append(f"leftover temporary {'directory' if path.is_dir() else 'file'} {path} "
                            "(its process is gone; GC removes it)")
    for path in dangling_links(store):
        try:
            report.notes.append(f"dangling link {path} -> {os.readlink(path)} (GC removes it)")
        except OSError:  # removed meanwhile (a GC in another process)
            continue
    if repair:
        for image_id, reason in broken_images.items():
            names = meta.tags_for(image_id)
            label = f"{image_id} ({', '.join(names)})" if names else image_id
            report.unrepaired.append(f"image {label}: {reason}; pull it again or remove it (rmi)")
        _drop_unused_quarantine(store, report)
        from dockyard.imageops.gc import collect

        result = collect(store)
        if result.temp_removed:
            report.repaired.append(f"removed {result.temp_removed} leftover temporary files")
    return report


def _check_snapshot_forms(store: Store, repair: bool, report: CheckReport) -> set[str]:
    """Layers kept only as a build's snapshot: each snapshot must still make the layer's tar (it is
    written again and hashed); a row whose snapshot is gone is reported (and, with ``repair``,
    forgotten). Returns the diff IDs whose snapshot makes them."""
    from dockyard.imageops.layers import RegeneratedLayer

    good: set[str] = set()
    for form in store.meta.all_layer_snapshots():
        if str(form.diff_id) in good:
            continue
        if not store.snapshots.exists(form.chain_id):
            report.problems.append(f"layer {form.diff_id}: its snapshot {form.chain_id} is missing")
            if repair:
                store.meta.remove_layer_snapshot(form.diff_id, form.chain_id)
                report.repaired.append(f"forgot snapshot {form.chain_id} as a form of layer {form.diff_id}")
            continue
        report.blobs_checked += 1
        try:
            with RegeneratedLayer(store, form) as reader:
                while reader.read(1 << 20):
                    pass
        except DockyardError as exc:
            report.problems.append(str(exc))
            continue
        good.add(str(form.diff_id))
    return good


def _diff_ids(store: Store, image_id: str) -> list[Digest]:
    record = store.meta.get_image(image_id)
    return list(record.diff_ids) if record is not None else []


def _lost_blobs(store: Store, image_id: str, corrupt: set[str]) -> list[Descriptor]:
    """What ``image_id`` needs back: its config, and one form of each layer none of whose forms is left."""
    content, meta = store.content, store.meta
    record = meta.get_image(image_id)
    assert record is not None
    lost: list[Descriptor] = []
    if not content.exists(image_id):
        lost.append(Descriptor(mt.OCI_CONFIG, Digest(image_id), -1))
    for diff_id in record.diff_ids:
        forms = meta.layer_blobs(diff_id)
        if forms and not any(content.exists(f.digest) for f in forms):
            form = next((f for f in forms if str(f.digest) in corrupt), forms[0])
            lost.append(Descriptor(form.media_type, form.digest, form.size))
    return lost


def _refetch_lost(store: Store, registry: RegistryClient | None, corrupt: set[str],
                  report: CheckReport) -> None:
    """Fetch what each image lost again from the registry it came from (dropping those from ``corrupt``)."""
    from dockyard.imageops.refetch import refetch

    for stored in store.meta.images():
        lost = _lost_blobs(store, str(stored.id), corrupt)
        if not lost:
            continue
        if registry is None:
            report.notes.append(f"image {stored.id}: lost blobs not fetched again (no registry client)")
            continue
        result = refetch(store, registry, str(stored.id), lost)
        for digest, source in result.fetched:
            corrupt.discard(str(digest))  # a good copy is in place now
            report.repaired.append(f"fetched blob {digest} again from {source}")
        for digest, why in result.failed.items():
            report.notes.append(f"blob {digest} of image {stored.id} could not be fetched again: {why}")


def _drop_unused_quarantine(store: Store, report: CheckReport) -> None:
    """Quarantined blobs with a good copy back, or that no image needs any more, are deleted."""
    meta, content = store.meta, store.content
    needed: set[str] = set()
    for stored in meta.images():
        needed.add(str(stored.id))
        needed.add(str(stored.manifest_digest))
        for diff_id in stored.diff_ids:
            needed.update(str(f.digest) for f in meta.layer_blobs(diff_id))
    for digest in content.quarantined():
        if content.exists(digest) or str(digest) not in needed:
            content.unquarantine(digest)
            layer = meta.layer_by_blob(digest)
            if layer is not None and not content.exists(digest):
                meta.remove_layer_blob(layer.diff_id, digest)
            why = "a good copy is back" if content.exists(digest) else "nothing uses it"
            report.repaired.append(f"removed quarantined blob {digest} ({why})")
