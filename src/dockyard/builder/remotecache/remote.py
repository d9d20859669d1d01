"""Importing a remote build cache (``--cache-from``): cache keys -> image configs, layers on demand.

The cache documents of every source are read once, in the background from the start of the build
(as BuildKit imports them before it solves), so the registry round trips overlap the context
checksum. A hit needs only the step's image config (in the document); a layer blob is fetched only
when a step that runs needs the files, or the image the build exports has it; the layers of the
exported image are fetched side by side. A blob that is missing or
does not match its digest is marked bad: ``BrokenCacheBlob`` makes the build start over without
the records that use it (those steps then run).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future
from pathlib import Path

from dockyard.builder.remotecache.backends import Backend, RegistryBackend, open_backend
from dockyard.builder.remotecache.base import BrokenCacheBlob, SharedRegistry
from dockyard.builder.remotecache.document import (
    INLINE_KEY,
    MEDIA_TYPE,
    MEDIA_TYPE_PREFIX,
    CacheDocument,
    UnreadableCache,
    parse_document,
)
from dockyard.builder.remotecache.spec import CacheSpec
from dockyard.errors import DockyardError, NotFound
from dockyard.imageops import Lease, Store
from dockyard.imageops.commit import store_layer_blob
from dockyard.interruptible import in_background, wait_futures
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.platform import host
from dockyard.oci.platform import parse as parse_platform
from dockyard.oci.reference import parse_normalized
from dockyard.record import record
from dockyard.registry.client import RegistryClient


@record(frozen=True, slots=True)
class _Source:
    backend: Backend
    doc: CacheDocument


class RemoteCache:
    """The union of the ``--cache-from`` sources; thread-safe, shared by the attempts of a build."""

    def __init__(self, store: Store, specs: Sequence[CacheSpec],
                 registry: Callable[[], RegistryClient], platform: str = "") -> None:
        self.store = store
        # The platform being built: a source that is an image index serves its entry for it.
        self.platform = parse_platform(platform) if platform else host()
        self.specs = list(specs)
        self._registry = registry
        self.warnings: list[str] = []   # one line each: a source ignored, a blob found unusable
        self._lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}  # diff ID -> held while it is fetched
        self._pending: dict[str, Future[None]] = {}  # diff ID -> its fetch under way
        self._slots = threading.BoundedSemaphore(4)  # fetches at once
        self._sources: list[_Source] | None = None
        self.bad: set[str] = set()
        self.fetched: dict[str, int] = {}   # blob digest -> bytes fetched (what the build downloaded)
        self._here: set[str] = set()  # diff IDs found in the local store (asked per step, per layer)

    def _warn(self, text: str) -> None:
        self.warnings.append(f"WARNING: {text}")

    # -- reading the documents -------------------------------------------------------------------

    def start(self) -> None:
        """Begin reading the cache documents in a background thread (a lookup waits for them). A
        failure stays in the unused future: the first lookup reads the documents again and reports it."""
        in_background(self.sources, name="cache-import")

    def sources(self) -> list[_Source]:
        with self._lock:
            if self._sources is None:
                self._sources = [s for s in (self._load(spec) for spec in self.specs) if s is not None]
            return self._sources

    def _load(self, spec: CacheSpec) -> _Source | None:
        where = spec.location
        try:
            backend = open_backend(spec.type, spec.location, spec.tag, self._registry)
            where = backend.where
            found = backend.manifest()
            if found is None:
                self._warn(f"cache {where} not found: importing nothing from it")
                return None
            data, media_type = found
            return _Source(backend, self._document(backend, data, media_type))
        except UnreadableCache as exc:
            self._warn(f"ignoring cache {exc}")
        except (DockyardError, OSError, ValueError) as exc:
            self._warn(f"ignoring cache {where}: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
        return None

    def _document(self, backend: Backend, data: bytes, media_type: str) -> CacheDocument:
        if media_type in mt.INDEXES:
            # A multi-platform image (inline cache in each platform's config): this platform's entry.
            try:
                from dockyard.imageops.pull import select_platform

                child = select_platform(data, self.platform, backend.where)
            except NotFound:
                raise UnreadableCache(f"{backend.where}: the image index has no {self.platform} "
                                      "entry") from None
            data, media_type = backend.child_manifest(child), child.media_type
        manifest = parse_manifest(data, f"manifest of {backend.where}")
        config_type = manifest.config.media_type
        if config_type == MEDIA_TYPE:
            return parse_document(backend.blob_bytes(manifest.config), backend.where)
        if config_type.startswith(MEDIA_TYPE_PREFIX):
            raise UnreadableCache(f"{backend.where}: cache format {config_type} is newer than this "
                                  f"dockyard reads ({MEDIA_TYPE})")
        if config_type not in mt.CONFIGS:
            raise UnreadableCache(f"{backend.where}: not a build cache (config {config_type})")
        # An image: its cache is inline, in its config; its layers are the image's.
        raw = backend.blob_bytes(manifest.config)
        inline = json.loads(raw).get(INLINE_KEY)
        if inline is None:
            raise UnreadableCache(f"{backend.where}: the image holds no inline build cache")
        doc = parse_document(json.dumps(inline).encode(), f"{backend.where} (inline)")
        config = ImageConfig.from_json(raw, f"config of {backend.where}")
        for diff_id, layer in zip(config.diff_ids, manifest.layers, strict=False):
            doc.layers.setdefault(str(diff_id), layer)
        return doc

    def inputs(self) -> list[object]:
        """What the imported records' keys were made of (for explaining a miss)."""
        return [data for source in self.sources() for data in source.doc.inputs.values()]

    def mounts(self) -> dict[str, tuple[Backend, Descriptor]]:
        """Cache mounts the sources hold: directory name -> (where, index blob); the first source wins."""
        out: dict[str, tuple[Backend, Descriptor]] = {}
        for source in self.sources():
            for name, desc in source.doc.mounts.items():
                out.setdefault(name, (source.backend, desc))
        return out

    def restore_mount(self, name: str, dest: Path) -> bool:
        """Fill the empty directory ``dest`` with the cache mount ``name``; False if none (or broken:
        then ``dest`` is emptied again and a warning says why)."""
        found = self.mounts().get(name)
        if found is None:
            return False
        backend, index = found
        try:
            from dockyard.builder.remotecache.mounts import restore as restore_mount

            self.fetched[str(index.digest)] = restore_mount(backend.blob_bytes(index), backend, dest)
            return True
        except (DockyardError, OSError) as exc:
            self._warn(f"cache mount {name} from {backend.where} is unusable ({str(exc).splitlines()[0]}): "
                       "starting it empty")
            import shutil  # not at import: only an unusable cache mount is emptied

            for child in list(dest.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            return False

    # -- lookups ---------------------------------------------------------------------------------

    def lookup(self, key: str) -> tuple[bytes, ImageConfig] | None:
        """The image config a step with cache ``key`` left (as stored, and parsed), if every layer of
        it can be had."""
        for source in self.sources():
            raw = source.doc.config(key)
            if raw is None:
                continue
            try:
                config = ImageConfig.from_json(raw, f"cached config for {key}")
            except DockyardError:
                continue
            # The documents first: a dict lookup, where the local store is a query and a stat.
            if all(self._remote(d) is not None or self._local(d) for d in config.diff_ids):
                return raw, config
        return None

    def _local(self, diff_id: str) -> bool:
        if diff_id in self._here:
            return True
        from dockyard.imageops.layers import has_layer

        if has_layer(self.store, diff_id):  # a blob, or the snapshot a build kept it as
            self._here.add(diff_id)
            return True
        return False

    def _remote(self, diff_id: str) -> tuple[Backend, Descriptor] | None:
        for source in self.sources():
            desc = source.doc.layers.get(str(diff_id))
            if desc is not None and str(desc.digest) not in self.bad:
                return source.backend, desc
        return None

    def remote_layer(self, diff_id: str) -> tuple[Backend, Descriptor] | None:
        """Where a layer not in the local store can be had from (for an export that mounts it)."""
        return None if self._local(diff_id) else self._remote(diff_id)

    def mount_source(self, backend: Backend, domain: str) -> list[str]:
        """Repositories on registry ``domain`` a blob of ``backend`` can be mounted from."""
        if isinstance(backend, RegistryBackend) and backend.domain == domain:
            return [backend.path]
        return []

    def premount(self, registry: Callable[[], RegistryClient], tags: Sequence[str],
                 diff_ids: Sequence[str]) -> None:
        """Before a push: link the image's layers into each tag's repository from a cache on the same
        registry (cross-repository mount), so the push finds them there by HEAD and sends nothing."""
        for tag in tags:
            try:
                ref = parse_normalized(tag)
                repo = registry().repository(ref.domain, ref.path)
            except DockyardError:
                continue  # the push reports a bad tag itself
            for diff_id in diff_ids:
                for source in self.sources():
                    desc = source.doc.layers.get(str(diff_id))
                    backend = source.backend
                    if (desc is None or not isinstance(backend, RegistryBackend)
                            or backend.domain != ref.domain or str(desc.digest) in self.bad):
                        continue
                    with contextlib.suppress(DockyardError):
                        if (repo.blob_exists(desc.digest)
                                or repo.mount_blob(desc.digest, backend.path) is None):
                            break

    # -- fetching layers -------------------------------------------------------------------------

    def prefetch(self, diff_ids: Sequence[str], lease: Lease) -> None:
        """Start fetching the layers of ``diff_ids`` that are not in the local store, in the
        background (a few at a time); :meth:`ensure` waits for them."""
        for diff_id in diff_ids:
            if diff_id in self._pending or self._local(diff_id):
                continue
            with self._lock:
                if diff_id not in self._pending:
                    task = functools.partial(self._fetch_task, diff_id, lease)
                    self._pending[diff_id] = in_background(task, name="cache-fetch")

    def ensure(self, diff_ids: Sequence[str], lease: Lease) -> None:
        """Fetch the layers of ``diff_ids`` that are not in the local store (verified as they come)."""
        missing = [d for d in dict.fromkeys(diff_ids) if not self._local(d)]
        self.prefetch(missing, lease)
        with self._lock:
            futures = {d: f for d, f in ((d, self._pending.get(d)) for d in missing) if f is not None}
        wait_futures(futures.values(), return_when=FIRST_EXCEPTION)
        for diff_id, future in futures.items():
            exc = future.exception() if future.done() else None
            if exc is not None:
                with self._lock:  # reported once: a build started again may fetch it from elsewhere
                    if self._pending.get(diff_id) is future:
                        del self._pending[diff_id]
                raise exc

    def _fetch_task(self, diff_id: str, lease: Lease) -> None:
        with self._slots:
            self._ensure_one(diff_id, lease)
        with self._lock:  # a failed fetch stays until ensure() reports it
            self._pending.pop(diff_id, None)

    def _ensure_one(self, diff_id: str, lease: Lease) -> None:
        with self._lock:
            lock = self._fetch_locks.setdefault(diff_id, threading.Lock())
        with lock:  # two stages needing one layer fetch it once
            if self._local(diff_id):
                return
            found = self._remote(diff_id)
            if found is None:
                return  # not ours: the unpacker reports the missing layer
            backend, desc = found
            self._fetch(backend, desc, diff_id, lease)

    def _fetch(self, backend: Backend, desc: Descriptor, diff_id: str, lease: Lease) -> None:
        self.store.tmp_dir.mkdir(parents=True, exist_ok=True)
        with _anonymous_file(self.store.tmp_dir) as tmp:
            try:
                backend.fetch(desc, tmp)
                tmp.seek(0)
                store_layer_blob(self.store, tmp, expected=str(desc.digest), size=desc.size, diff_id=diff_id,
                                 media_type=desc.media_type, lease=lease)
            except DockyardError as exc:
                self.bad.add(str(desc.digest))
                reason = str(exc).splitlines()[0]
                self._warn(f"cache blob {desc.digest} from {backend.where} is unusable ({reason}): "
                           "the steps using it run again")
                raise BrokenCacheBlob(str(desc.digest), reason) from None
            self.fetched[str(desc.digest)] = desc.size


__all__ = ["BrokenCacheBlob", "RemoteCache", "SharedRegistry"]


def _anonymous_file(directory: Path) -> io.BufferedRandom:
    """A file without a name in ``directory`` (gone when closed), as ``tempfile.TemporaryFile``
    makes one on Linux, without loading tempfile (and its shutil and random) on a cached build."""
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL):
            import tempfile  # a filesystem without O_TMPFILE

            return tempfile.TemporaryFile(dir=directory)
        raise
    return open(fd, "w+b")
