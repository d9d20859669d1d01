"""What ``image attestations`` shows: every in-toto statement kept beside an image.

    local_attestations(store, name) -> list[Found]     from the local tag's index
    remote_attestations(registry, ref) -> list[Found]  from the pushed index and the referrers

A statement is found in an index (an attestation manifest, BuildKit's way) or as an OCI 1.1
referrer of a platform's image manifest (``--attest-as-referrers``); both are listed.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.imageops import Store
from dockyard.imageops.attestations import (
    IN_TOTO,
    REFERENCE_DIGEST,
    Statement,
    is_attestation,
    statements,
    tag_attestations,
)
from dockyard.imageops.referrers import referrers
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_index
from dockyard.oci.reference import Reference
from dockyard.record import record
from dockyard.registry.client import RegistryClient

__all__ = ["Found", "local_attestations", "remote_attestations"]

SHORT = {"sbom": "https://spdx.dev/Document", "spdx": "https://spdx.dev/Document",
         "provenance": "https://slsa.dev/provenance/"}


@record(frozen=True, slots=True)
class Found:
    subject: str              # the image manifest digest it is about
    platform: str
    stored: str               # "index" or "referrer"
    manifest: str             # the attestation (or referrer) manifest's digest
    statement: Statement

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "platform": self.platform, "stored": self.stored,
                "manifest": self.manifest, "predicateType": self.statement.predicate_type,
                "statement": self.statement.document()}


def matches(found: Found, wanted: str) -> bool:
    """``--type``: a predicate type, or sbom / spdx / provenance (any SLSA version)."""
    want = SHORT.get(wanted.lower(), wanted)
    return found.statement.predicate_type.startswith(want) if want.endswith("/") else \
        found.statement.predicate_type == want


def local_attestations(store: Store, name: str) -> list[Found]:
    platforms = {str(m.manifest_digest): m.platform for m in store.meta.tag_platforms(name)}
    out = []
    for desc in tag_attestations(store, name):
        subject = desc.annotations.get(REFERENCE_DIGEST, "")
        data = store.content.read(desc.digest, f"attestation manifest {desc.digest}")
        for s in statements(data, lambda d: store.content.read(d.digest)):
            out.append(Found(subject, platforms.get(subject, ""), "index", str(desc.digest), s))
    return out


def remote_attestations(registry: RegistryClient, ref: Reference) -> list[Found]:
    repo = registry.repository(ref.domain, ref.path)
    top = repo.get_manifest(ref.digest or ref.tag or "latest")
    images: list[Descriptor] = []
    out: list[Found] = []
    if top.media_type in mt.INDEXES:
        entries = parse_index(top.data, ref.familiar()).manifests
        images = [d for d in entries if not is_attestation(d) and mt.is_manifest(d.media_type)]
        platforms = {str(d.digest): str(d.platform or "") for d in images}
        for desc in entries:
            if not is_attestation(desc):
                continue
            subject = desc.annotations.get(REFERENCE_DIGEST, "")
            data = repo.get_manifest(str(desc.digest), accept=(mt.OCI_MANIFEST,)).data
            for s in statements(data, repo.get_blob_bytes, f"attestation manifest {desc.digest}"):
                out.append(Found(subject, platforms.get(subject, ""), "index", str(desc.digest), s))
    else:
        images = [top.descriptor]
    for image in images:
        for desc in referrers(repo, str(image.digest)):
            if desc.artifact_type != IN_TOTO:
                continue
            data = repo.get_manifest(str(desc.digest), accept=(mt.OCI_MANIFEST,)).data
            for s in statements(data, repo.get_blob_bytes, f"referrer {desc.digest}"):
                out.append(Found(str(image.digest), str(image.platform or ""), "referrer",
                                 str(desc.digest), s))
    return out


def pretty(found: Found) -> str:
    return json.dumps(found.statement.document(), indent=2)
