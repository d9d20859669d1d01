"""OCI 1.1 referrers: artifacts whose manifest names another manifest as its ``subject``.

    referrers(repo, digest, artifact_type="") -> list[Descriptor]
    push_referrer(repo, manifest) -> Digest       put by digest; keeps the tag-schema index when needed
    put_small_blob(repo, media_type, data) -> Descriptor

A registry with the referrers API (``GET /v2/<name>/referrers/<digest>``, dockyard's own) lists them
itself. One without it (distribution 2.8) answers 404 there; the spec's fallback is then an index
under the tag ``<alg>-<hex>`` of the subject, which the client that pushes a referrer keeps up to date.
"""

from __future__ import annotations

import io

from dockyard.errors import NotFound, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index, Manifest, parse_index
from dockyard.registry.client import Repository
from dockyard.registry.client.errors import error_from_response

__all__ = ["fallback_tag", "push_referrer", "put_small_blob", "referrers"]


def fallback_tag(digest: str) -> str:
    """The referrers tag schema: ``sha256:abc...`` -> ``sha256-abc...``."""
    return digest.replace(":", "-")


def _api(repo: Repository, digest: str) -> list[Descriptor] | None:
    """The referrers API's answer; None when the registry does not have the API."""
    response = repo.session.request("GET", f"/v2/{repo.name}/referrers/{digest}",
                                    scopes=(repo.pull_scope,), headers={"Accept": mt.OCI_INDEX})
    if response.status_code in (404, 405) and "application/vnd.oci.image.index" not in \
            response.headers.get("content-type", ""):
        return None
    if response.status_code != 200:
        raise error_from_response(response, f"referrers of {repo.where}@{digest}")
    return list(parse_index(response.content, f"referrers of {repo.where}@{digest}").manifests)


def _tag_index(repo: Repository, digest: str) -> list[Descriptor]:
    try:
        fetched = repo.get_manifest(fallback_tag(digest), accept=(mt.OCI_INDEX,))
    except (NotFound, RegistryError) as exc:
        if isinstance(exc, NotFound) or getattr(exc, "status", 0) == 404:
            return []
        raise
    return list(parse_index(fetched.data, f"referrers tag of {repo.where}@{digest}").manifests)


def referrers(repo: Repository, digest: str, artifact_type: str = "") -> list[Descriptor]:
    """Every referrer of ``digest`` (of ``artifact_type`` when given), by the API or the tag schema."""
    found = _api(repo, digest)
    if found is None:
        found = _tag_index(repo, digest)
    return [d for d in found if not artifact_type or d.artifact_type == artifact_type]


def put_small_blob(repo: Repository, media_type: str, data: bytes) -> Descriptor:
    desc = Descriptor(media_type, Digest.from_bytes(data), len(data))
    repo.upload_blob(desc, lambda: io.BytesIO(data))
    return desc


def push_referrer(repo: Repository, manifest: Manifest) -> Digest:
    """Put ``manifest`` (which has a subject) by digest; without the API, add it to the tag index."""
    assert manifest.subject is not None
    data = manifest.to_json()
    digest = repo.put_manifest(str(Digest.from_bytes(data)), data, manifest.media_type)
    subject = str(manifest.subject.digest)
    if _api(repo, subject) is not None:
        return digest
    listed = [d for d in _tag_index(repo, subject) if d.digest != digest]
    artifact_type = manifest.artifact_type or manifest.config.media_type
    listed.append(Descriptor(manifest.media_type, digest, len(data), annotations=dict(manifest.annotations),
                             artifact_type=artifact_type))
    index = Index(tuple(listed))
    repo.put_manifest(fallback_tag(subject), index.to_json(), mt.OCI_INDEX)
    return digest
