"""cosign signatures of images in a registry: made, stored, found and checked.

    sign_image(registry, ref, key, referrer=True) -> SignResult
    verify_image(registry, ref, public_key) -> list[dict]     the valid payloads; raises when none

A signature is a simple-signing payload (layer ``application/vnd.dev.cosign.simplesigning.v1+json``)
with its base64 ECDSA signature in the ``dev.cosignproject.cosign/signature`` annotation. It is kept
as cosign keeps it, under the tag ``sha256-<hex>.sig`` (a manifest whose layers are all the image's
signatures; a new one is appended), and also as an OCI 1.1 referrer of the image manifest
(``artifactType: application/vnd.dev.cosign.artifact.sig.v1+json``), which ``oras discover`` lists.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import DockyardError, InvalidArgument, NotFound, RegistryError
from dockyard.imageops.referrers import push_referrer, put_small_blob, referrers
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.record import field, record
from dockyard.registry.client import RegistryClient, Repository
from dockyard.supplychain import cosign

__all__ = ["SignResult", "VerificationFailed", "docker_reference", "sign_image", "signature_tag",
           "verify_image"]


class VerificationFailed(DockyardError):
    """No signature of the image verifies with the key."""


@record(slots=True)
class SignResult:
    digest: Digest                      # the image manifest (or index) signed
    tag: str                            # sha256-<hex>.sig
    signature_manifest: Digest
    referrer: Digest | None = None
    payload: bytes = field(default=b"", repr=False)


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def docker_reference(ref: Reference) -> str:
    """The repository as cosign names it in the payload (``index.docker.io`` for Docker Hub)."""
    domain = "index.docker.io" if ref.domain == "docker.io" else ref.domain
    return f"{domain}/{ref.path}"


def resolve(registry: RegistryClient, ref: Reference) -> tuple[Repository, Descriptor]:
    repo = registry.repository(ref.domain, ref.path)
    where = ref.digest or ref.tag or "latest"
    desc = repo.head_manifest(where)
    if desc is None or not desc.media_type:
        fetched = repo.get_manifest(where)
        desc = fetched.descriptor
    return repo, desc


def _signature_config(layers: list[Descriptor]) -> bytes:
    zero = "0001-01-01T00:00:00Z"
    doc = {"architecture": "", "created": zero, "history": [{"created": zero}], "os": "", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in layers]}}
    return json.dumps(doc, separators=(",", ":")).encode()


def _existing_layers(repo: Repository, tag: str) -> list[Descriptor]:
    try:
        fetched = repo.get_manifest(tag, accept=(mt.OCI_MANIFEST, mt.DOCKER_MANIFEST))
    except (NotFound, RegistryError) as exc:
        if isinstance(exc, NotFound) or getattr(exc, "status", 0) == 404:
            return []
        raise
    return list(parse_manifest(fetched.data, f"signatures {repo.where}:{tag}").layers)


def sign_image(registry: RegistryClient, ref: Reference, key: ec.EllipticCurvePrivateKey, *,
               referrer: bool = True, annotations: dict[str, str] | None = None) -> SignResult:
    """Sign the manifest ``ref`` names; store the signature under the .sig tag and as a referrer."""
    repo, target = resolve(registry, ref)
    payload = cosign.simple_signing_payload(docker_reference(ref), str(target.digest))
    signature = cosign.sign(key, payload)
    blob = put_small_blob(repo, cosign.SIMPLE_SIGNING, payload)
    layer = Descriptor(cosign.SIMPLE_SIGNING, blob.digest, blob.size,
                       annotations={**(annotations or {}), cosign.SIGNATURE_ANNOTATION: signature})
    tag = signature_tag(str(target.digest))
    layers = [d for d in _existing_layers(repo, tag)
              if d.annotations.get(cosign.SIGNATURE_ANNOTATION) != signature] + [layer]
    config = put_small_blob(repo, mt.OCI_CONFIG, _signature_config(layers))
    data = Manifest(config, tuple(layers)).to_json()
    sig_digest = repo.put_manifest(tag, data, mt.OCI_MANIFEST)
    result = SignResult(target.digest, tag, sig_digest, payload=payload)
    if referrer:
        empty = put_small_blob(repo, mt.OCI_EMPTY, b"{}")
        subject = Descriptor(target.media_type, target.digest, target.size)
        result.referrer = push_referrer(repo, Manifest(empty, (layer,), subject=subject,
                                                       artifact_type=cosign.SIGNATURE_ARTIFACT))
    return result


def _candidates(repo: Repository, digest: str) -> list[tuple[Descriptor, str]]:
    """(payload layer, where it was found) from the .sig tag and from signature referrers."""
    out = [(d, signature_tag(digest)) for d in _existing_layers(repo, signature_tag(digest))]
    for ref_desc in referrers(repo, digest, cosign.SIGNATURE_ARTIFACT):
        fetched = repo.get_manifest(str(ref_desc.digest), accept=(mt.OCI_MANIFEST,))
        out.extend((d, f"referrer {ref_desc.digest}")
                   for d in parse_manifest(fetched.data, f"referrer {ref_desc.digest}").layers)
    return out


def verify_image(registry: RegistryClient, ref: Reference,
                 key: ec.EllipticCurvePublicKey) -> list[dict[str, Any]]:
    """The payloads of every signature of ``ref`` that ``key`` verifies and that names its digest
    (each once); ``VerificationFailed`` when there is none."""
    repo, target = resolve(registry, ref)
    valid: dict[str, dict[str, Any]] = {}
    seen = 0
    for layer, _where in _candidates(repo, str(target.digest)):
        signature = layer.annotations.get(cosign.SIGNATURE_ANNOTATION, "")
        if layer.media_type != cosign.SIMPLE_SIGNING or not signature:
            continue
        seen += 1
        payload = repo.get_blob_bytes(layer)
        if not cosign.verify_signature(key, payload, signature):
            continue
        if cosign.signed_digest(payload) != str(target.digest):
            continue
        valid.setdefault(signature, json.loads(payload))
    if not valid:
        what = "no signatures found" if not seen else f"none of {seen} signature(s) verifies with the key"
        raise VerificationFailed(f"{ref.familiar()}@{target.digest}: no matching signatures: {what}")
    return list(valid.values())


def load_key_file(path: str, password: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the key: {exc.strerror}") from None
    return cosign.load_private_key(data, password, path)


def load_public_file(path: str) -> ec.EllipticCurvePublicKey:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the public key: {exc.strerror}") from None
    return cosign.load_public_key(data, path)
