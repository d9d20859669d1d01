"""Garbage collection: mark what manifests hold on to, sweep the rest after a grace period.

Safe while the registry runs: a blob is only deleted when nothing marks it AND it has not been written,
mounted or referenced by a pushed manifest for ``grace`` seconds (every such event refreshes the blob's
mtime). A push in progress (blobs uploaded, manifest not yet put) therefore keeps its blobs, and an open
upload session is not a blob at all until it is committed. Sessions that received nothing for
``upload_ttl`` seconds are removed.
"""

from __future__ import annotations

import json
import time

from dockyard.record import field, record

from .storage import FilesystemStorage, Storage


@record
class GcReport:
    """What a collection found and did (or, with ``dry_run``, would do)."""

    marked: int = 0
    deleted_blobs: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_young: int = 0
    deleted_uploads: list[str] = field(default_factory=list)
    removed_links: int = 0
    swept_data: list[str] = field(default_factory=list)  # object stores: committed sessions no blob needs
    dry_run: bool = False


def _references(data: bytes) -> list[str]:
    try:
        manifest = json.loads(data)
    except ValueError:
        return []
    if not isinstance(manifest, dict):
        return []
    found = []
    config = manifest.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        found.append(config["digest"])
    for key in ("layers", "manifests", "blobs"):
        for item in manifest.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("digest"), str):
                found.append(item["digest"])
    return found


def expire_uploads(storage: Storage, upload_ttl: float, now: float | None = None,
                   dry_run: bool = False) -> list[str]:
    """Remove upload sessions that received no bytes for ``upload_ttl`` seconds; returns their ids."""
    now = time.time() if now is None else now
    expired = [u.id for u in storage.uploads() if now - u.updated > upload_ttl]
    if not dry_run:
        for upload_id in expired:
            storage.upload_delete(upload_id)
    return expired


def collect(storage: Storage, *, grace: float = 3600, upload_ttl: float = 24 * 3600,
            dry_run: bool = False, now: float | None = None) -> GcReport:
    """Run one mark-and-sweep over ``storage``; see the module docstring for what is kept."""
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    marked: set[str] = set()
    for repo in storage.repositories():
        for digest in storage.manifests(repo):
            marked.add(digest)
            try:
                marked.update(_references(storage.blob_read(digest)))
            except FileNotFoundError:
                continue
    report.marked = len(marked)
    deleted: set[str] = set()
    for info in list(storage.blobs()):
        if info.digest in marked:
            continue
        if now - info.mtime < grace:
            report.kept_young += 1
            continue
        # Look again right before deleting: a push may have refreshed it since the listing.
        fresh = storage.blob_stat(info.digest)
        if fresh is None or now - fresh.mtime < grace:
            continue
        report.deleted_blobs.append(info.digest)
        report.freed_bytes += info.size
        deleted.add(info.digest)
        if not dry_run:
            storage.blob_delete(info.digest)
    if not dry_run:
        for repo in storage.repositories():
            for digest in storage.linked_blobs(repo):
                if digest in deleted or storage.blob_stat(digest) is None:
                    storage.unlink_blob(repo, digest)
                    report.removed_links += 1
    report.deleted_uploads = expire_uploads(storage, upload_ttl, now, dry_run)
    sweep = getattr(storage, "sweep_data", None)
    if sweep is not None:
        report.swept_data = sweep(grace, now, dry_run)
    if not dry_run and isinstance(storage, FilesystemStorage):
        storage.clean_tmp(older_than=max(grace, 600))
    return report
