"""``--platform linux/amd64,linux/arm64``: one build per platform, side by side, joined in one OCI index.

Each platform's image lands in the store as usual; the index and one manifest per platform are stored
as blobs (layers referenced as stored: a local build keeps them uncompressed), and each tag names the
index (``imageops.platforms``). The whole index leaves the store through ``--output type=oci|docker``
or a push.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor

from dockyard.archive import TarEntry, TarWriter
from dockyard.archive.tarheader import DIRTYPE, REGTYPE
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.dockerfile import Platform
from dockyard.errors import BuildError, DockerfileError, Interrupted
from dockyard.imageops import Store
from dockyard.imageops.images import normalize_tag
from dockyard.imageops.layers import open_form
from dockyard.imageops.platforms import build_index, manifest_for, set_members
from dockyard.interruptible import wait_futures
from dockyard.metadata import TagPlatform
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import dumps
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index
from dockyard.oci.reference import parse_normalized
from dockyard.progress import (
    ProgressEvent,
    ProgressSink,
    VertexCompleted,
    VertexLog,
    VertexStarted,
    VertexStatus,
)
from dockyard.record import field, record, replace


@record(slots=True)
class MultiPlatformResult(BuildResult):
    index_digest: str = ""
    images: dict[str, str] = field(default_factory=dict)  # platform -> image ID


def split_platforms(value: str) -> list[str]:
    """``linux/amd64, linux/arm64`` -> normalised, deduplicated platform strings."""
    out: list[str] = []
    for part in value.split(","):
        if part.strip():
            name = str(Platform.parse(part.strip()))
            if name not in out:
                out.append(name)
    return out


def build_platforms(store: Store, options: BuildOptions, platforms: list[str]) -> MultiPlatformResult:
    """Build every platform in parallel and store an OCI index of them."""
    from dockyard.builder.engine import build

    # A registry or local cache is exported once, with the records of every platform (each platform
    # exporting its own would leave only the last one's under the ref).
    deferred = any(spec.type != "inline" for spec in options.cache_to)
    per_platform = [replace(options, platform=p, tags=[], outputs=[], push=False,
                                        progress=platform_progress(options.progress, p),
                                        defer_cache_export=deferred, platform_titles=True)
                    for p in platforms]
    cancel = threading.Event()  # Ctrl-C here, or one platform failing, cancels them all
    with ThreadPoolExecutor(max_workers=len(platforms), thread_name_prefix="platform") as pool:
        futures = [pool.submit(build, store, opts, cancel) for opts in per_platform]
        try:
            wait_futures(futures, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            cancel.set()
            raise Interrupted("Canceled: context canceled") from None
        failed = [exc for f in futures if f.done() and (exc := f.exception()) is not None]
        if failed:
            cancel.set()
            wait_futures(futures)
            # The platform that failed first cancelled the others: its error is the build's, not
            # theirs ("run cancelled", or whatever the cancellation made them fail with).
            errors = [exc for f in futures if (exc := f.exception()) is not None]
            raise next((e for e in (*failed, *errors) if not isinstance(e, Interrupted)), errors[0])
        results = [f.result() for f in futures]
    images = {p: r.image_id for p, r in zip(platforms, results, strict=True)}
    emit = options.progress
    emit(VertexStarted("export-index", "exporting to image"))
    held = []
    for image_id in images.values():
        desc = manifest_for(store, image_id)
        held.append(TagPlatform(str(desc.platform), Digest(image_id), desc.digest))
        if not options.push:  # a push compresses the layers: the pushed manifests and index are new,
            emit(VertexStatus("export-index", f"exporting manifest {desc.digest} ({desc.platform})",
                              done=True))  # and the push step names them
    index_digest = build_index(store, held)[0]
    if not options.push:
        emit(VertexStatus("export-index", f"exporting manifest list {index_digest}", done=True))
    names = ", ".join(normalize_tag(n) for n in options.tags)
    if names:
        emit(VertexStatus("export-index", f"naming to {names}", done=True))
    host = str(Platform.host())
    named = images.get(host) or next(iter(images.values()))
    for name in options.tags:
        set_members(store, normalize_tag(name), held, index_digest)
    emit(VertexCompleted("export-index", "exporting to image", "done"))
    warnings = [w for r in results for w in r.warnings]
    result = MultiPlatformResult(image_id=named, tags=list(options.tags),
                                 warnings=list(dict.fromkeys(warnings)), steps=sum(r.steps for r in results),
                                 cached=sum(r.cached for r in results), index_digest=str(index_digest),
                                 images=images)
    for out in options.outputs:
        if out.type not in ("oci", "docker"):
            raise BuildError(f"output type {out.type!r} cannot hold several platforms: use type=oci")
        write_index_layout(store, index_digest, options.tags, out.dest)
    if deferred:
        result.warnings.extend(export_all(store, options, results))
    return result


def export_all(store: Store, options: BuildOptions, results: list[BuildResult]) -> list[str]:
    """Export one cache (per ``--cache-to``) holding the records of every platform's build."""
    # Imported here: the registry client is only needed by builds that export a cache.
    from dockyard.builder.remotecache.base import SharedRegistry
    from dockyard.builder.remotecache.export import export_caches
    from dockyard.builder.remotecache.remote import RemoteCache

    registry = SharedRegistry(options.registry)
    remote = (RemoteCache(store, options.cache_from, registry)
              if options.cache_from and not options.no_cache else None)
    entries = [e for r in results for e in r.cache_entries]
    stages = {i for r in results for i in r.target_stages}
    mounts = list(dict.fromkeys(m for r in results for m in r.cache_mounts))
    lease = store.lease(ttl=6 * 3600.0)
    try:
        return export_caches(store, options.cache_to, entries, stages, lease=lease, registry=registry,
                             remote=remote, mounts=mounts, emit=options.progress)
    finally:
        lease.release()
        registry.close()


def title_platform(stage_platform: str, scope: Mapping[str, str]) -> str:
    """The platform part of a step title in a multi-platform build, as BuildKit writes it: the
    platform the stage runs as, then ``->arm64`` (or ``->os/arch`` for another OS) when the TARGET*
    args the stage declared (``scope``) name another one: ``linux/amd64->arm64``."""
    base = Platform.parse(stage_platform)
    shown = str(base)
    if "TARGETPLATFORM" in scope:
        try:
            target = Platform.parse(scope["TARGETPLATFORM"])
        except DockerfileError:
            return shown
    elif any(k in scope for k in ("TARGETOS", "TARGETARCH", "TARGETVARIANT")):
        parts = [scope.get("TARGETOS") or base.os, scope.get("TARGETARCH") or base.architecture]
        if scope.get("TARGETVARIANT"):
            parts.append(scope["TARGETVARIANT"])
        try:
            target = Platform.parse("/".join(parts))
        except DockerfileError:
            return shown
    else:
        return shown
    if target.os == base.os and target.architecture != base.architecture:
        return f"{shown}->{target.architecture}" + (f"/{target.variant}" if target.variant else "")
    if target.os != base.os:
        return f"{shown}->{target}"
    return shown


def platform_progress(sink: ProgressSink, platform: str) -> ProgressSink:
    """``sink`` for one platform's build, each event under an ID of its own: ``[linux/arm64
    internal] load ...`` and ``[linux/arm64] exporting ...``; numbered step titles carry their
    stage's platform already (``BuildOptions.platform_titles``)."""

    def title(name: str) -> str:
        if name.startswith("[internal]"):
            return f"[{platform} {name[1:]}"
        return name if name.startswith("[") else f"[{platform}] {name}"

    def emit(event: ProgressEvent) -> None:
        if isinstance(event, VertexStarted | VertexCompleted):
            event = replace(event, id=f"{platform}|{event.id}", name=title(event.name))
        elif isinstance(event, VertexLog | VertexStatus):
            event = replace(event, id=f"{platform}|{event.id}")
        sink(event)

    return emit


def write_index_layout(store: Store, index_digest: Digest, names: list[str], dest: str) -> None:
    """An OCI image layout tar holding the index, its manifests, configs and layers."""
    index_bytes = store.content.read(index_digest)
    index = Index(tuple(Descriptor.from_dict(m) for m in json.loads(index_bytes)["manifests"]))
    blobs: dict[Digest, str] = {}  # digest -> what it is, for an error
    label = f"image {names[0]}" if names else f"index {index_digest.short}"
    for desc in index.manifests:
        manifest_doc = json.loads(store.content.read(desc.digest))
        blobs.setdefault(desc.digest, f"{label}: manifest {desc.digest}")
        blobs.setdefault(Digest(manifest_doc["config"]["digest"]), f"{label}: config")
        for layer in manifest_doc["layers"]:
            blobs.setdefault(Digest(layer["digest"]), f"{label}: layer blob")
    blobs.setdefault(index_digest, f"{label}: index")
    annotations = {}
    if names:
        ref = parse_normalized(names[0]).tag_or_latest()
        annotations = {"io.containerd.image.name": str(ref),
                       "org.opencontainers.image.ref.name": ref.tag or "latest"}
    top = Descriptor(mt.OCI_INDEX, index_digest, len(index_bytes), annotations=annotations)
    to_stdout = dest in ("", "-")
    fd = sys.stdout.fileno() if to_stdout else os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        tw = TarWriter(fd)
        tw.add(TarEntry("blobs", DIRTYPE, mode=0o755, mtime=0))
        tw.add(TarEntry("blobs/sha256", DIRTYPE, mode=0o755, mtime=0))
        for digest, what in blobs.items():
            f, size = open_form(store, digest, what=what)  # checked as it streams
            with f:
                entry = TarEntry(f"blobs/sha256/{digest.hex}", REGTYPE, mode=0o644, mtime=0, size=size)
                tw.add_reader(entry, f)
        layout_index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [top.to_dict()]}
        tw.add(TarEntry("index.json", REGTYPE, mode=0o644, mtime=0), dumps(layout_index))
        tw.add(TarEntry("oci-layout", REGTYPE, mode=0o644, mtime=0), b'{"imageLayoutVersion":"1.0.0"}')
        tw.close()
    finally:
        if not to_stdout:
            os.close(fd)
