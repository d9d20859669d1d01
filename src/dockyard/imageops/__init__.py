"""Image operations on the local store (layer L3).

``Store`` wires the three L2 stores under one root and is what every operation takes::

    <root>/content/blobs/sha256/<hex>   blobs (configs, manifests, layer tars as stored)
    <root>/content/ingest/              blobs being written
    <root>/content/quarantine/sha256/   blobs found corrupt, kept for ``check --repair``
    <root>/snapshots/sha256/<chain>/fs  unpacked layers (overlay lowerdirs); a layer a build committed
                                        is kept only here (``layers``: its tar is written again)
    <root>/metadata.db                  SQLite: images, tags, repo digests, layers, leases, cache
    <root>/image-list.cache             a copy of what ``images`` lists, valid while metadata.db is
                                        unchanged (``list_cache``: the listing without SQLite)
    <root>/tmp/                         scratch space for other operations
    <root>/l/<id>                       short symlinks naming overlay lowerdirs (a build's mounts)
    <root>/gc.lock                      flock: GC exclusive, lease updates shared

Leases protect work in flight from a GC in another process: add a blob/snapshot to a lease
*before* checking that it exists or writing it, and keep the lease until the image record that
references it is committed::

    store = Store(root)
    with store.lease() as lease:
        info = store.content.ingest(data, before_publish=lease.add_blob)
        ...

Modules: ``commit`` (store layers, create images), ``layers`` (where a layer's bytes are: its
blobs, or the snapshot a build kept it as; read either, verified), ``unpack`` (layers ->
snapshots -> lowerdirs), ``images`` (list, resolve, tag, remove, inspect, history, prune, disk
usage), ``gc`` (collect garbage from roots), ``check`` (verify the store, optionally repair),
``refetch`` (bring lost blobs back from the registry an image came from).
"""

from __future__ import annotations

import _thread
import fcntl
import os

from dockyard.errors import StoreError
from dockyard.fsflags import spread_subdirectories
from dockyard.oci.digest import Digest

# Not ``typing.TYPE_CHECKING``: the listing path imports no typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from dockyard.content import ContentStore
    from dockyard.metadata import MetadataStore
    from dockyard.snapshot import SnapshotStore

__all__ = ["Lease", "Store"]


class Store:
    """The local image store under ``root`` (created lazily: constructing it touches nothing)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self._root = os.fspath(root)
        self._root_path: Path | None = None
        self.fsync = fsync
        self._meta: MetadataStore | None = None
        self._gc_holds: dict[int, int] = {}  # thread -> how many times over it holds the GC lock
        self._content: ContentStore | None = None
        self._snapshots: SnapshotStore | None = None

    # The paths (pathlib), the blob and the snapshot stores are made, and their modules imported, on
    # first use: listing images reads the metadata database only.
    @property
    def root(self) -> Path:
        if self._root_path is None:
            from pathlib import Path

            self._root_path = Path(self._root)
        return self._root_path

    @property
    def meta(self) -> MetadataStore:
        # Made (and sqlite3 imported) on first use: ``images`` answered from its cached copy needs neither.
        if self._meta is None:
            from dockyard.metadata import MetadataStore

            self._meta = MetadataStore(os.path.join(self._root, "metadata.db"))
        return self._meta

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def links_dir(self) -> Path:
        return self.root / "l"

    @property
    def content(self) -> ContentStore:
        if self._content is None:
            from dockyard.content import ContentStore

            self._content = ContentStore(self.root / "content", fsync=self.fsync)
        return self._content

    @property
    def snapshots(self) -> SnapshotStore:
        if self._snapshots is None:
            from dockyard.snapshot import SnapshotStore

            self._snapshots = SnapshotStore(self.root / "snapshots")
        return self._snapshots

    def close(self) -> None:
        if self._meta is not None:
            self._meta.close()

    def make_tmp(self, prefix: str = "op") -> Path:
        """A fresh private directory under ``tmp/`` (named with the pid so GC can clean it later)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        spread_subdirectories(self.tmp_dir)  # a build's upper directories: away from deleted inodes
        path = self.tmp_dir / f"{prefix}.{os.getpid()}.{os.urandom(6).hex()}"
        path.mkdir()
        return path

    def gc_lock(self, *, exclusive: bool = False) -> _GcLock:
        """Hold the store's GC lock: exclusive while collecting, shared while protecting resources.

        A thread that holds it already and asks for it shared holds it on (a build step takes it
        several times over, nested): no second lock file descriptor."""
        return _GcLock(self, exclusive)

    def lease(self, ttl: float = 24 * 3600.0, lease_id: str = "") -> Lease:
        """A new lease (a GC root until released or ``ttl`` seconds pass)."""
        return Lease(self, lease_id or f"lease-{os.getpid()}-{os.urandom(8).hex()}", ttl)


class _GcLock:
    """What :meth:`Store.gc_lock` returns (a class, not ``contextlib.contextmanager``: ``dockyard
    images`` imports this module, not contextlib)."""

    __slots__ = ("_depth", "_exclusive", "_fd", "_me", "_store")

    def __init__(self, store: Store, exclusive: bool) -> None:
        self._store = store
        self._exclusive = exclusive
        self._fd = -1

    def __enter__(self) -> None:
        holds = self._store._gc_holds
        me = self._me = _thread.get_ident()
        depth = self._depth = holds.get(me, 0)
        if depth and not self._exclusive:
            holds[me] = depth + 1
            return
        root = self._store._root
        path = os.path.join(root, "gc.lock")
        try:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:  # a new store
                os.makedirs(root, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock the store {root}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self._exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        holds[me] = depth + 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        holds = self._store._gc_holds
        if self._depth:
            holds[self._me] = self._depth
        else:
            del holds[self._me]
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1


class Lease:
    """Work in flight: the blobs, snapshots and images it names survive GC until release or expiry."""

    def __init__(self, store: Store, lease_id: str, ttl: float) -> None:
        self.store = store
        self.id = lease_id
        self.ttl = ttl
        self._created = False

    def _add(self, kind: str, key: str) -> None:
        meta = self.store.meta
        with self.store.gc_lock(), meta.transaction():
            if not self._created:
                meta.create_lease(self.id, self.ttl)
                self._created = True
            meta.add_lease_resource(self.id, kind, key)

    def add_blob(self, digest: str) -> None:
        from dockyard.metadata import BLOB

        self._add(BLOB, str(Digest(digest)))

    def add_snapshot(self, chain_id: str) -> None:
        from dockyard.metadata import SNAPSHOT

        self._add(SNAPSHOT, str(Digest(chain_id)))

    def add_image(self, image_id: str) -> None:
        from dockyard.metadata import IMAGE

        self._add(IMAGE, str(Digest(image_id)))

    def release(self) -> None:
        if self._created:
            self.store.meta.delete_lease(self.id)
            self._created = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
