"""``save``: write images of the local store as one tar.

Two formats:

- ``docker`` (default): what docker 25+ writes, an OCI image layout *plus* ``manifest.json`` whose
  paths point into ``blobs/``. Every ``docker load`` reads it (20.10 follows ``manifest.json``, 25+
  either file), and so does every OCI tool.
- ``oci``: the OCI image layout alone (``oci-layout``, ``index.json``, ``blobs/``), for
  ``skopeo``/``buildah`` (``oci-archive:``) and registries' tooling.

A multi-platform tag is saved whole: each platform's image (``manifest.json`` lists each under the
tag) and, in ``index.json``, one entry for the tag's image index, as docker 25+ with the containerd
store writes it.

Blobs are written as stored (no recompression), each verified against its digest as it streams: a
corrupt one fails the save naming image and layer, and is moved to the store's quarantine.
Every member has mtime 0 and root ownership, so saving the same images twice gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Literal

from dockyard.archive.tarheader import DIRTYPE, REGTYPE, TarEntry
from dockyard.archive.writer import TarWriter
from dockyard.errors import InvalidArgument, NotFound, writing
from dockyard.image import LayerBlob
from dockyard.imageops import Store, images, layout
from dockyard.imageops.attestations import attestation_blobs
from dockyard.imageops.layers import blob_here, open_form, stored_forms
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.canonical import dumps
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, describe, parse_manifest
from dockyard.progress import Event, ProgressSink, discard
from dockyard.record import field, record

Format = Literal["docker", "oci"]
FORMATS: tuple[Format, ...] = ("docker", "oci")


@record(slots=True)
class SaveItem:
    """One image to save and the names (``repo:tag``, familiar or full) to record for it."""

    image_id: Digest
    names: list[str] = field(default_factory=list)
    manifest: Digest | None = None  # the manifest a multi-platform tag's index names for this image
    indexed: bool = False  # named in index.json through a tag's index, not on its own


@record(slots=True)
class _Planned:
    item: SaveItem
    config: Descriptor
    manifest_bytes: bytes
    manifest: Manifest
    diff_ids: tuple[Digest, ...]


def _pick_blob(blobs: list[LayerBlob]) -> LayerBlob:
    """Prefer the uncompressed form: no decompression on the loading side, and it is what docker writes."""
    for blob in blobs:
        if mt.layer_compression(blob.media_type) == "none":
            return blob
    return blobs[0]


def _plan(store: Store, item: SaveItem) -> _Planned:
    rec = store.meta.get_image(item.image_id)
    if rec is None:
        raise NotFound(f"No such image: {item.image_id}")
    label = f"image {item.names[0] if item.names else item.image_id.short}"
    config_bytes = store.content.read(item.image_id, f"{label}: config")
    config = ImageConfig.from_json(config_bytes, f"image {item.image_id.short}: config")
    config_type = mt.OCI_CONFIG
    known = item.manifest or rec.manifest_digest
    if known and store.content.exists(known):
        data = store.content.read(known, f"{label}: manifest")
        man = parse_manifest(data, f"image {item.image_id.short}: manifest")
        if man.config.digest == item.image_id and all(blob_here(store, d.digest) for d in man.layers):
            return _Planned(item, man.config, data, man, tuple(config.diff_ids))
    layers: list[Descriptor] = []
    for diff_id in config.diff_ids:
        blobs = stored_forms(store, diff_id)
        if not blobs:
            why = next((" (its blob is quarantined as corrupt)" for b in store.meta.layer_blobs(diff_id)
                        if store.content.is_quarantined(b.digest)), "")
            raise NotFound(f"image {item.image_id.short}: no stored blob for layer {diff_id}{why}")
        blob = _pick_blob(blobs)
        layers.append(Descriptor(blob.media_type, blob.digest, blob.size))
    config_desc = Descriptor(config_type, item.image_id, len(config_bytes))
    man = Manifest(config=config_desc, layers=tuple(layers), media_type=mt.OCI_MANIFEST)
    return _Planned(item, config_desc, man.to_json(), man, tuple(config.diff_ids))


def _full_name(name: str) -> str:
    """``busybox:local`` -> ``docker.io/library/busybox:local`` (as containerd annotates it)."""
    try:
        return str(reference.parse_normalized(name))
    except InvalidArgument:
        return name


def _tag_of(name: str) -> str:
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[colon + 1:] if colon > slash else "latest"


def save(store: Store, items: list[SaveItem], out: int, *, fmt: Format = "docker",
         progress: ProgressSink = discard, indexes: dict[str, Digest] | None = None) -> int:
    """Write ``items`` as one tar to file descriptor ``out``; return the bytes written.

    ``indexes``: familiar tag -> the stored index of a multi-platform tag (its members are ``items``)."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"invalid format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not items:
        raise InvalidArgument("no images to save")
    planned = [_plan(store, item) for item in items]
    written: set[Digest] = set()
    tw = TarWriter(out)

    def add_bytes(path: str, data: bytes) -> None:
        tw.add(TarEntry(path, REGTYPE, mode=0o644, mtime=0), data)

    def add_blob(digest: Digest, expected_size: int, what: str) -> None:
        if digest in written:
            return
        written.add(digest)
        # A stored blob, or a layer kept as its snapshot: its tar written again (both verified).
        f, size = open_form(store, digest, expected_size if expected_size >= 0 else None, what)
        with f:
            progress(Event(id=digest.short, name="Saving", status="started", total=size))
            tw.add_reader(TarEntry(layout.blob_path(digest), REGTYPE, mode=0o644, size=size, mtime=0), f)
            progress(Event(id=digest.short, name="Saving", status="done", current=size, total=size))

    tw.add(TarEntry("blobs", DIRTYPE, mode=0o755, mtime=0))
    tw.add(TarEntry("blobs/sha256", DIRTYPE, mode=0o755, mtime=0))
    index_entries: list[Descriptor] = []
    docker_entries: list[layout.DockerManifestEntry] = []
    for p in planned:
        label = f"image {p.item.names[0] if p.item.names else p.item.image_id.short}"
        for desc, diff_id in zip(p.manifest.layers, p.diff_ids, strict=False):
            add_blob(desc.digest, desc.size, f"{label}: layer {diff_id}")
        add_blob(p.config.digest, p.config.size, f"{label}: config")
        man_desc = describe(p.manifest_bytes, p.manifest.media_type)
        if man_desc.digest not in written:
            written.add(man_desc.digest)
            add_bytes(layout.blob_path(man_desc.digest), p.manifest_bytes)
        names = [] if p.item.indexed else p.item.names or [""]
        for name in names:
            annotations: dict[str, str] = {}
            if name:
                annotations[layout.ANNOTATION_IMAGE_NAME] = _full_name(name)
                annotations[layout.ANNOTATION_REF_NAME] = _tag_of(name)
            index_entries.append(Descriptor(man_desc.media_type, man_desc.digest, man_desc.size,
                                            annotations=annotations))
        docker_entries.append(layout.DockerManifestEntry(
            config=layout.blob_path(p.config.digest),
            repo_tags=[n for n in p.item.names if n],
            layers=[layout.blob_path(d.digest) for d in p.manifest.layers],
        ))
    for name, digest in (indexes or {}).items():
        data = store.content.read(digest, f"image {name}: index")
        if digest not in written:
            written.add(digest)
            add_bytes(layout.blob_path(digest), data)
        annotations = {layout.ANNOTATION_IMAGE_NAME: _full_name(name),
                       layout.ANNOTATION_REF_NAME: _tag_of(name)}
        media_type = str(json.loads(data).get("mediaType") or mt.OCI_INDEX)
        index_entries.append(Descriptor(media_type, digest, len(data), annotations=annotations))
        for blob in attestation_blobs(store, digest):  # the index's attestations travel with it
            add_blob(Digest(blob), -1, f"image {name}: attestation {blob}")
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [d.to_dict() for d in index_entries]}
    add_bytes(layout.INDEX_JSON, dumps(index) + b"\n")
    if fmt == "docker":
        add_bytes(layout.MANIFEST_JSON, layout.render_docker_manifest(docker_entries))
    add_bytes(layout.OCI_LAYOUT, layout.render_oci_layout())
    tw.close()
    return tw.size


def resolve_items(store: Store, refs: list[str]) -> list[SaveItem]:
    """Resolve ``save`` arguments: ``name:tag``, ``name`` (every tag of it), an image ID or a prefix.

    Arguments naming the same image are merged into one item with all their names, as docker does.
    """
    return resolve_save(store, refs)[0]


def resolve_save(store: Store, refs: list[str]) -> tuple[list[SaveItem], dict[str, Digest]]:
    """``resolve_items``, every platform of a multi-platform tag included, and those tags' indexes."""
    by_id: dict[Digest, SaveItem] = {}
    indexes: dict[str, Digest] = {}
    for ref in refs:
        for image_id, names in _resolve(store, ref):
            item = by_id.setdefault(image_id, SaveItem(image_id))
            item.names.extend(n for n in names if n not in item.names)
            for name in names:
                full = str(reference.parse_normalized(name).tag_or_latest())
                index = store.meta.tag_index(full)
                if not index:
                    continue
                indexes[name] = Digest(index)
                for m in store.meta.tag_platforms(full):
                    member = by_id.setdefault(m.image_id, SaveItem(m.image_id))
                    member.manifest = m.manifest_digest
                    if name not in member.names:
                        member.names.append(name)
    for item in by_id.values():
        # Named only through indexes: index.json lists the index, not the image on its own.
        item.indexed = bool(item.names) and all(n in indexes for n in item.names)
    return list(by_id.values()), indexes


def _resolve(store: Store, ref: str) -> list[tuple[Digest, list[str]]]:
    try:
        parsed: reference.Reference | None = reference.parse_normalized(ref)
    except InvalidArgument:
        parsed = None
    if parsed is not None and parsed.tag is None and parsed.digest is None:
        # As docker: a repository named without a tag means every tagged image of it.
        out: dict[Digest, list[str]] = {}
        for name, iid in store.meta.tags():
            if name.rsplit(":", 1)[0] == parsed.name:
                out.setdefault(iid, []).append(reference.parse_normalized(name).familiar())
        if out:
            return list(out.items())
    image_id = images.resolve(store, ref)
    if parsed is not None and parsed.digest is None:
        tagged = parsed.tag_or_latest()
        if store.meta.get_tag(str(tagged)) == image_id:
            return [(image_id, [tagged.familiar()])]
    return [(image_id, [])]


def save_to_file(store: Store, items: list[SaveItem], path: str, *, fmt: Format = "docker",
                 progress: ProgressSink = discard, indexes: dict[str, Digest] | None = None) -> int:
    """Save to ``path`` atomically: a temporary file next to it is renamed over it when complete."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        with writing(path):  # the output's disk, not the store's, may be the full one
            size = save(store, items, fd, fmt=fmt, progress=progress, indexes=indexes)
        os.close(fd)
        fd = -1
        try:
            os.rename(tmp, path)
        except OSError as exc:
            raise InvalidArgument(f"write {path}: {(exc.strerror or str(exc)).lower()}") from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return size
