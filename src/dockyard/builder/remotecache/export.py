"""Exporting the build cache (``--cache-to``): the records of this build as an OCI artifact.

The artifact is an OCI image manifest whose config is the cache document (``document.MEDIA_TYPE``)
and whose layers are the layer blobs the records need. Blobs go first (a registry is asked by HEAD,
then by cross-repository mount from the cache they were imported from, before anything is sent),
the manifest last, so a reader never sees a manifest whose blobs are not there yet; two runners
exporting to one ref at once each put a complete manifest, and the last one wins.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from dockyard.builder.remotecache.backends import Backend, RegistryBackend, open_backend
from dockyard.builder.remotecache.base import Entry, select
from dockyard.builder.remotecache.document import ARTIFACT_TYPE, MEDIA_TYPE, CacheDocument
from dockyard.builder.remotecache.mounts import MOUNT_CHUNK, MOUNT_INDEX, chunk_descriptors
from dockyard.builder.remotecache.mounts import snapshot as mount_snapshot
from dockyard.builder.remotecache.remote import RemoteCache
from dockyard.builder.remotecache.spec import CacheSpec
from dockyard.errors import BuildError, DockyardError
from dockyard.imageops import Lease, Store
from dockyard.imageops.commit import layer_blob
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest
from dockyard.progress import ProgressSink, VertexCompleted, VertexStarted
from dockyard.registry.client import RegistryClient


def document(store: Store, entries: Sequence[Entry], *, with_inputs: bool = True) -> CacheDocument:
    """The records of ``entries`` (layers not filled in)."""
    doc = CacheDocument()
    for entry in entries:
        rec = store.meta.get_cache(entry.key, touch=False)
        inputs = None
        if rec is not None and with_inputs:
            try:
                inputs = json.loads(rec.data or "{}").get("inputs")
            except (ValueError, AttributeError):
                inputs = None
        doc.add(entry.key, store.content.read(entry.config), entry.stage_name, inputs)
    return doc


def inline_document(store: Store, entries: Sequence[Entry]) -> object:
    """The cache document as a JSON value to put in the exported image's config (layers implied;
    no step inputs, which would make every image config as large as its context's file list)."""
    return json.loads(document(store, entries, with_inputs=False).to_json())


def export_cache(store: Store, spec: CacheSpec, entries: Sequence[Entry], *, lease: Lease,
                 registry: Callable[[], RegistryClient], remote: RemoteCache | None,
                 mounts: Sequence[Path] = ()) -> dict[str, str]:
    """Write the cache of ``entries`` to ``spec`` (registry or local); blob digest -> what happened.

    With ``spec.mounts`` the cache mount directories ``mounts`` go too, and those imported but not
    used here are carried over (registry-side when they can be)."""
    backend = open_backend(spec.type, spec.location, spec.tag, registry)
    doc = document(store, entries)
    outcomes: dict[str, str] = {}
    seen: set[str] = set()
    for raw in doc.configs.values():
        for diff_id in ImageConfig.from_json(raw).diff_ids:
            if str(diff_id) in seen:
                continue
            seen.add(str(diff_id))
            desc, outcome = _put_layer(store, backend, spec, str(diff_id), lease, remote)
            doc.layers[str(diff_id)] = desc
            outcomes[str(desc.digest)] = outcome
    extra: list[Descriptor] = []
    if spec.mounts:
        extra = _put_mounts(backend, doc, mounts, remote, outcomes, spec.mount_max_size)
    body = doc.to_json()
    config = Descriptor(MEDIA_TYPE, Digest.from_bytes(body), len(body))
    backend.put_blob(config, lambda: _reader(body))
    layers = tuple([*(doc.layers[d] for d in sorted(doc.layers)), *extra])
    manifest = Manifest(config, layers, media_type=mt.OCI_MANIFEST, artifact_type=ARTIFACT_TYPE)
    backend.put_manifest(manifest.to_json(), mt.OCI_MANIFEST)
    return outcomes


def export_caches(store: Store, specs: Sequence[CacheSpec], entries: Sequence[Entry], target_stages: set[int],
                  *, lease: Lease, registry: Callable[[], RegistryClient], remote: RemoteCache | None,
                  mounts: Sequence[tuple[Path, str]], emit: ProgressSink) -> list[str]:
    """Every non-inline ``--cache-to`` of a build (one step line each, as buildx's "exporting cache
    to ..."); returns warnings. ``mounts`` are the cache mount directories used, with their ids."""
    warnings: list[str] = []
    for spec in specs:
        if spec.type == "inline":
            continue
        label = f"exporting cache to {spec.location}" + (" (local)" if spec.type == "local" else "")
        emit(VertexStarted("export-cache", label))
        chosen = [p for p, i in mounts if not spec.mount_ids or i in spec.mount_ids]
        try:
            outcomes = export_cache(store, spec, select(entries, spec, target_stages), lease=lease,
                                    registry=registry, remote=remote, mounts=chosen)
        except (DockyardError, OSError) as exc:
            emit(VertexCompleted("export-cache", label, "error", str(exc).split("\n")[0]))
            raise BuildError(f"failed to export cache to {spec.location}: {exc}") from None
        emit(VertexCompleted("export-cache", label, "done"))
        warnings.extend(f"WARNING: cache mount {name.removeprefix('mount:')} not exported: {what}"
                        for name, what in outcomes.items() if name.startswith("mount:"))
    return warnings


def _put_layer(store: Store, backend: Backend, spec: CacheSpec, diff_id: str, lease: Lease,
               remote: RemoteCache | None) -> tuple[Descriptor, str]:
    found = remote.remote_layer(diff_id) if remote is not None else None
    if found is not None and remote is not None:
        # Imported but never needed here: move it registry-side (HEAD, then a cross-repository
        # mount), never through this runner unless the destination is elsewhere.
        source, desc = found
        if backend.has_blob(desc):
            return desc, "exists"
        mounts = remote.mount_source(source, backend.domain) if isinstance(backend, RegistryBackend) else []
        if mounts:
            try:
                return desc, backend.put_blob(desc, _unavailable, mount_from=mounts)
            except _NotLocal:
                pass
        remote.ensure([diff_id], lease)
    blob = layer_blob(store, diff_id, spec.compression, lease=lease)
    desc = Descriptor(blob.media_type, blob.digest, blob.size)
    return desc, backend.put_blob(desc, lambda: store.content.open(blob.digest))


def _put_mounts(backend: Backend, doc: CacheDocument, mounts: Sequence[Path], remote: RemoteCache | None,
                outcomes: dict[str, str], cap: int) -> list[Descriptor]:
    """Put each cache mount's chunks, then its index; the blobs the manifest must list. A mount over
    ``cap`` bytes is left out (``outcomes["mount:<name>"]`` says so)."""
    listed: dict[str, Descriptor] = {}
    for path in mounts:
        if not path.is_dir():
            continue
        snap = mount_snapshot(path)
        total = sum(size for size, _read in snap.chunks.values())
        if cap and total > cap:
            outcomes[f"mount:{path.name}"] = f"{total} bytes, over mount-max-size {cap}"
            continue
        for digest, (size, read) in snap.chunks.items():
            desc = Descriptor(MOUNT_CHUNK, Digest(digest), size)
            outcomes[digest] = backend.put_blob(desc, functools.partial(_reread, read))
            listed[digest] = desc
        index = Descriptor(MOUNT_INDEX, Digest.from_bytes(snap.index), len(snap.index))
        outcomes[str(index.digest)] = backend.put_blob(index, functools.partial(_reader, snap.index))
        listed[str(index.digest)] = index
        doc.mounts[path.name] = index
    if remote is not None:
        names = {p.name for p in mounts}
        for name, (source, index) in remote.mounts().items():
            if name in names or name in doc.mounts:
                continue
            with contextlib.suppress(DockyardError, _NotLocal):
                blobs = [*chunk_descriptors(source.blob_bytes(index)), index]
                sources = (remote.mount_source(source, backend.domain)
                           if isinstance(backend, RegistryBackend) else [])
                for desc in blobs:
                    if not backend.has_blob(desc):
                        backend.put_blob(desc, _unavailable, mount_from=sources)
                listed.update((str(d.digest), d) for d in blobs)
                doc.mounts[name] = index
    return list(listed.values())


def _reread(read: Callable[[], bytes]) -> BinaryIO:
    return io.BytesIO(read())


class _NotLocal(Exception):
    pass


def _unavailable() -> BinaryIO:
    raise _NotLocal()


def _reader(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


__all__ = ["Entry", "export_cache", "export_caches", "inline_document", "select"]
