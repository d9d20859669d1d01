"""Verify the local store: every blob's digest and every reference between records and content.

    check(store, repair=False) -> CheckReport

Checks: each blob re-hashes to its name; stray files under ``blobs/``; each image's config blob
exists, is valid and belongs to it, and each of its layers has a stored blob; tags and repo digests
point at existing images; layer rows point at existing blobs; snapshot directories are complete;
leftovers of dead processes in ``ingest/`` and ``tmp/``. With ``repair`` what is broken is removed
(corrupt blobs, images that lost their config or a layer, dangling rows, leftovers) and GC runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.errors import DockyardError
from dockyard.imageops import Store
from dockyard.oci.config import ImageConfig
from dockyard.oci.digest import Digest
from dockyard.snapshot import pid_of, process_alive

__all__ = ["CheckReport", "check"]


@dataclass(slots=True)
class CheckReport:
    """Problems found (one line each), what was repaired, notes, and how much was checked."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # harmless leftovers GC will remove
    blobs_checked: int = 0
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Store, repair: bool = False) -> CheckReport:
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
                content.delete(blob.digest)
                report.repaired.append(f"removed corrupt blob {blob.digest}")
    for path in content.stray_entries():
        report.problems.append(f"stray file in the content store: {path}")
        if repair:
            path.unlink(missing_ok=True) if not path.is_dir() else None
            report.repaired.append(f"removed {path}")

    broken_images: list[str] = []
    for record in meta.images():
        report.images_checked += 1
        image_id = str(record.id)
        reason = ""
        if image_id in corrupt or not content.exists(image_id):
            reason = "config blob is missing"
        else:
            try:
                config = ImageConfig.from_json(content.read(image_id), f"config of image {image_id}")
                if [str(d) for d in config.diff_ids] != [str(d) for d in record.diff_ids]:
                    reason = "layers recorded differ from its config"
            except DockyardError as exc:
                reason = f"config is invalid: {exc}"
        if not reason:
            for diff_id in record.diff_ids:
                forms = [f for f in meta.layer_blobs(diff_id)
                         if str(f.digest) not in corrupt and content.exists(f.digest)]
                if not forms:
                    reason = f"layer {diff_id} has no stored blob"
                    break
        if reason:
            report.problems.append(f"image {image_id}: {reason}")
            broken_images.append(image_id)
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
    for layer in meta.all_layer_blobs():
        if str(layer.digest) in corrupt or not content.exists(layer.digest):
            report.problems.append(f"layer {layer.diff_id}: blob {layer.digest} is missing")
            if repair:
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
    if repair:
        for image_id in broken_images:
            meta.delete_image(image_id)
            report.repaired.append(f"removed broken image {image_id}")
        from dockyard.imageops.gc import collect

        result = collect(store)
        if result.temp_removed:
            report.repaired.append(f"removed {result.temp_removed} leftover temporary files")
    return report
