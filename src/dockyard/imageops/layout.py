"""Image archive layouts: ``docker save`` tars (classic and containerd/OCI style) and OCI image layouts.

Pure format code: member-path rules, and parsing/rendering of ``manifest.json``, ``repositories``,
``index.json`` and ``oci-layout``. Reading and writing the tar streams is in ``load`` and ``save``.

Layouts understood:

- classic ``docker save`` (docker < 25): ``manifest.json``, ``repositories``, ``<config hex>.json``,
  ``<layer id>/{VERSION,json,layer.tar}`` (shared layers may be symlinks to another ``layer.tar``);
- docker 25+ (containerd store): an OCI layout (``oci-layout``, ``index.json``, ``blobs/sha256/*``)
  plus a ``manifest.json`` whose paths point into ``blobs/``;
- a plain OCI image layout (``skopeo``/``buildah``/BuildKit ``oci-archive``).
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Final

from dockyard.errors import CorruptData, UnsafePath
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import loads_object
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, InvalidDigest, is_valid
from dockyard.record import field, record

MANIFEST_JSON: Final = "manifest.json"
REPOSITORIES: Final = "repositories"
INDEX_JSON: Final = "index.json"
OCI_LAYOUT: Final = "oci-layout"
OCI_LAYOUT_VERSION: Final = "1.0.0"
#: Annotation docker/containerd write on index.json entries: the full image name.
ANNOTATION_IMAGE_NAME: Final = "io.containerd.image.name"
#: OCI annotation: a tag (or, from some tools, a full reference) for an index.json entry.
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"


def clean_member(name: str, where: str = "archive") -> str:
    """Normalise a tar member name to a relative path; raise ``UnsafePath`` if it escapes the root."""
    if "\0" in name:
        raise UnsafePath(f"{where}: member name {name!r} contains a NUL byte")
    norm = posixpath.normpath("/" + name).lstrip("/")
    # normpath("/..") is "/", so ".." components are gone; check the raw name for an escape attempt.
    parts = [p for p in name.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise UnsafePath(f"{where}: member {name!r} points outside the archive")
    return norm if norm != "." else ""


def resolve_link(member: str, target: str, *, symlink: bool, where: str = "archive") -> str:
    """The archive path a link member refers to (symlinks are relative to the member's directory)."""
    base = posixpath.dirname(member) if symlink and not target.startswith("/") else ""
    joined = posixpath.join(base, target) if base else target
    return clean_member(joined, f"{where}: link {member!r}")


def blob_path(digest: Digest | str) -> str:
    """Path of a blob inside an OCI layout: ``blobs/<algorithm>/<hex>``."""
    algorithm, _, hexpart = str(digest).partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def digest_of_blob_path(path: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` path names, or None for any other path."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    value = f"{parts[1]}:{parts[2]}"
    return Digest(value) if is_valid(value) else None


@record(slots=True)
class DockerManifestEntry:
    """One image of a ``manifest.json``: the config path, its tags and its layer paths in order."""

    config: str
    repo_tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    layer_sources: dict[str, Descriptor] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Config": self.config, "RepoTags": list(self.repo_tags) or None,
                               "Layers": list(self.layers)}
        if self.layer_sources:
            out["LayerSources"] = {k: v.to_dict() for k, v in self.layer_sources.items()}
        return out


def parse_docker_manifest(data: bytes, where: str = MANIFEST_JSON) -> list[DockerManifestEntry]:
    """Parse ``manifest.json``; raise ``CorruptData`` naming the entry and field that is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{where}: invalid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise CorruptData(f"{where}: expected a JSON array of images")
    entries: list[DockerManifestEntry] = []
    for i, item in enumerate(doc):
        place = f"{where}: image {i}"
        if not isinstance(item, dict):
            raise CorruptData(f"{place}: expected an object")
        config = item.get("Config")
        if not isinstance(config, str) or not config:
            raise CorruptData(f"{place}: missing Config")
        tags = item.get("RepoTags") or []
        layers = item.get("Layers") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise CorruptData(f"{place}: RepoTags is not a list of strings")
        if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
            raise CorruptData(f"{place}: Layers is not a list of paths")
        sources: dict[str, Descriptor] = {}
        raw_sources = item.get("LayerSources") or {}
        if not isinstance(raw_sources, dict):
            raise CorruptData(f"{place}: LayerSources is not an object")
        for key, value in raw_sources.items():
            sources[str(key)] = Descriptor.from_dict(value, f"{place}: LayerSources[{key}]")
        entries.append(DockerManifestEntry(
            config=clean_member(config, place),
            repo_tags=list(tags),
            layers=[clean_member(x, place) for x in layers],
            layer_sources=sources,
        ))
    return entries


def render_docker_manifest(entries: list[DockerManifestEntry]) -> bytes:
    """``manifest.json`` as docker writes it (one line, field order Config, RepoTags, Layers)."""
    return json.dumps([e.to_dict() for e in entries], separators=(",", ":")).encode() + b"\n"


def render_repositories(tags: dict[str, dict[str, str]]) -> bytes:
    """The legacy ``repositories`` file: ``{repo: {tag: top layer id}}``."""
    return json.dumps(tags, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def parse_oci_layout(data: bytes, where: str = OCI_LAYOUT) -> str:
    """Check an ``oci-layout`` file and return its ``imageLayoutVersion``."""
    doc = loads_object(data, where)
    version = doc.get("imageLayoutVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise CorruptData(f"{where}: unsupported imageLayoutVersion {version!r}")
    return version


def render_oci_layout() -> bytes:
    return json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}, separators=(",", ":")).encode()


def image_name_of(desc: Descriptor) -> str:
    """The image name an index.json entry carries, as docker load reads it ("" when none).

    ``io.containerd.image.name`` is a full reference; ``org.opencontainers.image.ref.name`` is used
    only when it is a full reference too (a bare tag such as ``latest`` names no repository).
    """
    name = desc.annotations.get(ANNOTATION_IMAGE_NAME, "")
    if name:
        return name
    ref = desc.annotations.get(ANNOTATION_REF_NAME, "")
    if ref and (":" in ref or "/" in ref) and not ref.startswith(":"):
        return ref
    return ""


def check_digest(value: str, where: str) -> Digest:
    try:
        return Digest(value)
    except InvalidDigest as exc:
        raise CorruptData(f"{where}: {exc}") from None


def is_layer_type(media_type: str) -> bool:
    return media_type in mt.LAYERS or "layer" in media_type
