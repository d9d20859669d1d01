"""Attestations (in-toto statements) kept beside images the way BuildKit stores them.

    attach(store, name, {image_id: [Statement, ...]}) -> Digest   the tag's new index
    keep(store, name, entries) -> Digest                          add pulled/loaded attestation manifests
    tag_attestations(store, name) -> list[Descriptor]              attestation manifests of a tag
    statements(manifest_bytes, read_blob) -> list[Statement]       the statements in one of them
    push_attestations(store, repo, index_descs, pushed, as_referrers) -> list[Descriptor]

An image index holds, beside each platform's image manifest, an *attestation manifest* with platform
``unknown/unknown`` and the annotations ``vnd.docker.reference.type: attestation-manifest`` and
``vnd.docker.reference.digest: <the image manifest>``; its layers are in-toto statements
(``application/vnd.in-toto+json``), each annotated with ``in-toto.io/predicate-type``. A local tag with
attestations names such an index even when it holds one platform.

A push compresses the layers of a built image, so the image manifest's digest changes: the statements'
subjects are rewritten to the pushed digest. ``as_referrers`` pushes each statement as an OCI 1.1
referrer of the image manifest (an artifact manifest with a ``subject``) instead of into the index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from dockyard.errors import CorruptData, DockyardError
from dockyard.imageops import Store
from dockyard.imageops.platforms import members, set_members
from dockyard.oci import mediatypes as mt
from dockyard.oci.canonical import dumps
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index, Manifest, parse_index, parse_manifest
from dockyard.oci.platform import Platform, parse
from dockyard.record import record

if TYPE_CHECKING:  # the registry client is imported only by what pushes
    from dockyard.registry.client import Repository

__all__ = ["ATTESTATION_MANIFEST", "IN_TOTO", "PREDICATE_TYPE", "REFERENCE_DIGEST", "REFERENCE_TYPE",
           "Statement", "attach", "is_attestation", "push_attestations", "statements", "tag_attestations"]

REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
IN_TOTO = "application/vnd.in-toto+json"
PREDICATE_TYPE = "in-toto.io/predicate-type"
UNKNOWN = Platform("unknown", "unknown")
EMPTY_JSON = b"{}"


@record(frozen=True, slots=True)
class Statement:
    """One in-toto statement as stored: its predicate type and exact JSON bytes."""

    predicate_type: str
    data: bytes

    def document(self) -> dict[str, object]:
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise CorruptData("in-toto statement: not a JSON object")
        return doc


def is_attestation(desc: Descriptor) -> bool:
    return desc.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST


def _attestation_manifest(stmts: Sequence[Statement]) -> tuple[Manifest, bytes]:
    layers = tuple(Descriptor(IN_TOTO, Digest.from_bytes(s.data), len(s.data),
                              annotations={PREDICATE_TYPE: s.predicate_type}) for s in stmts)
    config = dumps({"architecture": "unknown", "os": "unknown", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in layers]}})
    return Manifest(Descriptor(mt.OCI_CONFIG, Digest.from_bytes(config), len(config)), layers), config


def _index_entry(data: bytes, subject: str) -> Descriptor:
    return Descriptor(mt.OCI_MANIFEST, Digest.from_bytes(data), len(data), platform=UNKNOWN,
                      annotations={REFERENCE_DIGEST: subject, REFERENCE_TYPE: ATTESTATION_MANIFEST})


def store_attestation(store: Store, subject: str, stmts: Sequence[Statement]) -> Descriptor:
    """Store an attestation manifest of ``stmts`` for the image manifest ``subject``; its index entry."""
    manifest, config = _attestation_manifest(stmts)
    for s in stmts:
        store.content.ingest(s.data)
    store.content.ingest(config)
    data = manifest.to_json()
    store.content.ingest(data)
    return _index_entry(data, subject)


def attach(store: Store, name: str, by_image: Mapping[str, Sequence[Statement]]) -> Digest:
    """Make the tag ``name`` an index of its platforms and an attestation manifest for each image in
    ``by_image`` (an earlier one for the same image is replaced)."""
    held = members(store, name)
    made = {}
    for m in held:
        stmts = by_image.get(str(m.image_id))
        if stmts:
            made[str(m.manifest_digest)] = store_attestation(store, str(m.manifest_digest), stmts)
    return _reindex(store, name, made)


def keep(store: Store, name: str, entries: Sequence[Descriptor]) -> Digest:
    """Add attestation manifests already in the store (pulled or loaded index entries) to the tag."""
    return _reindex(store, name, {e.annotations.get(REFERENCE_DIGEST, ""): e for e in entries})


def _reindex(store: Store, name: str, new: Mapping[str, Descriptor]) -> Digest:
    """Point ``name`` at an index of its platforms and, per image manifest, the attestation manifest in
    ``new`` or else the one its index had."""
    held = members(store, name)
    entries: list[Descriptor] = []
    for m in held:
        data = store.content.read(m.manifest_digest)
        media_type = str(json.loads(data).get("mediaType") or mt.OCI_MANIFEST)
        entries.append(Descriptor(media_type, m.manifest_digest, len(data), platform=parse(m.platform)))
    old = {d.annotations.get(REFERENCE_DIGEST, ""): d for d in tag_attestations(store, name)}
    for m in held:
        found = new.get(str(m.manifest_digest)) or old.get(str(m.manifest_digest))
        if found is not None:
            entries.append(found)
    data = Index(tuple(entries)).to_json()
    info = store.content.ingest(data)
    with store.meta.transaction():
        set_members(store, name, held, info.digest)
    return info.digest


def tag_attestations(store: Store, name: str) -> list[Descriptor]:
    """The attestation manifests in the index the local tag ``name`` names ([] when none)."""
    index = store.meta.tag_index(name)
    if not index or not store.content.exists(index):
        return []
    return [d for d in parse_index(store.content.read(index), f"index of {name}").manifests
            if is_attestation(d)]


def attestation_blobs(store: Store, index: str) -> list[str]:
    """The attestation manifests a stored index lists, with their configs and statements (those
    present); what a GC keeps and a save writes beside the index."""
    out: list[str] = []
    try:
        entries = parse_index(store.content.read(index), f"index {index}").manifests
        for entry in entries:
            if not is_attestation(entry) or not store.content.exists(entry.digest):
                continue
            out.append(str(entry.digest))
            data = store.content.read(entry.digest)
            manifest = parse_manifest(data, f"attestation manifest {entry.digest}")
            out.extend(str(d.digest) for d in (manifest.config, *manifest.layers)
                       if store.content.exists(d.digest))
    except DockyardError:
        pass  # an unreadable index or attestation only means there is less to keep
    return out


def statements(manifest_data: bytes, read_blob: Callable[[Descriptor], bytes],
               where: str = "attestation manifest") -> list[Statement]:
    """The in-toto statements an attestation (or referrer) manifest holds, in order."""
    manifest = parse_manifest(manifest_data, where)
    out = []
    for layer in manifest.layers:
        if layer.media_type != IN_TOTO:
            continue
        data = read_blob(layer)
        try:
            doc = json.loads(data)
        except ValueError:
            raise CorruptData(f"{where}: statement {layer.digest} is not JSON") from None
        ptype = layer.annotations.get(PREDICATE_TYPE) or (
            str(doc.get("predicateType", "")) if isinstance(doc, dict) else "")
        out.append(Statement(ptype, data))
    return out


def resubject(stmt: Statement, old: str, new: str) -> Statement:
    """The statement with every subject digest ``old`` replaced by ``new`` (bytes kept otherwise)."""
    if old == new:
        return stmt
    doc = stmt.document()
    old_hex, new_hex = old.partition(":")[2], new.partition(":")[2]
    subjects = doc.get("subject")
    if isinstance(subjects, list):
        for s in subjects:
            digests = s.get("digest") if isinstance(s, dict) else None
            if isinstance(digests, dict) and digests.get("sha256") == old_hex:
                digests["sha256"] = new_hex
    return Statement(stmt.predicate_type, json.dumps(doc, separators=(",", ":")).encode())


def _upload(repo: Repository, media_type: str, data: bytes) -> Descriptor:
    from dockyard.imageops.referrers import put_small_blob

    return put_small_blob(repo, media_type, data)


def push_attestations(store: Store, repo: Repository, local: Sequence[Descriptor],
                      pushed: Mapping[str, Descriptor], *, as_referrers: bool = False) -> list[Descriptor]:
    """Push the attestation manifests ``local`` (entries of a local index) for the images now pushed as
    ``pushed`` (local manifest digest -> pushed manifest descriptor). Returns the entries for the
    pushed index ([] with ``as_referrers``: they hang off the images instead)."""
    from dockyard.imageops.referrers import push_referrer

    out: list[Descriptor] = []
    for desc in local:
        subject = desc.annotations.get(REFERENCE_DIGEST, "")
        target = pushed.get(subject)
        if target is None:
            continue
        data = store.content.read(desc.digest, f"attestation manifest {desc.digest}")
        stmts = [resubject(s, subject, str(target.digest))
                 for s in statements(data, lambda d: store.content.read(d.digest))]
        if as_referrers:
            for s in stmts:
                layer = _upload(repo, IN_TOTO, s.data)
                layer = Descriptor(IN_TOTO, layer.digest, layer.size,
                                   annotations={PREDICATE_TYPE: s.predicate_type})
                config = _upload(repo, mt.OCI_EMPTY, EMPTY_JSON)
                manifest = Manifest(config, (layer,), subject=Descriptor(target.media_type, target.digest,
                                                                         target.size),
                                    artifact_type=IN_TOTO, annotations={PREDICATE_TYPE: s.predicate_type})
                push_referrer(repo, manifest)
            continue
        manifest, config_data = _attestation_manifest(stmts)
        for s in stmts:
            _upload(repo, IN_TOTO, s.data)
            store.content.ingest(s.data)
        _upload(repo, mt.OCI_CONFIG, config_data)
        store.content.ingest(config_data)
        mdata = manifest.to_json()
        repo.put_manifest(str(Digest.from_bytes(mdata)), mdata, mt.OCI_MANIFEST)
        store.content.ingest(mdata)
        out.append(_index_entry(mdata, str(target.digest)))
    return out
