"""Bring back an image's lost or corrupt blobs from the registry it came from (``system check --repair``).

    refetch(store, registry, image_id, blobs) -> RefetchResult

The registries are the image's repo digests (``name@digest``, recorded by ``pull`` and ``push``): each
repository that served or received the image holds its blobs under the same digests. A blob is
fetched by digest, verified on the way into the content store, and its quarantined copy is then
dropped.
"""

from __future__ import annotations

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.imageops import Store
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.reference import parse_normalized
from dockyard.record import field, record
from dockyard.registry.client import RegistryClient, Repository

__all__ = ["RefetchResult", "refetch", "source_repositories"]


@record(slots=True)
class RefetchResult:
    """Blobs brought back (with the repository each came from) and those that could not be."""

    fetched: list[tuple[Digest, str]] = field(default_factory=list)
    failed: dict[Digest, str] = field(default_factory=dict)  # digest -> why


def source_repositories(store: Store, image_id: str) -> list[str]:
    """The repositories (``host/path``) the image was pulled from or pushed to, as recorded."""
    out: list[str] = []
    for name in store.meta.repo_digests_for(image_id):
        repo = name.partition("@")[0]
        if repo and repo not in out:
            out.append(repo)
    return out


def refetch(store: Store, registry: RegistryClient, image_id: str, blobs: list[Descriptor]) -> RefetchResult:
    """Fetch each of ``blobs`` from the first of the image's source repositories that has it (a
    descriptor's size may be -1 when unknown: a config is then fetched whole)."""
    result = RefetchResult()
    sources: list[tuple[str, list[Repository]]] = []
    for name in source_repositories(store, image_id):
        try:
            ref = parse_normalized(name)
        except InvalidArgument:
            continue
        sources.append((ref.familiar(), registry.pull_sources(ref.domain, ref.path)))
    for desc in blobs:
        if not sources:
            result.failed[desc.digest] = "no registry it came from is recorded"
            continue
        errors: list[str] = []
        for name, repos in sources:
            error = _fetch_one(store, repos, desc)
            if not error:
                result.fetched.append((desc.digest, name))
                store.content.unquarantine(desc.digest)
                break
            errors.append(f"{name}: {error}")
        else:
            result.failed[desc.digest] = "; ".join(errors)
    return result


def _fetch_one(store: Store, repos: list[Repository], desc: Descriptor) -> str:
    """Fetch ``desc`` from the first repository (mirror or origin) that serves it; '' or the last error."""
    last = ""
    for repo in repos:
        try:
            with store.lease() as lease:
                lease.add_blob(desc.digest)
                if desc.size < 0:  # a config, size unknown: small, fetched whole and verified
                    store.content.ingest(repo.get_blob_bytes(desc), expected=desc.digest)
                    return ""
                with store.content.writer(desc.digest, desc.size) as w:
                    repo.fetch_blob(desc, w)
                    w.commit()
            return ""
        except DockyardError as exc:
            last = str(exc)
    return last
