"""Where a layer's bytes are: its blobs, or the snapshot a build committed it as.

A layer a build commits is kept once, as its snapshot directory (an overlay lower dir); its tar,
whose digest is the diff ID, is not stored. ``layer_snapshots`` rows (``metadata``) say which
snapshot holds such a layer and how its tar was written (``mtime_clamp``). Whoever needs the
layer's bytes asks here: the tar is written again from the snapshot, by the same writer, in a
stream, and checked against the diff ID as it goes (a mismatch is a ``CorruptData`` naming the
layer; the stream's last piece is held back until the check passed, so a consumer that stops at
the expected size never takes a wrong tar for a right one).

    hash_overlay_diff(upper, mtime_clamp) -> (diff ID, tar size, content size)   nothing written
    snapshot_form(store, diff_id) -> SnapshotLayer | None   a recorded snapshot that is still there
    stored_forms(store, diff_id) -> [LayerBlob]   blob forms present, plus the snapshot-backed
        uncompressed form (digest = diff ID) when no uncompressed blob is there
    has_layer(store, diff_id) -> bool
    is_snapshot_backed(store, form) -> bool
    blob_here(store, digest) -> bool   a blob, or a snapshot-backed layer's tar (digest = diff ID)
    open_form(store, digest, size=None, what="") -> (reader, size)   a blob (verified) or the tar
        written again from the snapshot (verified)
    forget_lost_snapshot_forms(store) -> int   rows whose snapshot is gone (GC, check)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, cast

from dockyard.errors import CorruptData, NotFound
from dockyard.image import LayerBlob
from dockyard.imageops import Store
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest, Hasher

if TYPE_CHECKING:
    from dockyard.metadata.records import SnapshotLayer

__all__ = ["RegeneratedLayer", "blob_here", "forget_lost_snapshot_forms", "has_layer", "hash_overlay_diff",
           "is_snapshot_backed", "open_form", "snapshot_form", "stored_forms"]

_QUEUE_DEPTH = 8  # pieces of up to 1 MiB (the tar writer's flush size) in flight


class _HashSink:
    """A tar writer's output that only hashes (and counts) what it is given."""

    def __init__(self) -> None:
        self.hasher = Hasher()

    def write(self, data: bytes) -> None:
        self.hasher.update(data)


def hash_overlay_diff(upper: str | Path, mtime_clamp: int | None) -> tuple[Digest, int, int]:
    """The diff ID, tar size and content size of the layer tar of overlay upper dir ``upper``,
    computed by streaming the tar through sha256 (nothing is written)."""
    from dockyard.archive import TreeOptions, write_overlay_diff

    sink = _HashSink()
    tar = write_overlay_diff(upper, sink, TreeOptions(mtime_clamp=mtime_clamp))
    return sink.hasher.digest(), sink.hasher.size, tar.content_size


def snapshot_form(store: Store, diff_id: str) -> SnapshotLayer | None:
    """A snapshot recorded as holding layer ``diff_id`` that is still there (complete)."""
    for form in store.meta.layer_snapshots(diff_id):
        if store.snapshots.exists(form.chain_id):
            return form
    return None


def _as_blob(form: SnapshotLayer) -> LayerBlob:
    return LayerBlob(form.diff_id, form.diff_id, mt.layer_media_type("none"), form.size, form.size,
                     form.content_size)


def stored_forms(store: Store, diff_id: str) -> list[LayerBlob]:
    """The forms of layer ``diff_id`` whose bytes are here: stored blobs (uncompressed first, then by
    size), with the snapshot-backed uncompressed form first when no uncompressed blob is stored.
    Open one with :func:`open_form`."""
    forms = [f for f in store.meta.layer_blobs(diff_id) if store.content.exists(f.digest)]
    if any(f.digest == f.diff_id for f in forms):
        return forms
    backed = snapshot_form(store, diff_id)
    return forms if backed is None else [_as_blob(backed), *forms]


def has_layer(store: Store, diff_id: str) -> bool:
    """Whether the layer's bytes are here (a blob, or the snapshot it is kept as)."""
    return any(store.content.exists(f.digest) for f in store.meta.layer_blobs(diff_id)) or \
        snapshot_form(store, diff_id) is not None


def is_snapshot_backed(store: Store, form: LayerBlob) -> bool:
    """Whether ``form`` (from :func:`stored_forms`) is read from a snapshot, not a blob."""
    return form.digest == form.diff_id and not store.content.exists(form.digest) and \
        snapshot_form(store, form.diff_id) is not None


def blob_here(store: Store, digest: str) -> bool:
    """Whether :func:`open_form` can read blob ``digest`` (stored, or a snapshot-backed layer's tar)."""
    return store.content.exists(digest) or snapshot_form(store, digest) is not None


def open_form(store: Store, digest: str, size: int | None = None, what: str = "") -> tuple[BinaryIO, int]:
    """A reader of blob ``digest`` verified as it streams, and its size: the stored blob, or (for an
    uncompressed layer kept as a snapshot: ``digest`` is its diff ID) its tar written again from
    the snapshot. ``NotFound`` if neither is here."""
    if store.content.exists(digest):
        blob = store.content.verified(digest, size if size is not None and size >= 0 else None, what)
        reader = blob.open()
        return cast(BinaryIO, reader), blob.size or 0
    form = snapshot_form(store, digest)
    if form is None:
        raise NotFound(f"{what or f'blob {digest}'}: blob {digest} is missing from the content store")
    if size is not None and size >= 0 and size != form.size:
        raise CorruptData(f"{what or f'layer {digest}'}: its snapshot makes a tar of {form.size} bytes, "
                          f"not {size}")
    return cast(BinaryIO, RegeneratedLayer(store, form, what)), form.size


class RegeneratedLayer:
    """The tar of a snapshot-backed layer, written again from its snapshot by a thread and read
    here (``read``), checked against the diff ID and size while it streams: the last piece is
    only handed out once the whole tar matched, and a tar longer than recorded stops at once."""

    def __init__(self, store: Store, form: SnapshotLayer, what: str = "") -> None:
        self.form = form
        self.size = form.size
        layer = f"layer {form.diff_id}"
        self.what = what if str(form.diff_id) in what else f"{what}: {layer}" if what else layer
        self._path = store.snapshots.path(form.chain_id)
        self._pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._thread = threading.Thread(target=self._produce, name="layer-tar", daemon=True)
        self._thread.start()

    # -- the producing thread ---------------------------------------------------------------------

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self._stop.is_set():
                raise _Closed
            try:
                self._pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        from dockyard.archive import TreeOptions, write_overlay_diff

        form = self.form
        hasher = Hasher()
        held: list[bytes] = []

        def write(data: bytes) -> None:
            hasher.update(data)
            if hasher.size > form.size:
                raise CorruptData(self._mismatch(f"longer than the {form.size} bytes recorded"))
            if held:
                self._put(held.pop())
            held.append(bytes(data))

        try:
            write_overlay_diff(self._path, _Writer(write), TreeOptions(mtime_clamp=form.mtime_clamp))
            actual = hasher.digest()
            if actual != form.diff_id or hasher.size != form.size:
                raise CorruptData(self._mismatch(f"hashes to {actual} ({hasher.size} bytes)"))
            if held:
                self._put(held.pop())
            self._put(None)
        except _Closed:
            return
        except BaseException as exc:  # handed to the reader, which raises it
            try:
                self._put(exc if isinstance(exc, CorruptData) else CorruptData(
                    f"{self.what}: its snapshot {self.form.chain_id} cannot be read: {exc}"))
            except _Closed:
                return

    def _mismatch(self, why: str) -> str:
        # ``what`` names the layer by its diff ID (see ``__init__``).
        return (f"{self.what}: the tar written again from its snapshot {self.form.chain_id} {why}, "
                "not the diff ID: the snapshot was changed")

    # -- the reading side ---------------------------------------------------------------------------

    def _next(self) -> bool:
        """Load the next piece into the buffer; False at the verified end."""
        if self._eof:
            return False
        item = self._pieces.get()
        if item is None:
            self._eof = True
            self._thread.join()
            return False
        if isinstance(item, BaseException):
            self._eof = True
            self._thread.join()
            raise item
        self._buf, self._pos = item, 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while self._next():
                parts.append(self._buf)
                self._buf = b""
            return b"".join(parts)
        while self._pos >= len(self._buf):
            if not self._next():
                return b""
        data = self._buf[self._pos:self._pos + n]
        self._pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        memoryview(b).cast("B")[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            while self._thread.is_alive():
                try:  # make room for a producer blocked on a full queue
                    self._pieces.get(timeout=0.1)
                except queue.Empty:
                    pass
            self._thread.join()
        self._eof = True

    def __enter__(self) -> RegeneratedLayer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Closed(Exception):
    """The reader went away: the producing thread stops."""


class _Writer:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write


def forget_lost_snapshot_forms(store: Store) -> int:
    """Drop the records of snapshot-backed layers whose snapshot is gone; return how many."""
    lost = [f for f in store.meta.all_layer_snapshots() if not store.snapshots.exists(f.chain_id)]
    if lost:
        with store.meta.transaction():
            for form in lost:
                store.meta.remove_layer_snapshot(form.diff_id, form.chain_id)
    return len(lost)
