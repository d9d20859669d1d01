"""Scratch filesystems for build steps: overlay mounts over image layers, and committing their changes.

A step's changes land in a fresh overlay upper directory; committing it adopts the directory itself
as the new snapshot, so the next step stacks on it without unpacking anything, and the layer's
bytes are on disk once: the layer tar is only hashed (its digest is the diff ID) and written again
from the snapshot when a push, save or export needs it (``imageops.layers``).

Overlay lower directories are named through short symlinks (``<store>/l/<id>``), as Docker's
overlay2 driver does, so one mount's options fit in a page even for a hundred layers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.content import Writer
from dockyard.errors import BuildError
from dockyard.image import EMPTY_LAYER, LayerBlob, chain_id
from dockyard.imageops import Lease, Store
from dockyard.oci.digest import Digest
from dockyard.oci.mediatypes import layer_media_type
from dockyard.record import record
from dockyard.userns import overlay_userxattr

_MNT_DETACH = 2
_PAGE = 4000
# Overlayfs's own attributes on an upper's root (trusted.overlay.uuid since Linux 6.6); a process in
# the container can neither set nor see them.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_KEEP_UNUSED = 2  # unchanged (upper, work) pairs kept before the oldest is reused


@record(frozen=True, slots=True)
class Committed:
    """A step's committed layer: its stored blob and the snapshot directory it became (``empty``: a
    layer without entries, which an overlay needs not stack)."""

    layer: LayerBlob
    chain_id: Digest
    snapshot: Path | None  # None for an empty layer: it needs no snapshot (see EMPTY_LAYER)
    empty: bool = False


class Workspace:
    """One build's scratch space under the store (same filesystem, so commits are renames)."""

    def __init__(self, store: Store, lease: Lease, *, copying: bool = False, fuse: bool = False) -> None:
        self.store = store
        self.copying = copying  # no mounts here (--isolation chroot): copy layers, find changes
        self.fuse = fuse  # the kernel's overlayfs is refused here: fuse-overlayfs mounts them
        self.lease = lease
        self.dir = store.make_tmp("build")
        self.links = store.links_dir
        self.links.mkdir(exist_ok=True)
        self._empty = self.dir / "empty"
        self._empty.mkdir()
        self._count = 0
        self._links: dict[Path, str] = {}
        # (upper, work) pairs that steps left unchanged, oldest first, with how each upper was made.
        self._unused: list[tuple[Path, Path]] = []
        self._made: dict[Path, tuple[int, int, int]] = {}
        self._unused_lock = threading.Lock()
        self._empty_layer: LayerBlob | None = None  # the entry-less layer tar, once stored (and leased)

    def close(self) -> None:
        try:  # a build whose steps were all cached made nothing here but "empty"
            self._empty.rmdir()
            self.dir.rmdir()
        except OSError:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)

    def new_dir(self, prefix: str) -> Path:
        self._count += 1
        path = self.dir / f"{prefix}{self._count}-{os.urandom(3).hex()}"
        path.mkdir()
        return path

    def new_upper(self) -> tuple[Path, Path]:
        """An empty (upper, work) pair for an overlay mount (side by side: no directory holding both,
        one directory fewer to make and remove per step).

        A pair a step gave back unchanged (:meth:`reuse_upper`) is taken again, but only the older of
        at least two: the mount namespace of the run that last used the newest may still be closing
        (the executor would wait for it), the older one's is gone by then. Most steps of a build
        that change nothing so make and remove no directory at all (each is a disk write)."""
        with self._unused_lock:
            if len(self._unused) >= _KEEP_UNUSED:
                return self._unused.pop(0)
        upper, work = self.new_dir("upper"), self.new_dir("work")
        st = os.stat(upper)
        with self._unused_lock:
            self._made[upper] = (st.st_mode, st.st_uid, st.st_gid)
        return upper, work

    def reuse_upper(self, upper: Path, work: Path) -> None:
        """Give back a pair whose step committed an empty layer, for a later step. Kept only if the
        upper directory is exactly as :meth:`new_upper` made it: no entry, its own mode and owner
        unchanged, no extended attribute but overlayfs's own (a ``chmod /`` or ``setfattr /`` lands
        on the upper's root and is in no layer; it must not reach a later step either)."""
        with self._unused_lock:
            made = self._made.get(upper)
        if made is None or self.fuse:  # fuse-overlayfs: its work directory is its own business
            return
        try:
            st = os.stat(upper)
            clean = ((st.st_mode, st.st_uid, st.st_gid) == made
                     and all(x.startswith(_OVERLAY_XATTRS) for x in os.listxattr(upper))
                     and not _has_entries(upper))
        except OSError:
            return
        if clean:
            with self._unused_lock:
                self._unused.append((upper, work))

    def link(self, layer_dir: Path) -> str:
        """A short, stable name for a lower directory (a symlink under ``<store>/l``); made once per
        build (every later step stacks on the same layers)."""
        known = self._links.get(layer_dir)
        if known is not None:
            return known
        name = hashlib.sha256(str(layer_dir).encode()).hexdigest()[:20]
        path = self.links / name
        try:
            os.symlink(layer_dir, path)
        except FileExistsError:
            if os.readlink(path) != str(layer_dir):
                os.unlink(path)
                os.symlink(layer_dir, path)
        self._links[layer_dir] = str(path)
        return str(path)

    def lowers(self, lowerdirs_top_first: Sequence[Path]) -> list[str]:
        names = [self.link(p) for p in lowerdirs_top_first]
        return names or [str(self._empty)]

    @contextlib.contextmanager
    def mounted(self, lowerdirs_top_first: Sequence[Path], upper: Path | None = None,
                work: Path | None = None) -> Iterator[str]:
        """An overlay of the layers (read-only without ``upper``); yields the merged path."""
        target = self.new_dir("mnt")
        lowers = self.lowers(lowerdirs_top_first)
        if self.copying:
            yield from self._copied(target, lowers, upper)
            return
        if upper is None:
            if len(lowers) == 1:
                # A single layer needs no overlay to be read.
                yield os.path.realpath(lowers[0])
                target.rmdir()
                return
            data = f"lowerdir={':'.join(lowers)}{overlay_userxattr()}"
        else:
            data = (f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},index=off"
                    f"{overlay_userxattr()}")
        if len(data) > _PAGE:
            raise BuildError(f"too many layers for one overlay mount ({len(lowers)})")
        if self.fuse:
            yield from self._fuse_mounted(target, lowers, upper, work)
            return
        from dockyard.executor.mount import mount, umount2  # a step that runs (not a hit)

        mount("overlay", str(target), "overlay", 0, data)
        try:
            yield str(target)
        finally:
            umount2(str(target), _MNT_DETACH)
            with contextlib.suppress(OSError):
                target.rmdir()

    def _fuse_mounted(self, target: Path, lowers: list[str], upper: Path | None,
                      work: Path | None) -> Iterator[str]:
        """What :meth:`mounted` gives through fuse-overlayfs; ``upper`` left in overlayfs's form."""
        from dockyard.executor import fuseoverlay  # only rootless builds without overlayfs use it

        fuseoverlay.mount(str(target), lowers, None if upper is None else str(upper),
                          None if work is None else str(work))
        try:
            yield str(target)
        finally:
            fuseoverlay.unmount(str(target))
            with contextlib.suppress(OSError):
                target.rmdir()
        if upper is not None:
            fuseoverlay.normalize_upper(str(upper), lowers)

    def _copied(self, target: Path, lowers: list[str], upper: Path | None) -> Iterator[str]:
        """What :meth:`mounted` gives without a mount: a copy, whose changes go to ``upper``."""
        from dockyard.snapshot.copying import CopiedTree  # chroot isolation only

        tree = CopiedTree(target)
        try:
            tree.materialize(lowers)
            tree.record()
            yield str(target)
            if upper is not None:
                tree.write_changes(upper)
        finally:
            import shutil

            shutil.rmtree(target, ignore_errors=True)

    @contextlib.contextmanager
    def commit(self, upper: Path, parent_chain: Digest | None, *,
               mtime_clamp: int | None = None) -> Iterator[Committed]:
        """Store ``upper`` as a layer and a snapshot (an empty one too: Docker's exporter keeps a RUN,
        COPY or WORKDIR that changed nothing as an empty tar layer, not as an empty_layer history).

        The layer is kept once, as the snapshot: its tar is streamed through sha256 (the diff ID)
        and not written; a ``layer_snapshots`` row says the snapshot holds it (``imageops.layers``
        writes the tar again when push, save or an export needs it). Then, under the GC lock and in
        one metadata transaction that stays open while the caller's block runs (to record the
        step), the upper dir becomes the snapshot: a kill before the commit leaves a snapshot no
        row names (GC removes it), never a row naming a snapshot that is not there. An empty layer
        (1 KiB of tar, shared by every step that changed nothing) is stored as a blob; so is a layer
        whose chain's snapshot exists already but was unpacked from elsewhere (its files are the
        layer's, its tar as written again might not be)."""
        store = self.store
        if not _has_entries(upper):
            with self._commit_blob(upper, parent_chain, mtime_clamp, empty=True) as committed:
                yield committed
            return
        from dockyard.imageops.layers import hash_overlay_diff  # a step that runs (not a hit)
        from dockyard.metadata.records import SnapshotLayer

        diff_id, size, content_size = hash_overlay_diff(upper, mtime_clamp)
        with contextlib.ExitStack() as stack:
            stack.enter_context(store.gc_lock())
            stack.enter_context(store.meta.transaction())
            chain = chain_id(parent_chain, diff_id)
            self.lease.add_snapshot(chain)
            if store.snapshots.exists(chain) and not any(
                    f.chain_id == chain for f in store.meta.layer_snapshots(diff_id)):
                stack.close()
                with self._commit_blob(upper, parent_chain, mtime_clamp, empty=False) as committed:
                    yield committed
                return
            store.meta.add_layer_snapshot(SnapshotLayer(diff_id, chain, mtime_clamp, size, content_size))
            layer = LayerBlob(diff_id, diff_id, layer_media_type("none"), size, size, content_size)

            def adopt(fs: Path) -> None:
                fs.rmdir()
                os.rename(upper, fs)

            snapshot = store.snapshots.create(chain, adopt, size=content_size)
            yield Committed(layer, chain, snapshot, False)

    @contextlib.contextmanager
    def _commit_blob(self, upper: Path, parent_chain: Digest | None, mtime_clamp: int | None, *,
                     empty: bool) -> Iterator[Committed]:
        """:meth:`commit` with the layer tar stored as a blob. The blob's directory entry is not
        synced here: the image commit that makes it reachable syncs the blob directory once (until
        then a crash loses only a cache entry)."""
        store = self.store
        with contextlib.ExitStack() as stack:
            reuse = empty and self._empty_layer is not None
            tar = None if reuse else self._write_tar(stack, upper, mtime_clamp)
            stack.enter_context(store.gc_lock())
            stack.enter_context(store.meta.transaction())
            layer = self._known_empty() if tar is None else None
            if layer is None:
                writer, diff_id, content_size = tar or self._write_tar(stack, upper, mtime_clamp)
                info = writer.commit(self.lease.add_blob, sync_dir=False)
                layer = LayerBlob(diff_id, info.digest, layer_media_type("none"), info.size, info.size,
                                  content_size)
                store.meta.add_layer_blob(layer)
                if empty:
                    self._empty_layer = layer
            assert layer is not None
            chain = chain_id(parent_chain, layer.diff_id)
            if layer.diff_id == EMPTY_LAYER:
                # No snapshot (1-2 ms of directory renames a step): unpacking skips this layer too.
                yield Committed(layer, chain, None, True)
                return
            self.lease.add_snapshot(chain)

            def adopt(fs: Path) -> None:
                fs.rmdir()
                os.rename(upper, fs)

            size = layer.content_size
            snapshot = store.snapshots.create(chain, adopt, size=size if size >= 0 else None)
            yield Committed(layer, chain, snapshot, empty)

    def _write_tar(self, stack: contextlib.ExitStack, upper: Path,
                   mtime_clamp: int | None) -> tuple[Writer, Digest, int]:
        """The layer tar of ``upper`` in a content writer not yet committed; its digest (the diff ID:
        an uncompressed blob is its own tar, so one sha256 pass gives both) and content size."""
        from dockyard.archive import TreeOptions, write_overlay_diff  # a step that runs (not a hit)

        writer = stack.enter_context(self.store.content.writer())
        tar = write_overlay_diff(upper, writer, TreeOptions(mtime_clamp=mtime_clamp))
        return writer, writer.digest, tar.content_size

    def _known_empty(self) -> LayerBlob | None:
        """The empty layer stored by an earlier step of this build, if it is still there (the
        build's lease has named it since that step stored it: a GC keeps it)."""
        layer = self._empty_layer
        if layer is None:
            return None
        return layer if self.store.content.exists(layer.digest) else None


def _has_entries(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is not None
