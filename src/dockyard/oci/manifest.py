"""Image manifests and indexes (OCI and Docker schema 2), parsed from and rendered to JSON."""

from __future__ import annotations

from typing import Any

from dockyard.errors import CorruptData
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import dumps, loads_object
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.record import field, record


def _document(media_type: str, artifact_type: str, body: dict[str, Any], subject: Descriptor | None,
              annotations: dict[str, str]) -> dict[str, Any]:
    """The fields manifests and indexes share around their own ``body``; empty optional ones left out."""
    out: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, **body}
    if artifact_type:
        out["artifactType"] = artifact_type
    if subject is not None:
        out["subject"] = subject.to_dict()
    if annotations:
        out["annotations"] = dict(annotations)
    return out


@record(frozen=True, slots=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        body = {"config": self.config.to_dict(), "layers": [layer.to_dict() for layer in self.layers]}
        return _document(self.media_type, self.artifact_type, body, self.subject, self.annotations)

    def to_json(self) -> bytes:
        return dumps(self.to_dict())


@record(frozen=True, slots=True)
class Index:
    manifests: tuple[Descriptor, ...]
    media_type: str = mt.OCI_INDEX
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        body = {"manifests": [m.to_dict() for m in self.manifests]}
        return _document(self.media_type, self.artifact_type, body, self.subject, self.annotations)

    def to_json(self) -> bytes:
        return dumps(self.to_dict())


def sniff_media_type(doc: dict[str, Any]) -> str:
    """The media type a manifest document declares, or what its shape implies when it declares none."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_MANIFEST_V1_SIGNED if "signatures" in doc else mt.DOCKER_MANIFEST_V1
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    return ""


def parse_manifest(data: bytes, where: str = "manifest") -> Manifest:
    doc = loads_object(data, where)
    media_type = sniff_media_type(doc)
    if media_type in mt.SCHEMA1:
        raise CorruptData(f"{where}: Docker image manifest schema 1 is not supported; "
                          "push the image again with a current client")
    if media_type not in mt.MANIFESTS:
        raise CorruptData(f"{where}: not an image manifest (media type {media_type or 'missing'!r})")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise CorruptData(f"{where}: missing layers")
    subject = doc.get("subject")
    return Manifest(
        config=Descriptor.from_dict(doc.get("config"), f"{where}: config"),
        layers=tuple(Descriptor.from_dict(d, f"{where}: layer {i}") for i, d in enumerate(layers)),
        media_type=media_type,
        annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
        subject=Descriptor.from_dict(subject, f"{where}: subject") if subject is not None else None,
        artifact_type=str(doc.get("artifactType", "") or ""),
    )


def parse_index(data: bytes, where: str = "index") -> Index:
    doc = loads_object(data, where)
    media_type = sniff_media_type(doc)
    if media_type not in mt.INDEXES:
        raise CorruptData(f"{where}: not an image index (media type {media_type or 'missing'!r})")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise CorruptData(f"{where}: missing manifests")
    subject = doc.get("subject")
    return Index(
        manifests=tuple(Descriptor.from_dict(d, f"{where}: manifest {i}") for i, d in enumerate(manifests)),
        media_type=media_type,
        annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
        subject=Descriptor.from_dict(subject, f"{where}: subject") if subject is not None else None,
        artifact_type=str(doc.get("artifactType", "") or ""),
    )


def describe(data: bytes, media_type: str) -> Descriptor:
    """A descriptor for a document held in memory."""
    return Descriptor(media_type, Digest.from_bytes(data), len(data))
