"""Pull an image from a registry into the local store (``docker pull``).

    pull(store, registry, ref, platform=None, progress=None, unpack=True) -> PullResult
    pull_all_tags(store, registry, ref, ...) -> list[PullResult]
    pull_platforms(store, registry, ref, platforms=None, ...) -> list[PullResult]   several (None: all)

The manifest is read from the first source that has it (configured mirrors in order, then the
origin); an index or manifest list is resolved to the wanted platform. Layers download in parallel,
each streamed as it arrives both into the content store (resumed with ``Range`` after a drop) and
into its snapshot: decompressed, its diff ID hashed and extracted on threads of their own. A layer's
blob is published only once its digest and diff ID are both verified, just before its snapshot; a
source that fails or sends a bad blob is left for the next (from the start). The image is recorded
only after every layer is in; until then a lease keeps the new blobs from a GC, and a failure
leaves no image, no half-written blob and no snapshot of a bad layer behind.

Progress events use docker's words as ``Event.name`` (``Pulling from <path>`` with the tag or digest
as ``id``, then per layer ``Pulling fs layer``, ``Downloading``,
``Download complete``, ``Extracting``, ``Pull complete``, ``Already exists``) with ``id`` = the
first 12 hex digits of the layer's blob digest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from dockyard.archive import apply_layer_overlay
from dockyard.archive.compression import HashingReader, open_decompressed
from dockyard.archive.readahead import Pipe, ReadAhead
from dockyard.content import Writer
from dockyard.errors import CorruptData, DigestMismatch, Interrupted, InvalidArgument, NotFound, RegistryError
from dockyard.image import EMPTY_LAYER, LayerBlob, chain_ids
from dockyard.imageops import Lease, Store
from dockyard.imageops import platforms as tag_platforms
from dockyard.imageops.commit import commit_image
from dockyard.interruptible import wait_futures
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_index, parse_manifest
from dockyard.oci.platform import Platform, host
from dockyard.oci.reference import Reference
from dockyard.progress import Event, ProgressSink, discard
from dockyard.record import field, record
from dockyard.registry.client import FetchedManifest, RegistryClient, Repository

__all__ = ["PullResult", "pull", "pull_all_tags", "pull_platforms", "select_platform"]

PIECE = 1 << 20


@record(slots=True)
class PullResult:
    """``reference`` as pulled (tag or digest); ``digest`` is the top-level manifest's (docker's
    ``Digest:`` line); ``new`` is False when the image was already here under that name."""

    reference: Reference
    image_id: Digest
    digest: Digest
    new: bool
    platform: Platform
    layers: list[str] = field(default_factory=list)  # per layer: "exists" or "pulled"


def select_platform(index_data: bytes, want: Platform, where: str) -> Descriptor:
    """The manifest of an index that serves ``want`` (exact variant first, then any variant)."""
    index = parse_index(index_data, where)
    candidates = [d for d in index.manifests if d.platform is not None and want.matches(d.platform)
                  and d.media_type not in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST)]
    # Attestation manifests (BuildKit) carry platform unknown/unknown; matches() already drops them.
    if not candidates:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    wanted = want.normalized()
    for d in candidates:
        assert d.platform is not None
        if d.platform.normalized().variant == wanted.variant:
            return d
    return candidates[0]


def _fetch_manifest(sources: Sequence[Repository], reference: str) -> tuple[FetchedManifest, int]:
    """The manifest from the first source that serves it, and that source's position."""
    last: RegistryError | None = None
    for i, repo in enumerate(sources):
        try:
            return repo.get_manifest(reference), i
        except RegistryError as exc:
            last = exc
            # A mirror that lacks the image or is down is skipped; the origin's error is the one shown.
    assert last is not None
    raise last


def pull(store: Store, registry: RegistryClient, ref: Reference, *, platform: Platform | None = None,
         progress: ProgressSink | None = None, unpack: bool = True, max_workers: int = 4) -> PullResult:
    """Pull ``ref`` (tag, or digest) for ``platform`` (default: this host's) into ``store``.

    Waits before a retry are reported as message events (``...; retrying in 2 s``)."""
    sink = progress or discard
    with registry.reporting(lambda text: sink(Event(id="", name=text))):
        return _pull(store, registry, ref, platform, sink, unpack, max_workers)


def _pull(store: Store, registry: RegistryClient, ref: Reference, platform: Platform | None,
          sink: ProgressSink, unpack: bool, max_workers: int) -> PullResult:
    if ref.tag is None and ref.digest is None:
        ref = ref.tag_or_latest()
    sources = registry.pull_sources(ref.domain, ref.path)
    wanted = platform or host()
    top, first = _fetch_manifest(sources, ref.digest or ref.tag or "latest")
    sources = list(sources[first:])
    where = ref.familiar()
    fetched = top
    if top.media_type in mt.SCHEMA1:
        raise CorruptData(f"{where}: Docker image manifest schema 1 is not supported; "
                          "push the image again with a current client")
    if top.media_type in mt.INDEXES:
        child = select_platform(top.data, wanted, where)
        fetched = _fetch_manifest(sources, child.digest)[0]
    manifest = parse_manifest(fetched.data, f"manifest of {where}")
    # docker says this once the manifest is found (so not before a "manifest unknown" error)
    sink(Event(id=ref.digest or ref.tag or "latest", name=f"Pulling from {ref.path}", status="started"))
    with store.lease() as lease:
        config_data = _config(store, sources, manifest.config, lease)
        config = ImageConfig.from_json(config_data)
        single = top.media_type not in mt.INDEXES
        if platform is not None and single and not platform.matches(config.platform):
            raise NotFound(f"image with reference {where} was found but does not match the specified "
                           f"platform: wanted {platform}, actual: {config.platform}")
        if len(config.diff_ids) != len(manifest.layers):
            raise CorruptData(f"{where}: manifest has {len(manifest.layers)} layers, config has "
                              f"{len(config.diff_ids)} diff IDs")
        image_id = Digest.from_bytes(config_data)
        name = ref.name_only()
        tag_name = str(ref) if ref.tag is not None and ref.digest is None else ""
        repo_digest = f"{name}@{top.digest}"
        existing = store.meta.get_image(image_id)
        # An index's repo digest names one of its platforms' images; the tag's index names them all.
        tagged = not tag_name or image_id in {m.image_id for m in tag_platforms.members(store, tag_name)}
        already = (existing is not None and tagged
                   and (store.meta.get_repo_digest(str(name), top.digest) == image_id
                        or (bool(tag_name) and store.meta.tag_index(tag_name) == str(top.digest))))
        outcomes = _layers(store, sources, manifest, config.diff_ids, lease, sink, unpack, max_workers)
        store.content.ingest(fetched.data, expected=fetched.digest, before_publish=lease.add_blob)
        if top is not fetched:
            store.content.ingest(top.data, expected=top.digest, before_publish=lease.add_blob)
        kept = _attestations(store, sources, top, fetched, lease) if tag_name and top is not fetched else []
        # From an index, the pulled platform replaces only its own entry of the tag (containerd's store
        # keeps the others); a single manifest is the whole tag.
        commit_image(store, config_data, names=[tag_name] if tag_name else [], repo_digests=[repo_digest],
                     manifest_digest=fetched.digest, add_platform=platform is not None or not single)
        if kept:
            from dockyard.imageops.attestations import keep

            keep(store, tag_name, kept)
        if tag_name and not single:  # the registry's index digest stays the tag's when it holds them all
            tag_platforms.adopt_index(store, tag_name, top.data)
    return PullResult(ref, image_id, top.digest, not already, config.platform, outcomes)


def pull_platforms(store: Store, registry: RegistryClient, ref: Reference, *,
                   platforms: Sequence[Platform] | None = None, progress: ProgressSink | None = None,
                   unpack: bool = True, max_workers: int = 4) -> list[PullResult]:
    """Pull several platforms of ``ref`` (every platform of its index when ``platforms`` is None) under
    one tag; when the tag then holds every platform the index lists, the index itself is kept."""
    if ref.tag is None and ref.digest is None:
        ref = ref.tag_or_latest()
    sources = registry.pull_sources(ref.domain, ref.path)
    top = _fetch_manifest(sources, ref.digest or ref.tag or "latest")[0]
    if top.media_type not in mt.INDEXES:
        return [pull(store, registry, ref, platform=platforms[0] if platforms else None, progress=progress,
                     unpack=unpack, max_workers=max_workers)]
    listed = [d for d in parse_index(top.data, ref.familiar()).manifests if d.platform is not None
              and d.platform.architecture != "unknown" and mt.is_manifest(d.media_type)]
    wanted = list(platforms) if platforms is not None else [d.platform for d in listed if d.platform]
    # Each pull adds its platform to the tag; the last one adopts the index once the tag holds it all.
    return [pull(store, registry, ref, platform=p, progress=progress, unpack=unpack, max_workers=max_workers)
            for p in wanted]


def pull_all_tags(store: Store, registry: RegistryClient, ref: Reference, *,
                  platform: Platform | None = None, progress: ProgressSink | None = None,
                  unpack: bool = True, max_workers: int = 4) -> list[PullResult]:
    """Pull every tag of ``ref``'s repository (``docker pull --all-tags``)."""
    if ref.tag is not None or ref.digest is not None:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    sources = registry.pull_sources(ref.domain, ref.path)
    last: RegistryError | None = None
    for repo in sources:
        try:
            tags = repo.tags()
            break
        except RegistryError as exc:
            last = exc
    else:
        assert last is not None
        raise last
    return [pull(store, registry, ref.with_tag(t), platform=platform, progress=progress, unpack=unpack,
                 max_workers=max_workers) for t in sorted(tags)]


def _attestations(store: Store, sources: Sequence[Repository], top: FetchedManifest,
                  fetched: FetchedManifest, lease: Lease) -> list[Descriptor]:
    """The attestation manifests ``top`` (an index) lists for the pulled image, fetched with their
    statements (small blobs) so that the tag keeps them."""
    from dockyard.imageops.attestations import REFERENCE_DIGEST, is_attestation

    out = []
    for desc in parse_index(top.data, "index").manifests:
        if not is_attestation(desc) or desc.annotations.get(REFERENCE_DIGEST) != str(fetched.digest):
            continue
        got = _fetch_manifest(sources, str(desc.digest))[0]
        manifest = parse_manifest(got.data, f"attestation manifest {desc.digest}")
        for blob in (manifest.config, *manifest.layers):
            _config(store, sources, blob, lease)
        store.content.ingest(got.data, expected=got.digest, before_publish=lease.add_blob)
        out.append(desc)
    return out


def _config(store: Store, sources: Sequence[Repository], desc: Descriptor, lease: Lease) -> bytes:
    lease.add_blob(desc.digest)
    if store.content.exists(desc.digest):
        return store.content.read(desc.digest)
    last: RegistryError | None = None
    for repo in sources:
        try:
            data = repo.get_blob_bytes(desc)
            break
        except RegistryError as exc:
            last = exc
    else:
        assert last is not None
        raise last
    store.content.ingest(data, expected=desc.digest, size=desc.size)
    return data


def _layers(store: Store, sources: Sequence[Repository], manifest: Manifest, diff_ids: Sequence[Digest],
            lease: Lease, sink: ProgressSink, unpack: bool, max_workers: int) -> list[str]:
    chains = chain_ids(diff_ids)
    cancelled = threading.Event()
    # An empty layer is stored but never unpacked: it has no snapshot (unpack_layers skips it).
    unpacks = [unpack and diff_id != EMPTY_LAYER for diff_id in diff_ids]
    plan = [_needs(store, desc, diff_id, chain, u)
            for desc, diff_id, chain, u in zip(manifest.layers, diff_ids, chains, unpacks, strict=True)]
    if any(plan):  # docker lists layers only when something is to be fetched
        for desc, needed in zip(manifest.layers, plan, strict=True):
            if needed:
                sink(Event(id=desc.digest.short, name="Pulling fs layer", status="started", total=desc.size))
            else:
                sink(Event(id=desc.digest.short, name="Already exists", status="cached", total=desc.size))

    def one(i: int) -> str:
        desc, diff_id, chain, unpack = manifest.layers[i], diff_ids[i], chains[i], unpacks[i]
        if desc.media_type not in mt.LAYERS and desc.media_type:
            raise CorruptData(f"layer {desc.digest}: unsupported media type {desc.media_type}")
        lease.add_blob(desc.digest)
        if unpack:
            lease.add_snapshot(chain)
        have_blob = _have_blob(store, desc, diff_id)
        need_snap = unpack and not store.snapshots.exists(chain)
        if have_blob and not need_snap:
            return "exists"
        if have_blob:  # only the snapshot is missing: unpack the stored blob
            sink(Event(id=desc.digest.short, name="Extracting" if unpack else "Verifying Checksum",
                       status="running", current=0, total=desc.size))
            size = _extract(store, desc, diff_id, chain, unpack, verify_blob=True, sink=sink,
                            cancelled=cancelled)
        else:
            size = _stream(store, sources, desc, diff_id, chain, unpack, lease, sink, cancelled)
        store.meta.add_layer_blob(LayerBlob(diff_id, desc.digest, desc.media_type or mt.OCI_LAYER_GZIP,
                                            desc.size, size))
        sink(Event(id=desc.digest.short, name="Pull complete", status="done", current=desc.size,
                   total=desc.size))
        return "pulled"

    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="pull")
    try:
        futures = [pool.submit(one, i) for i in range(len(manifest.layers))]
        done, _ = wait_futures(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None:
                raise exc
        return [f.result() for f in futures]
    except BaseException:
        cancelled.set()  # workers stop at their next piece; their writers remove the temp files
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Progress:
    """Passes reads through, reporting how far into the blob extraction is; stops when cancelled."""

    def __init__(self, inner: BinaryIO | HashingReader | Pipe, desc: Descriptor, sink: ProgressSink,
                 name: str, cancelled: threading.Event, after: threading.Event | None = None) -> None:
        self._cancelled = cancelled
        self._after = after  # report nothing before this is set (the download's own progress shows)
        self._inner = inner
        self._desc = desc
        self._sink = sink
        self._name = name
        self.done = 0
        self._reported = 0

    def read(self, n: int = -1) -> bytes:
        if self._cancelled.is_set():
            raise Interrupted("pull interrupted")
        data = self._inner.read(n)
        self.done += len(data)
        if self._after is not None and not self._after.is_set():
            return data
        if self.done - self._reported >= PIECE or (not data and self.done != self._reported):
            self._reported = self.done
            self._sink(Event(id=self._desc.digest.short, name=self._name, status="running",
                             current=min(self.done, self._desc.size), total=self._desc.size))
        return data


def _have_blob(store: Store, desc: Descriptor, diff_id: Digest) -> bool:
    known = store.meta.layer_by_blob(desc.digest)
    return known is not None and known.diff_id == diff_id and store.content.exists(desc.digest)


def _needs(store: Store, desc: Descriptor, diff_id: Digest, chain: Digest, unpack: bool) -> bool:
    return not _have_blob(store, desc, diff_id) or (unpack and not store.snapshots.exists(chain))


class _Tee:
    """The download's sink: each piece goes into the content-store writer (which hashes it: the
    download's digest check uses that hash, ``hasher``) and on to the extraction through ``pipe``:
    at once while the extraction waits for bytes, else gathered up to ``PIECE`` bytes (the network's
    pieces are about 64 KiB: handing each over on its own costs more in thread switches than the
    copy that joins them)."""

    def __init__(self, writer: Writer, pipe: Pipe) -> None:
        self._writer = writer
        self._pipe = pipe
        self.hasher = writer.hasher
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._writer.write(data)
        self._held.append(data)
        self._size += len(data)
        if self._size >= PIECE or self._pipe.drained():
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._held:
            self._pipe.write(self._held[0] if len(self._held) == 1 else b"".join(self._held))
            self._held.clear()
            self._size = 0


def _stream(store: Store, sources: Sequence[Repository], desc: Descriptor, diff_id: Digest, chain: Digest,
            unpack: bool, lease: Lease, sink: ProgressSink, cancelled: threading.Event) -> int:
    """Download the layer and, as its bytes arrive, decompress, hash and unpack it; return its tar size.

    The blob is published in the content store only once both its digest and its diff ID are
    verified, just before the snapshot (if any) is; a failure leaves neither. A source that fails
    (or sends a bad blob) is given up for the next one, from the start."""
    last: Exception | None = None
    for repo in sources:
        try:
            return _stream_from(store, repo, desc, diff_id, chain, unpack, lease, sink, cancelled)
        except _SourceFailed as exc:
            last = exc.error  # try the next source (a mirror may be stale or broken)
    assert last is not None
    raise last


class _SourceFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _give_up(pipe: Pipe, exc: BaseException, cancelled: threading.Event) -> None:
    """Stop reading ``pipe`` after ``exc``. A failed extraction may come from a bad download (a
    corrupt gzip stream): unless the pull is being stopped, the download goes on, unread, to tell
    whether the blob was the cause (then its digest error is the one raised, or the next source tried)."""
    pipe.abandon(discard=isinstance(exc, Exception) and not isinstance(exc, Interrupted)
                 and not cancelled.is_set())


def _stream_from(store: Store, repo: Repository, desc: Descriptor, diff_id: Digest, chain: Digest,
                 unpack: bool, lease: Lease, sink: ProgressSink, cancelled: threading.Event) -> int:
    result: list[int] = []
    eid = desc.digest.short
    step = "Extracting" if unpack else "Verifying Checksum"

    def fill(target: Path | None) -> None:
        failed: list[BaseException] = []
        downloaded = threading.Event()

        def progress(done: int) -> None:
            if cancelled.is_set():
                raise Interrupted("pull interrupted")
            sink(Event(id=eid, name="Downloading", status="running", current=done, total=desc.size))

        with store.content.writer(desc.digest, desc.size) as writer:
            # Up to ~32 MiB held per layer while extraction lags (then TCP waits): a deeper queue lets
            # the registry finish sending sooner (measured: depth 8 cost ~0.2 s on the 4-layer bench).
            pipe = Pipe(depth=32)

            def download() -> None:
                tee = _Tee(writer, pipe)
                try:
                    repo.fetch_blob(desc, tee, progress)  # verifies size and digest
                    tee.flush()
                except BaseException as exc:
                    failed.append(exc)
                    pipe.fail(exc)
                    return
                sink(Event(id=eid, name="Download complete", status="running", current=desc.size,
                           total=desc.size))
                downloaded.set()
                pipe.close()

            thread = threading.Thread(target=download, name="pull-download", daemon=True)
            thread.start()
            try:
                # Four threads: the download (network reads, the blob's file and hash), decompression,
                # the diff ID's hash, and extraction on this one; isal, sha256 and file I/O release the GIL.
                reader = _Progress(pipe, desc, sink, step, cancelled, after=downloaded)
                raw, _ = open_decompressed(reader)
                with ReadAhead(raw) as decompressed:
                    diff_hash = HashingReader(decompressed)
                    with ReadAhead(diff_hash) as ahead:
                        try:
                            if target is not None:
                                apply_layer_overlay(ahead, target)
                            while ahead.read(PIECE):  # padding after the tar's end counts in the diff ID
                                pass
                        except BaseException as exc:
                            _give_up(pipe, exc, cancelled)  # first: the read-ahead threads may wait on it
                            raise
                while reader.read(PIECE):  # bytes after the compressed stream's end (none, normally)
                    pass
            except BaseException as exc:
                _give_up(pipe, exc, cancelled)
                thread.join()
                if failed and isinstance(failed[0], (RegistryError, DigestMismatch)):
                    raise _SourceFailed(failed[0]) from None
                raise
            thread.join()
            if failed:  # the pipe ended early only because the download failed (raised above)
                raise failed[0]
            if diff_hash.digest != diff_id:
                raise DigestMismatch(diff_id, diff_hash.digest, f"diff ID of layer blob {desc.digest}")
            writer.commit(lease.add_blob)
        result.append(diff_hash.size)

    if unpack:
        store.snapshots.create(chain, fill)
    if not result:  # not unpacking, or another process made the snapshot first
        fill(None)
    sink(Event(id=eid, name=step, status="running", current=desc.size, total=desc.size))
    return result[0]


def _extract(store: Store, desc: Descriptor, diff_id: Digest, chain: Digest, unpack: bool, *,
             verify_blob: bool, sink: ProgressSink, cancelled: threading.Event) -> int:
    """Verify the layer's diff ID (unpacking it into its snapshot if asked); return its tar size.

    ``verify_blob`` re-hashes the compressed blob too (not needed right after a verified download).
    """
    result: list[int] = []

    def fill(target: Path | None) -> None:
        with store.content.open(desc.digest) as f:
            # Hashing a blob just verified by its download would only cost time.
            blob_hash = HashingReader(f) if verify_blob else None
            reader = _Progress(blob_hash or f, desc, sink, "Extracting" if unpack else "Verifying Checksum",
                               cancelled)
            raw, _ = open_decompressed(reader)
            # Three threads (isal, sha256 and file I/O release the GIL): reading, the blob's hash and
            # decompression; the diff ID's hash; extraction on this one.
            with ReadAhead(raw) as decompressed:
                diff_hash = HashingReader(decompressed)
                with ReadAhead(diff_hash) as ahead:
                    if target is not None:
                        apply_layer_overlay(ahead, target)
                    while ahead.read(PIECE):  # padding after the tar's end still counts in the diff ID
                        pass
            while reader.read(PIECE):
                pass
        if blob_hash is not None and blob_hash.digest != desc.digest:
            raise DigestMismatch(desc.digest, blob_hash.digest, f"layer blob {desc.digest}")
        if diff_hash.digest != diff_id:
            raise DigestMismatch(diff_id, diff_hash.digest, f"diff ID of layer blob {desc.digest}")
        result.append(diff_hash.size)

    if unpack:
        store.snapshots.create(chain, fill)
        if not result:  # another process made the snapshot first; the blob still needs its check
            fill(None)
    else:
        fill(None)
    return result[0]
