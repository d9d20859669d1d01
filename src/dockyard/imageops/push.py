"""Push a local image to a registry (``docker push``).

    push(store, registry, ref, source=None, compression="gzip", progress=None) -> PushResult

Layers go up in parallel: each is first asked for by HEAD (``Layer already exists``), then mounted
from another repository of the same registry this store knows holds it (``Mounted from ...``),
else uploaded (one PUT, or PATCH chunks with ``chunk_size``). A layer the store holds only
uncompressed (a local build, a loaded archive) is compressed as it is pushed (isal gzip in parallel
members, or zstd with workers), its bytes streamed to the registry as they are made and not kept, as
docker's push keeps none: the store remembers the digest and size it had, so a later push asks for
that digest (or mounts it) before compressing anything. An image pulled earlier is pushed with
its original manifest bytes when they still describe it, so its digest does not change; otherwise
a Docker schema 2 manifest is written (OCI for zstd layers). The config goes up alongside the
layers, the manifest last.

Progress events: ``Preparing``, ``Pushing`` (bytes), ``Pushed``, ``Layer already exists``,
``Mounted from <repo>``; ``id`` = the first 12 hex digits of the layer's blob digest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor
from functools import partial

from dockyard.content.verify import CorruptBlob
from dockyard.errors import DockyardError, Interrupted, InvalidArgument, NotFound, RegistryError
from dockyard.image import LayerBlob
from dockyard.imageops import Lease, Store
from dockyard.imageops.commit import has_layer_form, layer_blob, stream_layer
from dockyard.imageops.images import resolve
from dockyard.interruptible import in_background, wait_futures
from dockyard.interruptible import result as wait_result
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference, parse_normalized
from dockyard.progress import Event, ProgressSink, discard
from dockyard.record import field, record
from dockyard.registry.client import RegistryClient, Repository

__all__ = ["PushResult", "push", "push_index"]

COMPRESSIONS = ("gzip", "zstd")


@record(slots=True)
class PushResult:
    """``tag`` is what docker prints before ``: digest:`` (the tag, or the digest for a digest push)."""

    reference: Reference
    tag: str
    digest: Digest
    size: int
    media_type: str
    layers: dict[str, str] = field(default_factory=dict)  # blob digest -> exists/mounted/uploaded
    manifests: tuple[Descriptor, ...] = ()  # an index's: the image manifests pushed, with their platforms


def push(store: Store, registry: RegistryClient, ref: Reference, *, source: str | None = None,
         compression: str = "gzip", progress: ProgressSink | None = None, chunk_size: int = 0,
         max_workers: int = 4, by_digest: bool = False, attest_as_referrers: bool = False) -> PushResult:
    """Push the local image ``source`` (default: ``ref`` itself) as ``ref``.

    With ``by_digest`` the manifest is put under its digest only (an index member), not the tag.
    Waits before a retry are reported as message events (``...; retrying in 2 s``)."""
    if compression not in COMPRESSIONS:
        raise InvalidArgument(f"unsupported compression {compression!r}: use gzip or zstd")
    sink = progress or discard
    if source is None and ref.digest is None:
        held = store.meta.tag_platforms(str(ref.tag_or_latest()))
        if held:  # a multi-platform tag: every platform it holds, and the index
            return push_index(store, registry, ref, [m.image_id for m in held], compression=compression,
                              progress=progress, attest_as_referrers=attest_as_referrers)
    with registry.reporting(lambda text: sink(Event(id="", name=text))):
        return _push(store, registry, ref, source, compression, sink, chunk_size, max_workers, by_digest)


def _push(store: Store, registry: RegistryClient, ref: Reference, source: str | None, compression: str,
          sink: ProgressSink, chunk_size: int, max_workers: int, by_digest: bool) -> PushResult:
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {ref.familiar()}")
    ref = ref.tag_or_latest()
    try:
        image_id = resolve(store, source or str(ref))
    except NotFound:
        if source:
            raise
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}") from None
    record = store.meta.get_image(image_id)
    if record is None:
        raise NotFound(f"No such image: {source or ref.familiar()}")
    label = f"image {source or ref.familiar()}"
    config_data = store.content.read(image_id, f"{label}: config")
    config = ImageConfig.from_json(config_data)
    repo = registry.repository(ref.domain, ref.path)
    cancelled = threading.Event()  # set when one layer fails: the others stop at their next piece
    settled: dict[str, tuple[str, str]] = {}  # blobs a first push's layer step made exist up there
    mounts = _mount_candidates(store, ref, config.diff_ids)
    with store.lease() as lease:
        original = _original_manifest(store, record.manifest_digest, image_id, compression)
        docker = compression == "gzip"
        makers: list[Callable[[], LayerBlob]]
        if original is not None:
            makers = [partial(_form, store, lease, layer) for layer in original.layers]
            config_desc = original.config
        else:
            # Compressing (first push of a built layer) runs in the upload workers, in parallel.
            # A layer compressed now shows "Pushing" over its uncompressed bytes meanwhile, as docker's
            # streamed push does; the upload then reports the compressed bytes.
            makers = [partial(_compress_while_uploading, store, repo, diff_id, compression, lease, docker,
                              partial(_compressing, sink, Digest(diff_id).short, cancelled), settled,
                              mounts.get(str(diff_id), []))
                      for diff_id in config.diff_ids]
            config_type = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
            config_desc = Descriptor(config_type, image_id, len(config_data))
        # The config goes up alongside the layers (as containerd's push does: a registry checks at
        # the manifest only that what it names is there), not after them on the way to the manifest;
        # on a daemon thread, which does not hold up the exit of a push Ctrl-C or a layer ended.
        config_blob = store.content.verified(image_id, what=f"{label}: config")
        config_up = in_background(partial(repo.upload_blob, config_desc, config_blob.open), "push-config")
        forms, outcomes = _upload_layers(store, repo, config.diff_ids, makers, mounts, sink, chunk_size,
                                          max_workers, cancelled, label, settled)
        wait_result(config_up)
        if original is not None:
            manifest_data = store.content.read(record.manifest_digest, f"{label}: manifest")
            media_type = original.media_type
        else:
            layers = tuple(Descriptor(f.media_type, f.digest, f.size) for f in forms)
            media_type = mt.DOCKER_MANIFEST if compression == "gzip" else mt.OCI_MANIFEST
            manifest_data = Manifest(config_desc, layers, media_type=media_type).to_json()
        target = str(Digest.from_bytes(manifest_data)) if by_digest else ref.tag or "latest"
        digest = repo.put_manifest(target, manifest_data, media_type)
        store.content.ingest(manifest_data, expected=digest, before_publish=lease.add_blob)
        with store.meta.transaction():
            store.meta.add_repo_digest(str(ref.name_only()), digest, image_id)
    return PushResult(ref, ref.tag or "latest", digest, len(manifest_data), media_type, outcomes)


def _form(store: Store, lease: Lease, desc: Descriptor) -> LayerBlob:
    known = store.meta.layer_by_blob(desc.digest)
    assert known is not None
    lease.add_blob(desc.digest)
    return LayerBlob(known.diff_id, desc.digest, desc.media_type, desc.size, known.uncompressed_size)


def _compressing(sink: ProgressSink, eid: str, cancelled: threading.Event, done: int, total: int) -> None:
    if cancelled.is_set():
        raise Interrupted("push interrupted")
    sink(Event(id=eid, name="Pushing", status="running", current=done, total=total))


#: Compressed pieces a first push may hold ahead of its upload. Few: what is queued when the last
#: piece is made is what the push then waits for the registry to take in (eight pieces kept a
#: local registry busy ~70 ms after the compression ended).
_AHEAD = 2


def _compress_while_uploading(store: Store, repo: Repository, diff_id: str, compression: str, lease: Lease,
                              docker: bool, progress: Callable[[int, int], None],
                              settled: dict[str, tuple[str, str]], mount_from: Sequence[str]) -> LayerBlob:
    """The layer in ``compression``, which the store may not hold (a local build, a loaded image).

    A layer pushed before is looked for by the digest it had then (``pushed_layers``): present in
    the repository, or mounted from ``mount_from``, it is not compressed at all. Else it is
    compressed and its bytes streamed to the registry as they are made (one chunked PATCH; the
    digest, known at the end, goes in the closing PUT), keeping no copy, as docker's push does: the
    store remembers the digest and size only. If that upload fails, the layer is compressed again
    into the store and the ordinary upload (with its retries) follows. ``settled`` gets each blob
    this made exist in the repository: digest -> (outcome, repository it was mounted from)."""
    if has_layer_form(store, diff_id, compression):
        return layer_blob(store, diff_id, compression, lease=lease, docker_media_type=docker,
                          progress=progress)
    media_type = mt.layer_media_type(compression, docker=docker)
    location = None  # an upload the registry started when it could not mount
    known = store.meta.pushed_layer(diff_id, compression)
    if known is not None:
        digest, size = known
        if repo.blob_exists(digest):
            settled[str(digest)] = ("exists", "")
            return LayerBlob(Digest(diff_id), digest, media_type, size)
        try:
            mounted, location = repo.mount_first(digest, mount_from)
        except RegistryError:  # a refused mount only means the layer goes up itself
            mounted = ""
        if mounted:
            settled[str(digest)] = ("mounted", mounted)
            return LayerBlob(Digest(diff_id), digest, media_type, size)
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_AHEAD)
    upload_over = threading.Event()
    made: list[Descriptor] = []  # the blob, once compressed
    failure: list[BaseException] = []

    def chunks() -> Iterator[bytes]:
        while (item := pieces.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def finished() -> Descriptor:
        return made[0]

    def upload() -> None:
        try:
            repo.upload_stream(chunks(), finished, location=location)
        except BaseException as exc:  # the fallback upload will say what is wrong, if anything still is
            failure.append(exc)
        finally:
            upload_over.set()

    def put(item: bytes | BaseException | None) -> None:
        while not upload_over.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=upload, name="push-stream", daemon=True)
    thread.start()
    try:
        form = stream_layer(store, diff_id, compression, put, docker_media_type=docker, progress=progress)
    except BaseException:
        put(Interrupted("push interrupted"))  # ends the request body: the registry drops the upload
        thread.join()
        raise
    made.append(Descriptor(form.media_type, form.digest, form.size))
    put(None)
    thread.join()
    if failure:
        return layer_blob(store, diff_id, compression, lease=lease, docker_media_type=docker,
                          progress=progress)
    store.meta.add_pushed_layer(diff_id, compression, form.digest, form.size)
    settled[str(form.digest)] = ("uploaded", "")
    return form


def _original_manifest(store: Store, manifest_digest: str, image_id: Digest,
                       compression: str) -> Manifest | None:
    """The manifest the image was pulled or pushed with, if it still fits (same config, blobs here)."""
    if not manifest_digest or not store.content.exists(manifest_digest):
        return None
    try:
        manifest = parse_manifest(store.content.read(manifest_digest))
    except DockyardError:  # an unreadable old manifest only means we write a new one
        return None
    if manifest.config.digest != image_id:
        return None
    for layer in manifest.layers:
        if mt.layer_compression(layer.media_type) != compression or not store.content.exists(layer.digest):
            return None
        if store.meta.layer_by_blob(layer.digest) is None:
            return None
    return manifest


def _mount_candidates(store: Store, ref: Reference, diff_ids: Sequence[str]) -> dict[str, list[str]]:
    """For each diff ID: other repositories on the same registry that hold an image with it."""
    wanted = set(diff_ids)
    out: dict[str, list[str]] = {}
    for name, _digest, image_id in store.meta.repo_digests():
        try:
            other = parse_normalized(name)
        except InvalidArgument:
            continue
        if other.domain != ref.domain or other.path == ref.path:
            continue
        record = store.meta.get_image(image_id)
        if record is None:
            continue
        for diff_id in wanted.intersection(record.diff_ids):
            repos = out.setdefault(diff_id, [])
            if other.path not in repos and len(repos) < 3:
                repos.append(other.path)
    return out


def _upload_layers(store: Store, repo: Repository, diff_ids: Sequence[str],
                   makers: Sequence[Callable[[], LayerBlob]],
                   mounts: dict[str, list[str]], sink: ProgressSink, chunk_size: int,
                   max_workers: int, cancelled: threading.Event,
                   label: str, settled: dict[str, tuple[str, str]]) -> tuple[list[LayerBlob], dict[str, str]]:
    uploading: dict[str, threading.Event] = {}
    lock = threading.Lock()

    for diff_id in diff_ids:
        sink(Event(id=Digest(diff_id).short, name="Preparing", status="started"))

    def one(make: Callable[[], LayerBlob]) -> tuple[LayerBlob, str]:
        try:
            form = make()  # may compress a stored form, read through a verifier
        except CorruptBlob as exc:
            raise CorruptBlob(f"{label}: {exc}", exc.digest) from None
        with lock:  # the same layer twice in one image goes up once
            first = form.digest not in uploading
            done_event = uploading.setdefault(form.digest, threading.Event())
        if not first:
            done_event.wait()
            return form, "exists"
        try:
            return form, _push_one(form)
        finally:
            done_event.set()

    def _push_one(form: LayerBlob) -> str:
        eid = form.diff_id.short  # docker names pushed layers by diff ID (pulled ones by blob digest)

        def progress(done: int) -> None:
            if cancelled.is_set():
                raise Interrupted("push interrupted")
            sink(Event(id=eid, name="Pushing", status="running", current=done, total=form.size))

        sources = mounts.get(str(form.diff_id), [])
        if str(form.digest) in settled:
            outcome, source = settled[str(form.digest)]
            sources = [source]
        else:
            desc = Descriptor(form.media_type, form.digest, form.size)
            # Read through a verifier: a blob gone bad in the store fails here, named, and is quarantined.
            blob = store.content.verified(form.digest, form.size, f"{label}: layer {form.diff_id}")
            outcome = repo.upload_blob(desc, blob.open, mount_from=sources,
                                       chunk_size=chunk_size, progress=progress)
        if outcome == "exists":
            sink(Event(id=eid, name="Layer already exists", status="cached",
                       current=form.size, total=form.size))
        elif outcome == "mounted":
            sink(Event(id=eid, name=f"Mounted from {sources[0] if sources else repo.name}",
                       status="done", current=form.size, total=form.size))
        else:
            sink(Event(id=eid, name="Pushed", status="done", current=form.size,
                       total=form.size))
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="push")
    try:
        futures = [pool.submit(one, m) for m in makers]
        done, _ = wait_futures(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None:
                raise exc
        results = [f.result() for f in futures]
        return [r[0] for r in results], {str(f.digest): o for f, o in reversed(results)}
    except BaseException:
        cancelled.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def push_index(store: Store, registry: RegistryClient, ref: Reference, images: Sequence[str], *,
               compression: str = "gzip", progress: ProgressSink | None = None,
               attest_as_referrers: bool = False) -> PushResult:
    """Push several local images (one per platform) and one index naming them under ``ref``'s tag.

    Each image's manifest goes up by digest; the index is a Docker manifest list when every member is a
    Docker manifest (gzip) and it carries no attestations, else an OCI index. When ``images`` are the
    platforms of the local tag ``ref``, the tag then names the index as pushed (so the local digest is
    the registry's). The tag's attestation manifests go into the index, or with ``attest_as_referrers``
    hang off the image manifests as OCI 1.1 referrers (a lone image then goes up without an index)."""
    from dockyard.imageops import attestations, platforms
    from dockyard.metadata import TagPlatform
    from dockyard.oci.manifest import Index

    ref = ref.tag_or_latest()
    name = str(ref)
    local_manifests = {str(m.image_id): str(m.manifest_digest) for m in store.meta.tag_platforms(name)}
    members: list[Descriptor] = []
    pushed_by_local: dict[str, Descriptor] = {}
    for image_id in images:
        pushed = push(store, registry, ref, source=image_id, compression=compression, progress=progress,
                      by_digest=True)
        member = Descriptor(pushed.media_type, pushed.digest, pushed.size,
                            platform=platforms.platform_of(store, resolve(store, image_id)))
        members.append(member)
        pushed_by_local[local_manifests.get(str(resolve(store, image_id)), "")] = member
    repo = registry.repository(ref.domain, ref.path)
    local_attestations = attestations.tag_attestations(store, name)
    extra = attestations.push_attestations(store, repo, local_attestations, pushed_by_local,
                                           as_referrers=attest_as_referrers)
    if len(members) == 1 and attest_as_referrers:
        one = store.content.read(members[0].digest)
        digest = repo.put_manifest(ref.tag or "latest", one, members[0].media_type)
        return PushResult(ref, ref.tag or "latest", digest, len(one), members[0].media_type)
    docker = not local_attestations and all(m.media_type == mt.DOCKER_MANIFEST for m in members)
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    data = Index(tuple(members) + tuple(extra), media_type=media_type).to_json()
    digest = repo.put_manifest(ref.tag or "latest", data, media_type)
    with store.gc_lock(), store.meta.transaction():
        store.content.ingest(data, expected=digest)
        ids = [resolve(store, i) for i in images]
        # With referrers the local index keeps the attestations the pushed one no longer carries.
        keep_local = attest_as_referrers and bool(local_attestations)
        same = {str(m.image_id) for m in store.meta.tag_platforms(name)} == {str(i) for i in ids}
        if same and not keep_local:
            held = [TagPlatform(str(m.platform), i, m.digest) for m, i in zip(members, ids, strict=True)]
            platforms.set_members(store, name, held, digest)
            default = store.meta.get_tag(name)
            if default is not None:  # as containerd's store: the tag's repo digest is the index's
                store.meta.add_repo_digest(str(ref.name_only()), digest, default)
    return PushResult(ref, ref.tag or "latest", digest, len(data), media_type, manifests=tuple(members))
