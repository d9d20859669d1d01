"""Image indexes in a registry: ``docker manifest`` and ``buildx imagetools``.

    platform_manifests(registry, ref) -> (FetchedManifest, list[Descriptor])   what a reference names
    platform_configs(registry, ref, top, members) -> {platform: config bytes}  their image configs
    combine(registry, target, sources, annotate=None) -> (bytes, media_type)  an index of them all
    put_index(registry, target, sources, data, media_type) -> Digest          push it (copying members)
    ManifestLists(dir)      docker manifest's local lists: create/amend, annotate, read, remove

A source may be a single manifest (its platform is read from its config) or an index (every
platform manifest of it). Members that live in another repository are copied into the target's
first (blobs mounted when the registry is the same, else streamed through a temporary file).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import InvalidArgument, NotFound
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import Index, parse_index, parse_manifest
from dockyard.oci.platform import Platform
from dockyard.oci.reference import Reference, parse_normalized
from dockyard.record import field, record
from dockyard.registry.client import FetchedManifest, RegistryClient, Repository

__all__ = ["ListEntry", "ManifestLists", "combine", "platform_configs", "platform_manifests", "put_index"]


def _repo(registry: RegistryClient, ref: Reference) -> Repository:
    return registry.repository(ref.domain, ref.path)


def _fetch(registry: RegistryClient, ref: Reference) -> FetchedManifest:
    return _repo(registry, ref).get_manifest(ref.digest or ref.tag or "latest")


def platform_manifests(registry: RegistryClient, ref: Reference) -> tuple[FetchedManifest, list[Descriptor]]:
    """The manifest ``ref`` names and its platform manifests (itself, with its platform, when single)."""
    top = _fetch(registry, ref)
    if top.media_type in mt.INDEXES:
        members = [d for d in parse_index(top.data, ref.familiar()).manifests
                   if mt.is_manifest(d.media_type) and d.platform is not None]
        return top, members
    man = parse_manifest(top.data, f"manifest of {ref.familiar()}")
    config = json.loads(_repo(registry, ref).get_blob_bytes(man.config))
    plat = Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                    str(config.get("variant", "") or ""))
    return top, [Descriptor(top.media_type, top.digest, len(top.data), platform=plat)]


def platform_configs(registry: RegistryClient, ref: Reference, top: FetchedManifest,
                     members: Sequence[Descriptor]) -> dict[str, bytes]:
    """The image config of each platform manifest (``os/arch[/variant]`` as listed -> config bytes);
    attestation manifests (``unknown/unknown``) are left out."""
    repo = _repo(registry, ref)
    out: dict[str, bytes] = {}
    for desc in members:
        if desc.platform is None or desc.platform.architecture == "unknown":
            continue
        data = top.data if desc.digest == top.digest else repo.get_manifest(str(desc.digest)).data
        config = parse_manifest(data, f"manifest {desc.digest} of {ref.familiar()}").config
        plat = desc.platform
        key = "/".join(p for p in (plat.os, plat.architecture, plat.variant) if p)
        out[key] = repo.get_blob_bytes(config)
    return out


def index_bytes(members: Sequence[Descriptor]) -> tuple[bytes, str]:
    """An index of ``members``: a Docker manifest list when all are Docker manifests, else OCI."""
    docker = all(m.media_type == mt.DOCKER_MANIFEST for m in members)
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    return Index(tuple(members), media_type=media_type).to_json(), media_type


def combine(registry: RegistryClient, sources: Sequence[Reference]) -> list[tuple[Reference, Descriptor]]:
    """Every platform manifest the sources name, each with the source it comes from."""
    out: list[tuple[Reference, Descriptor]] = []
    seen: set[str] = set()
    for src in sources:
        for desc in platform_manifests(registry, src)[1]:
            if desc.digest not in seen:
                seen.add(desc.digest)
                out.append((src, desc))
    if not out:
        raise NotFound("no manifests to combine")
    return out


def _copy_blob(registry: RegistryClient, src: Reference, target: Reference, desc: Descriptor) -> None:
    to = _repo(registry, target)
    if to.blob_exists(desc.digest):
        return
    if src.domain == target.domain and to.mount_blob(desc.digest, src.path) is None:
        return
    with tempfile.TemporaryFile(prefix="dockyard-blob-") as tmp:
        _repo(registry, src).fetch_blob(desc, tmp)

        def reopen() -> BinaryIO:
            tmp.seek(0)
            return os.fdopen(os.dup(tmp.fileno()), "rb")

        to.upload_blob(desc, reopen, check_exists=False)


def _copy_manifest(registry: RegistryClient, src: Reference, target: Reference, desc: Descriptor) -> None:
    """Make the manifest ``desc`` (and its config and layers) exist in the target repository."""
    if (src.domain, src.path) == (target.domain, target.path):
        return
    to = _repo(registry, target)
    if to.head_manifest(str(desc.digest)) is not None:
        return
    fetched = _repo(registry, src).get_manifest(str(desc.digest))
    man = parse_manifest(fetched.data, f"manifest {desc.digest} of {src.familiar()}")
    for blob in (*man.layers, man.config):
        _copy_blob(registry, src, target, blob)
    to.put_manifest(str(desc.digest), fetched.data, fetched.media_type)


def put_index(registry: RegistryClient, target: Reference, members: Sequence[tuple[Reference, Descriptor]],
              data: bytes, media_type: str) -> str:
    """Push the index ``data`` of ``members`` as ``target`` (members copied there first); its digest."""
    for src, desc in members:
        _copy_manifest(registry, src, target, desc)
    where = target.digest or target.tag or "latest"
    return str(_repo(registry, target).put_manifest(where, data, media_type))


# -- docker manifest's local lists ------------------------------------------------------------------

@record(slots=True)
class ListEntry:
    """One manifest of a local list: the reference it was added as and its descriptor (platform)."""

    ref: str
    descriptor: Descriptor


@record(slots=True)
class ManifestList:
    ref: str
    entries: list[ListEntry] = field(default_factory=list)


class ManifestLists:
    """Lists made by ``manifest create`` and not yet pushed, one JSON file each under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, ref: Reference) -> Path:
        return self.root / (re.sub(r"[^A-Za-z0-9_.-]", "_", str(ref)) + ".json")

    def get(self, ref: Reference) -> ManifestList | None:
        try:
            doc = json.loads(self._path(ref).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"manifest list {self._path(ref)}: unreadable: {exc}") from None
        return ManifestList(str(doc["ref"]), [ListEntry(str(e["ref"]), Descriptor.from_dict(e["descriptor"]))
                                              for e in doc["manifests"]])

    def put(self, mlist: ManifestList) -> None:
        path = self._path(parse_normalized(mlist.ref))
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"ref": mlist.ref, "manifests": [{"ref": e.ref, "descriptor": e.descriptor.to_dict()}
                                               for e in mlist.entries]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.rename(path)

    def remove(self, ref: Reference) -> bool:
        try:
            self._path(ref).unlink()
        except FileNotFoundError:
            return False
        return True

    def create(self, registry: RegistryClient, ref: Reference, sources: Sequence[Reference], *,
               amend: bool = False) -> ManifestList:
        """``docker manifest create``: each source must be a single manifest (not a list)."""
        existing = self.get(ref)
        if existing is not None and not amend:
            raise InvalidArgument("refusing to amend an existing manifest list with no --amend flag")
        mlist = existing or ManifestList(str(ref))
        for src in sources:
            top, members = platform_manifests(registry, src)
            if top.media_type in mt.INDEXES:
                raise InvalidArgument(f"{src.familiar()} is a manifest list")
            mlist.entries = [e for e in mlist.entries if e.descriptor.digest != members[0].digest]
            mlist.entries.append(ListEntry(str(src), members[0]))
        self.put(mlist)
        return mlist
