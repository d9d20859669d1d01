"""Unpack an image's layers into the snapshot store and give the overlay lowerdirs.

    unpack(store, image_id, lease=None, progress=None) -> list[Path]      top layer first
    unpack_layers(store, diff_ids, lease=None, progress=None) -> list[Path]

Each layer is applied onto its own empty directory in overlayfs form (whiteouts as 0:0 character
devices, opaque directories by xattr), keyed by its chain ID, so the result is directly
``lowerdir=":".join(paths)``. Snapshots already present are reused; the blob digest and the diff
ID are verified while unpacking. Pass a ``lease`` to keep the snapshots through a GC while they are
in use by something that is not an image record (a build step, a container).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dockyard.archive import apply_layer_overlay
from dockyard.archive.compression import HashingReader, open_decompressed
from dockyard.archive.readahead import ReadAhead
from dockyard.errors import DigestMismatch, NotFound
from dockyard.image import EMPTY_LAYER, chain_ids
from dockyard.imageops import Lease, Store
from dockyard.imageops.layers import open_form, stored_forms
from dockyard.progress import Event, ProgressSink, discard

__all__ = ["unpack", "unpack_layers"]


def unpack(store: Store, image_id: str, *, lease: Lease | None = None,
           progress: ProgressSink | None = None) -> list[Path]:
    """The image's layers as snapshot directories, top layer first (empty for an image with none)."""
    record = store.meta.get_image(image_id)
    if record is None:
        raise NotFound(f"No such image: {image_id}")
    return unpack_layers(store, record.diff_ids, lease=lease, progress=progress)


def unpack_layers(store: Store, diff_ids: Sequence[str], *, lease: Lease | None = None,
                  progress: ProgressSink | None = None) -> list[Path]:
    """Make sure each layer of the stack is a snapshot; return their ``fs`` dirs, top first. An empty
    layer has none: it adds nothing to the stack."""
    sink = progress or discard
    paths: list[Path] = []
    for diff_id, chain in zip(diff_ids, chain_ids(diff_ids), strict=True):
        if diff_id == EMPTY_LAYER:
            continue
        if lease is not None:
            lease.add_snapshot(chain)
        if store.snapshots.exists(chain):
            paths.append(store.snapshots.path(chain))
            continue
        forms = stored_forms(store, diff_id)
        if not forms:
            raise NotFound(f"layer {diff_id} is not in the local store (no blob to unpack)")
        form = forms[0]
        sink(Event(id=chain.short, name="Extracting", status="started", total=form.size))

        def fill(target: Path, form_digest: str = form.digest, expected_diff: str = diff_id) -> None:
            with open_form(store, form_digest, what=f"layer {expected_diff}")[0] as f:
                blob_hash = HashingReader(f)
                raw, _ = open_decompressed(blob_hash)
                # Reading, the blob's hash and decompression on one thread, the diff ID's hash on
                # another, extraction on this one.
                with ReadAhead(raw) as decompressed:
                    diff_hash = HashingReader(decompressed)
                    with ReadAhead(diff_hash) as ahead:
                        apply_layer_overlay(ahead, target)
                        while ahead.read(1 << 20):  # padding after the tar's end counts in the diff ID
                            pass
                while blob_hash.read(1 << 20):
                    pass
            if blob_hash.digest != form_digest:
                raise DigestMismatch(form_digest, blob_hash.digest, f"layer blob {form_digest}")
            if diff_hash.digest != expected_diff:
                raise DigestMismatch(expected_diff, diff_hash.digest, f"diff ID of layer blob {form_digest}")

        paths.append(store.snapshots.create(chain, fill))
        if form.content_size < 0:  # a layer stored by other means: its size is known now
            store.meta.set_content_size(diff_id, store.snapshots.size(chain))
        sink(Event(id=chain.short, name="Extracting", status="done", current=form.size, total=form.size))
    paths.reverse()
    return paths
