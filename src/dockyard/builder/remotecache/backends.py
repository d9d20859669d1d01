"""Where a cache artifact lives: a registry repository or an OCI layout directory.

Both speak in descriptors: read the artifact's manifest, fetch a blob into a writer, say whether a
blob is there, store a blob (a registry may mount it from another repository), put the manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from dockyard.errors import CorruptData, DigestMismatch, DockyardError, NotFound
from dockyard.imageops.layout import ANNOTATION_REF_NAME, blob_path, parse_oci_layout, render_oci_layout
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, Hasher
from dockyard.oci.reference import Reference, parse_normalized
from dockyard.registry.client import RegistryClient, Repository


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Backend(Protocol):
    where: str

    def manifest(self) -> tuple[bytes, str] | None: ...
    def child_manifest(self, desc: Descriptor) -> bytes: ...
    def blob_bytes(self, desc: Descriptor) -> bytes: ...
    def fetch(self, desc: Descriptor, out: Sink) -> None: ...
    def has_blob(self, desc: Descriptor) -> bool: ...
    def put_blob(self, desc: Descriptor, open_blob: Callable[[], BinaryIO],
                 mount_from: Sequence[str] = ()) -> str: ...
    def put_manifest(self, data: bytes, media_type: str) -> None: ...


class RegistryBackend:
    """The artifact tagged ``ref`` in a registry."""

    def __init__(self, registry: RegistryClient, ref: str) -> None:
        self.ref: Reference = parse_normalized(ref).tag_or_latest()
        self.repo: Repository = registry.repository(self.ref.domain, self.ref.path)
        self.where = self.ref.familiar()

    @property
    def domain(self) -> str:
        return self.ref.domain

    @property
    def path(self) -> str:
        return self.ref.path

    def manifest(self) -> tuple[bytes, str] | None:
        try:
            fetched = self.repo.get_manifest(str(self.ref.digest or self.ref.tag))
        except NotFound:
            return None
        return fetched.data, fetched.media_type

    def child_manifest(self, desc: Descriptor) -> bytes:
        """A manifest an index lists (get_manifest verifies a digest reference)."""
        return self.repo.get_manifest(str(desc.digest)).data

    def blob_bytes(self, desc: Descriptor) -> bytes:
        return self.repo.get_blob_bytes(desc)

    def fetch(self, desc: Descriptor, out: Sink) -> None:
        self.repo.fetch_blob(desc, out)

    def has_blob(self, desc: Descriptor) -> bool:
        return self.repo.blob_exists(desc.digest)

    def put_blob(self, desc: Descriptor, open_blob: Callable[[], BinaryIO],
                 mount_from: Sequence[str] = ()) -> str:
        return self.repo.upload_blob(desc, open_blob, mount_from=mount_from)

    def put_manifest(self, data: bytes, media_type: str) -> None:
        self.repo.put_manifest(self.ref.tag or "latest", data, media_type)


class LayoutBackend:
    """The manifest named ``tag`` in an OCI image layout directory (``index.json`` + ``blobs/``)."""

    def __init__(self, root: str, tag: str = "latest") -> None:
        self.root = Path(root)
        self.tag = tag
        self.where = f"{root} (OCI layout, tag {tag})"

    def _path(self, digest: str) -> Path:
        return self.root / blob_path(Digest(digest))

    def _index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise CorruptData(f"{path}: not an OCI image index")
        return doc

    def manifest(self) -> tuple[bytes, str] | None:
        layout = self.root / "oci-layout"
        if not layout.exists():
            return None
        parse_oci_layout(layout.read_bytes(), str(layout))
        for entry in reversed(self._index()["manifests"]):
            if _ref_name(entry) == self.tag:
                desc = Descriptor(str(entry["mediaType"]), Digest(str(entry["digest"])), int(entry["size"]))
                return self.blob_bytes(desc), desc.media_type
        return None

    def child_manifest(self, desc: Descriptor) -> bytes:
        return self.blob_bytes(desc)

    def blob_bytes(self, desc: Descriptor) -> bytes:
        try:
            data = self._path(desc.digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {desc.digest} not in {self.root}") from None
        actual = Digest.from_bytes(data)
        if actual != desc.digest:
            raise DigestMismatch(desc.digest, actual, f"blob in {self.root}")
        return data

    def fetch(self, desc: Descriptor, out: Sink) -> None:
        hasher = Hasher(desc.digest.algorithm)
        try:
            with open(self._path(desc.digest), "rb") as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
        except FileNotFoundError:
            raise NotFound(f"blob {desc.digest} not in {self.root}") from None
        if hasher.digest() != desc.digest:
            raise DigestMismatch(desc.digest, hasher.digest(), f"blob in {self.root}")

    def has_blob(self, desc: Descriptor) -> bool:
        try:
            return self._path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def put_blob(self, desc: Descriptor, open_blob: Callable[[], BinaryIO],
                 mount_from: Sequence[str] = ()) -> str:
        if self.has_blob(desc):
            return "exists"
        target = self._path(desc.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_blob() as src:
            _atomic_write(target, lambda f: _copy(src, f))
        return "uploaded"

    def put_manifest(self, data: bytes, media_type: str) -> None:
        digest = Digest.from_bytes(data)
        self.put_blob(Descriptor(media_type, digest, len(data)), lambda: _bytes_io(data))
        _atomic_write(self.root / "oci-layout", lambda f: f.write(render_oci_layout()))
        index = self._index()
        kept = [m for m in index["manifests"] if _ref_name(m) != self.tag]
        kept.append({"mediaType": media_type, "digest": str(digest), "size": len(data),
                     "annotations": {ANNOTATION_REF_NAME: self.tag}})
        index["manifests"] = kept
        body = json.dumps(index, indent=2).encode()
        _atomic_write(self.root / "index.json", lambda f: f.write(body))


def _ref_name(entry: object) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("annotations"), dict):
        return ""
    return str(entry["annotations"].get(ANNOTATION_REF_NAME, ""))


def _bytes_io(data: bytes) -> BinaryIO:
    import io

    return io.BytesIO(data)


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def _atomic_write(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write a file whole or not at all: a reader (or a concurrent writer) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # not at import: a cached build only reads its cache

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_backend(kind: str, location: str, tag: str, registry: Callable[[], RegistryClient]) -> Backend:
    if kind == "local":
        return LayoutBackend(location, tag)
    return RegistryBackend(registry(), location)


__all__ = ["Backend", "DockyardError", "LayoutBackend", "RegistryBackend", "open_backend"]
