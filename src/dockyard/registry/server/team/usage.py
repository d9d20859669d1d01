"""Bytes a project holds: every distinct blob (layers, configs, manifests) linked into its repositories."""

from __future__ import annotations

from ..storage import Storage
from .accounts import project_of


def project_repositories(storage: Storage, project: str) -> list[str]:
    return [repo for repo in storage.repositories() if project_of(repo) == project]


def project_usage(storage: Storage, project: str) -> int:
    """Each blob counts once per project, however many of its repositories link it."""
    seen: set[str] = set()
    total = 0
    for repo in project_repositories(storage, project):
        for digest in storage.linked_blobs(repo):
            if digest not in seen:
                seen.add(digest)
                total += storage.blob_size(digest) or 0
    return total


def project_holds(storage: Storage, project: str, digest: str) -> bool:
    """Whether a repository of the project links the blob already (adding it again costs nothing)."""
    return any(storage.is_linked(repo, digest) for repo in project_repositories(storage, project))


def parse_size(text: str) -> int:
    """``500MB``, ``2GiB``, ``1024`` -> bytes (decimal and binary units, as Harbor's quotas take)."""
    from dockyard.errors import InvalidArgument

    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    value = text.strip().upper()
    number = value.rstrip("KMGTIB")
    unit = value[len(number):]
    try:
        amount = float(number)
    except ValueError:
        amount = -1
    if unit not in units or amount < 0:
        raise InvalidArgument(f"invalid size {text!r}: expected e.g. 500MB, 2GiB or a number of bytes")
    return int(amount * units[unit])
