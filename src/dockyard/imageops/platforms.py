"""Multi-platform tags: one name, an image index, one image per platform (as containerd's image store).

    manifest_for(store, image_id) -> Descriptor          a manifest blob for a local image (with platform)
    content_size(store, image_id) -> int                 bytes of its manifest, config and layer blobs
    members(store, name) -> list[TagPlatform]            a tag's platforms (one for a single-platform tag)
    set_members(store, name, members) -> Digest | None   store the index and point the tag at it
    add_to_tag(store, name, image_id)                    add (or replace) one platform of a tag
    remove_platform(store, name, platform) -> Digest     drop one platform; returns its image
    resolve_platform(store, ref_or_id, platform) -> Digest   the image serving that platform
    index_for(store, name) -> Digest | None              the tag's index (stored) when it has several
    adopt_index(store, name, index_bytes) -> bool        keep a pulled/loaded index naming the tag's members

A tag keeps pointing at one image (the host's platform, else the first), so everything that asks
for "the image" of a name still gets one; the ``tag_platforms`` rows and the index blob say which
other platforms the name holds. A tag left with one platform becomes a plain tag again.
"""

from __future__ import annotations

import json

from dockyard.errors import InvalidArgument, NotFound
from dockyard.imageops import Store
from dockyard.imageops.layers import stored_forms
from dockyard.metadata import TagPlatform
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index, Manifest
from dockyard.oci.platform import Platform, host, parse

__all__ = ["add_to_tag", "content_size", "index_for", "manifest_for", "members", "platform_of",
           "remove_platform", "resolve_platform", "set_members"]


def platform_of(store: Store, image_id: str) -> Platform:
    """The platform an image's record (or config) names."""
    rec = store.meta.get_image(image_id)
    if rec is not None and rec.architecture:
        return Platform(rec.os or "linux", rec.architecture, rec.variant).normalized()
    config = ImageConfig.from_json(store.content.read(image_id), f"config {image_id}")
    return Platform(config.os or "linux", config.architecture, config.variant).normalized()


def manifest_for(store: Store, image_id: str) -> Descriptor:
    """A stored manifest describing the local image: the one it was pulled or pushed as when that
    still names it, else a new OCI manifest over the layers as stored."""
    plat = platform_of(store, image_id)
    rec = store.meta.get_image(image_id)
    if rec is not None and rec.manifest_digest and store.content.exists(rec.manifest_digest):
        data = store.content.read(rec.manifest_digest)
        try:
            doc = json.loads(data)
            if doc.get("config", {}).get("digest") == str(image_id):
                media_type = str(doc.get("mediaType") or mt.OCI_MANIFEST)
                return Descriptor(media_type, Digest(rec.manifest_digest), len(data), platform=plat)
        except (ValueError, AttributeError):
            pass
    config_bytes = store.content.read(image_id)
    config = ImageConfig.from_json(config_bytes, f"config {image_id}")
    layers = []
    for diff_id in config.diff_ids:
        forms = stored_forms(store, diff_id)
        if not forms:
            raise NotFound(f"layer {diff_id} of image {image_id} is not in the local store")
        layers.append(Descriptor(forms[0].media_type, forms[0].digest, forms[0].size))
    config_desc = Descriptor(mt.OCI_CONFIG, Digest(image_id), len(config_bytes))
    manifest = Manifest(config_desc, tuple(layers)).to_json()
    info = store.content.ingest(manifest)
    return Descriptor(mt.OCI_MANIFEST, info.digest, info.size, platform=plat)


def content_size(store: Store, image_id: str) -> int:
    """Bytes of the blobs the image is stored as: its manifest, config and (compressed) layers."""
    desc = manifest_for(store, image_id)
    doc = json.loads(store.content.read(desc.digest))
    blobs = [doc.get("config") or {}, *(doc.get("layers") or [])]
    return desc.size + sum(int(b.get("size") or 0) for b in blobs if isinstance(b, dict))


def members(store: Store, name: str) -> list[TagPlatform]:
    """Every platform the full tag ``name`` holds; [] when the tag does not exist."""
    held = store.meta.tag_platforms(name)
    if held:
        return held
    image_id = store.meta.get_tag(name)
    if image_id is None:
        return []
    desc = manifest_for(store, image_id)
    return [TagPlatform(str(desc.platform), image_id, desc.digest)]


def index_for(store: Store, name: str) -> Digest | None:
    digest = store.meta.tag_index(name)
    return Digest(digest) if digest else None


def build_index(store: Store, held: list[TagPlatform]) -> tuple[Digest, int, str]:
    """Store an index of ``held`` (a Docker manifest list when every member is a Docker manifest)."""
    descs = []
    for m in held:
        data = store.content.read(m.manifest_digest)
        media_type = str(json.loads(data).get("mediaType") or mt.OCI_MANIFEST)
        descs.append(Descriptor(media_type, m.manifest_digest, len(data), platform=parse(m.platform)))
    docker = all(d.media_type == mt.DOCKER_MANIFEST for d in descs)
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    data = Index(tuple(descs), media_type=media_type).to_json()
    info = store.content.ingest(data)
    return info.digest, info.size, media_type


def set_members(store: Store, name: str, held: list[TagPlatform],
                index: Digest | None = None) -> Digest | None:
    """Point ``name`` at ``held`` (in that order): an index when several, a plain tag when one.

    ``index`` is a stored index of these members (one pulled or pushed, or one that also holds their
    attestations), kept as it is, even for one member."""
    if not held:
        store.meta.remove_tag(name)
        return None
    if len(held) == 1 and index is None:
        store.meta.set_tag(name, held[0].image_id)
        return None
    if index is None:
        index = build_index(store, held)[0]
    native = str(host())
    default = next((m for m in held if m.platform == native), held[0])
    store.meta.set_tag_index(name, default.image_id, str(index), held)
    return index


def adopt_index(store: Store, name: str, index_bytes: bytes) -> bool:
    """Make ``index_bytes`` (pulled or loaded) the tag's index when its platform manifests are exactly
    the tag's members, so the local digest stays the source's; False (nothing changed) otherwise."""
    from dockyard.oci.manifest import parse_index

    listed = [d for d in parse_index(index_bytes, f"index of {name}").manifests if d.platform is not None
              and d.platform.architecture != "unknown" and mt.is_manifest(d.media_type)]
    if len(listed) < 2:
        return False
    with store.meta.transaction():
        by_manifest = {m.manifest_digest: m for m in members(store, name)}
        if set(by_manifest) != {d.digest for d in listed}:
            return False
        info = store.content.ingest(index_bytes)
        set_members(store, name, [by_manifest[d.digest] for d in listed], info.digest)
    return True


def add_to_tag(store: Store, name: str, image_id: str) -> None:
    """Add ``image_id`` to the tag ``name`` (replacing the image of the same platform, if any)."""
    desc = manifest_for(store, image_id)
    plat = str(desc.platform)
    with store.meta.transaction():
        held = [m for m in members(store, name) if m.platform != plat]
        held.append(TagPlatform(plat, Digest(image_id), desc.digest))
        set_members(store, name, held)


def remove_platform(store: Store, name: str, platform: str, familiar: str) -> Digest:
    """Drop ``platform`` from the tag ``name``; return the image that served it."""
    want = parse(platform)
    with store.meta.transaction():
        held = members(store, name)
        gone = [m for m in held if want.matches(parse(m.platform))]
        if not gone:
            raise NotFound(f"{familiar} has no {want} variant locally")
        set_members(store, name, [m for m in held if m not in gone])
    return gone[0].image_id


def resolve_platform(store: Store, ref_or_id: str, platform: str | Platform) -> Digest:
    """The image for ``platform`` that ``ref_or_id`` names; ``NotFound`` names both when it has none."""
    from dockyard.imageops.images import resolve
    from dockyard.oci.reference import parse_normalized

    want = parse(platform) if isinstance(platform, str) else platform
    image_id = resolve(store, ref_or_id)
    name = ""
    try:
        ref = parse_normalized(ref_or_id)
        if ref.digest is None:
            name = str(ref.tag_or_latest())
    except InvalidArgument:  # an ID, not a name: only the image itself can serve
        name = ""
    held = store.meta.tag_platforms(name) if name else []
    for m in held:
        if want.matches(parse(m.platform)):
            return m.image_id
    if not held and want.matches(platform_of(store, image_id)):
        return image_id
    have = ", ".join(m.platform for m in held) or str(platform_of(store, image_id))
    raise NotFound(f"{ref_or_id} has no {want} variant locally (it has {have})")
