"""``--platform linux/amd64,linux/arm64``: one build per platform, side by side, joined in one OCI index.

Each platform's image lands in the store as usual; the index and one manifest per platform are stored
as blobs (layers referenced as stored: a local build keeps them uncompressed). The tags name the image
of this host's platform (or the first one), since a local name points at one image; the whole index
leaves the store through ``--output type=oci|docker`` or a push.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dockyard.archive import TarEntry, TarWriter
from dockyard.archive.tarheader import DIRTYPE, REGTYPE
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.dockerfile import Platform
from dockyard.errors import BuildError, Interrupted, NotFound
from dockyard.imageops import Store
from dockyard.imageops.images import tag as tag_image
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import dumps
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index, Manifest
from dockyard.oci.platform import Platform as OciPlatform
from dockyard.oci.reference import parse_normalized


@dataclass(slots=True)
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

    per_platform = [dataclasses.replace(options, platform=p, tags=[], outputs=[]) for p in platforms]
    cancel = threading.Event()  # Ctrl-C here, or one platform failing, cancels them all
    with ThreadPoolExecutor(max_workers=len(platforms), thread_name_prefix="platform") as pool:
        futures = [pool.submit(build, store, opts, cancel) for opts in per_platform]
        try:
            results = [f.result() for f in futures]
        except KeyboardInterrupt:
            cancel.set()
            raise Interrupted("Canceled: context canceled") from None
        except BaseException:
            cancel.set()
            raise
    images = {p: r.image_id for p, r in zip(platforms, results, strict=True)}
    descriptors = [_store_manifest(store, image_id) for image_id in images.values()]
    index_bytes = Index(tuple(descriptors)).to_json()
    info = store.content.ingest(index_bytes)
    host = str(Platform.host())
    named = images.get(host) or next(iter(images.values()))
    for name in options.tags:
        tag_image(store, named, name)
    warnings = [w for r in results for w in r.warnings]
    result = MultiPlatformResult(image_id=named, tags=list(options.tags),
                                 warnings=list(dict.fromkeys(warnings)), steps=sum(r.steps for r in results),
                                 cached=sum(r.cached for r in results), index_digest=str(info.digest),
                                 images=images)
    for out in options.outputs:
        if out.type not in ("oci", "docker"):
            raise BuildError(f"output type {out.type!r} cannot hold several platforms: use type=oci")
        write_index_layout(store, Digest(str(info.digest)), options.tags, out.dest)
    return result


def _store_manifest(store: Store, image_id: str) -> Descriptor:
    config_bytes = store.content.read(image_id)
    config = ImageConfig.from_json(config_bytes, f"config {image_id}")
    layers = []
    for diff_id in config.diff_ids:
        forms = [f for f in store.meta.layer_blobs(diff_id) if store.content.exists(f.digest)]
        if not forms:
            raise NotFound(f"layer {diff_id} of image {image_id} is not in the local store")
        form = forms[0]
        layers.append(Descriptor(form.media_type, form.digest, form.size))
    config_desc = Descriptor(mt.OCI_CONFIG, Digest(image_id), len(config_bytes))
    manifest = Manifest(config_desc, tuple(layers)).to_json()
    info = store.content.ingest(manifest)
    plat = OciPlatform(config.os, config.architecture, config.variant)
    return Descriptor(mt.OCI_MANIFEST, info.digest, info.size, platform=plat)


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
            blob = store.content.verified(digest, what=what)  # checked as it streams
            with blob.open() as f:
                entry = TarEntry(f"blobs/sha256/{digest.hex}", REGTYPE, mode=0o644, mtime=0,
                                 size=blob.size or 0)
                tw.add_reader(entry, f)
        layout_index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [top.to_dict()]}
        tw.add(TarEntry("index.json", REGTYPE, mode=0o644, mtime=0), dumps(layout_index))
        tw.add(TarEntry("oci-layout", REGTYPE, mode=0o644, mtime=0), b'{"imageLayoutVersion":"1.0.0"}')
        tw.close()
    finally:
        if not to_stdout:
            os.close(fd)
