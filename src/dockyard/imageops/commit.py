"""Put layers and images into the local store.

    store_layer(store, tar_stream, compression="none", lease=None) -> LayerBlob
        a layer tar (uncompressed) from a build/import; compressed on the way in if asked
    store_layer_blob(store, blob_stream, expected=None, size=None, diff_id=None, media_type="",
                     lease=None) -> LayerBlob
        a layer blob as received (gzip/zstd/plain, from a pull or an archive); the diff ID is
        computed in the same pass (and verified if given)
    layer_blob(store, diff_id, compression="gzip", lease=None) -> LayerBlob
        the layer in the wanted compression, made once from a stored form and remembered
    stream_layer(store, diff_id, compression, out) -> LayerBlob
        the layer compressed from a stored form into ``out`` (a push's upload), nothing kept
    commit_image(store, config, names=(), repo_digests=(), manifest_digest="", parent="") -> ImageRecord
        store the config blob, check every layer is stored, record the image and its names

Pass a ``Lease`` while building up an image so a concurrent GC keeps the new blobs until
``commit_image`` (which runs under the store's GC lock) makes the image record their root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from dockyard.archive import tarheader
from dockyard.content import CHUNK, Writer
from dockyard.errors import CorruptData, DigestMismatch, InvalidArgument, NotFound
from dockyard.image import ImageRecord, LayerBlob
from dockyard.imageops import Lease, Store
from dockyard.imageops.images import normalize_repo_digest, normalize_tag
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import ImageConfig
from dockyard.oci.digest import Digest, Hasher

if TYPE_CHECKING:
    from dockyard.archive.compression import LayerDigests

__all__ = ["ContentSize", "commit_image", "layer_blob", "learn_content_sizes",
           "normalize_repo_digest", "normalize_tag", "store_layer", "store_layer_blob", "stream_layer"]


def _chunks(source: bytes | BinaryIO | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
    elif hasattr(source, "read"):
        reader: BinaryIO = source  # type: ignore[assignment]
        while chunk := reader.read(CHUNK):
            yield chunk
    else:
        yield from source


_HEADER_ONLY = (tarheader.LNKTYPE, tarheader.SYMTYPE, tarheader.CHRTYPE, tarheader.BLKTYPE,
                tarheader.DIRTYPE, tarheader.FIFOTYPE)


class ContentSize:
    """Counts a layer tar's content size while it streams past, as docker sizes layers: bytes of
    regular files plus the length of each symlink target (hard links once). ``size`` is -1 if the
    stream turned out not to be a tar."""

    def __init__(self) -> None:
        self.total = 0
        self.failed = False
        self._buf = bytearray()
        self._need = tarheader.BLOCK
        self._skip = 0
        self._pax_len = -1  # >= 0 while collecting a PAX header body of that length
        self._pax_size: int | None = None
        self._pax_link: int | None = None

    @property
    def size(self) -> int:
        return -1 if self.failed else self.total

    def scan(self, f: BinaryIO) -> int:
        """Count a seekable, uncompressed tar file, reading only its headers; return ``size``."""
        while not self.failed:
            if self._skip:
                f.seek(self._skip, 1)
                self._skip = 0
            block = f.read(self._need - len(self._buf))
            if not block:
                break
            self.feed(block)
        return self.size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.failed:
            return
        view = memoryview(data).cast("B")
        pos, n = 0, len(view)
        while pos < n:
            if self._skip:
                k = min(self._skip, n - pos)
                self._skip -= k
                pos += k
                continue
            take = min(self._need - len(self._buf), n - pos)
            self._buf += view[pos:pos + take]
            pos += take
            if len(self._buf) < self._need:
                return
            block = bytes(self._buf)
            self._buf.clear()
            try:
                self._handle(block)
            except (CorruptData, ValueError):
                self.failed = True
                return

    def _handle(self, block: bytes) -> None:
        if self._pax_len >= 0:
            records = tarheader.parse_pax(block[:self._pax_len])
            if "size" in records:
                self._pax_size = int(records["size"])
            if "linkpath" in records:
                self._pax_link = len(records["linkpath"])
            self._pax_len = -1
            self._need = tarheader.BLOCK
            return
        if not any(block):
            return  # end-of-archive (or padding) blocks
        entry = tarheader.decode(block)
        padded = -(-entry.size // tarheader.BLOCK) * tarheader.BLOCK
        if entry.type == tarheader.XHDTYPE:
            if entry.size > tarheader.MAX_SPECIAL_SIZE:
                raise CorruptData("PAX header too large")
            self._pax_len = entry.size
            self._need = max(padded, tarheader.BLOCK)
            return
        if entry.type in (tarheader.XGLTYPE, tarheader.GNU_LONGNAME, tarheader.GNU_LONGLINK):
            self._skip = padded  # (a GNU long link name is not counted: rare, and only a few bytes)
            return
        size = self._pax_size if self._pax_size is not None else entry.size
        link_len = self._pax_link if self._pax_link is not None else len(entry.linkname.encode())
        self._pax_size = self._pax_link = None
        if entry.isreg():
            self.total += size
            self._skip = -(-size // tarheader.BLOCK) * tarheader.BLOCK
        elif entry.type == tarheader.SYMTYPE:
            self.total += link_len
        elif entry.type not in _HEADER_ONLY:
            self._skip = -(-size // tarheader.BLOCK) * tarheader.BLOCK


def store_layer(store: Store, source: bytes | BinaryIO | Iterable[bytes], *, compression: str = "none",
                lease: Lease | None = None) -> LayerBlob:
    """Store an uncompressed layer tar; return the stored form (diff ID, blob digest, sizes)."""
    # Here, not at import: a build that stores no layer loads no compression library.
    from dockyard.archive.compression import CompressingWriter

    if compression not in ("none", "gzip", "zstd"):
        raise InvalidArgument(f"cannot store a layer with {compression!r} compression")
    counter = ContentSize()
    with store.content.writer() as w:
        cw = CompressingWriter(w, compression)  # type: ignore[arg-type]
        for chunk in _chunks(source):
            cw.write(chunk)
            counter.feed(chunk)
        result = cw.close()
        info = w.commit(lease.add_blob if lease else None)
    layer = LayerBlob(Digest(result.diff_id), info.digest, result.media_type, info.size,
                      result.size_uncompressed, counter.size)
    store.meta.add_layer_blob(layer)
    return layer


class _Tee:
    """Reads from ``inner`` and copies every byte into a content writer."""

    def __init__(self, inner: BinaryIO, out: Writer) -> None:
        self.inner = inner
        self.out = out

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        if data:
            self.out.write(data)
        return data


def store_layer_blob(store: Store, source: BinaryIO | bytes, *, expected: str | None = None,
                     size: int | None = None, diff_id: str | None = None, media_type: str = "",
                     lease: Lease | None = None) -> LayerBlob:
    """Store a layer blob as received; compute its diff ID by decompressing in the same pass.

    ``media_type`` defaults to the OCI type of the detected compression. If ``expected`` and
    ``diff_id`` are both known and the blob is already recorded, nothing is read.
    """
    from dockyard.archive.compression import open_decompressed

    if isinstance(source, bytes | bytearray):
        import io

        source = io.BytesIO(source)
    if expected is not None:
        if lease is not None:
            lease.add_blob(expected)
        known = store.meta.layer_by_blob(expected)
        if (known is not None and store.content.exists(expected)
                and (diff_id is None or known.diff_id == diff_id)):
            return known
    with store.content.writer(expected, size) as w:
        tee = _Tee(source, w)
        reader, compression = open_decompressed(tee)
        hasher = Hasher()
        counter = ContentSize()
        while chunk := reader.read(CHUNK):
            hasher.update(chunk)
            counter.feed(chunk)
        while tee.read(CHUNK):  # trailing bytes after the compressed stream still belong to the blob
            pass
        actual_diff = hasher.digest()
        if diff_id is not None and actual_diff != diff_id:
            raise DigestMismatch(diff_id, actual_diff, f"diff ID of layer {expected or w.digest}")
        info = w.commit(lease.add_blob if lease else None)
    if not media_type:
        media_type = mt.layer_media_type(compression if compression in ("gzip", "zstd") else "none")
    layer = LayerBlob(actual_diff, info.digest, media_type, info.size, hasher.size, counter.size)
    store.meta.add_layer_blob(layer)
    return layer


def has_layer_form(store: Store, diff_id: str, compression: str) -> bool:
    """Whether the layer is stored in ``compression`` already (``layer_blob`` then compresses nothing)."""
    return any(mt.layer_compression(f.media_type) == compression and store.content.exists(f.digest)
               for f in store.meta.layer_blobs(diff_id))


def layer_blob(store: Store, diff_id: str, compression: str = "gzip", *, lease: Lease | None = None,
               docker_media_type: bool = False,
               progress: Callable[[int, int], None] | None = None) -> LayerBlob:
    """The layer ``diff_id`` as a blob in ``compression``; made (once) from a stored form if needed.

    While compressing, ``progress(done, total)`` is told the layer's uncompressed bytes read so far."""
    forms = _forms(store, diff_id)
    for form in forms:
        # A layer kept as its snapshot has no blob yet: asked for uncompressed, it gets one below.
        if mt.layer_compression(form.media_type) == compression and store.content.exists(form.digest):
            if lease is not None:
                lease.add_blob(form.digest)
            if docker_media_type:
                return LayerBlob(form.diff_id, form.digest, mt.layer_media_type(compression, docker=True),
                                 form.size, form.uncompressed_size, form.content_size)
            return form
    with store.content.writer() as w:
        result = _compress(store, diff_id, forms[0], compression, w, progress)
        info = w.commit(lease.add_blob if lease else None)
    layer = LayerBlob(Digest(diff_id), info.digest, mt.layer_media_type(compression), info.size,
                      result.size_uncompressed, max((f.content_size for f in forms), default=-1))
    store.meta.add_layer_blob(layer)
    if docker_media_type:
        return LayerBlob(layer.diff_id, layer.digest, mt.layer_media_type(compression, docker=True),
                         layer.size, layer.uncompressed_size, layer.content_size)
    return layer


class _Sink:
    """A writable that hands what it is given to a callable."""

    def __init__(self, out: Callable[[bytes], None]) -> None:
        self.write = out


def stream_layer(store: Store, diff_id: str, compression: str, out: Callable[[bytes], None], *,
                 docker_media_type: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> LayerBlob:
    """Compress the layer ``diff_id`` from a stored form, handing the bytes to ``out`` as they are
    made (to upload them) and keeping none: the returned form is described, not stored."""
    forms = _forms(store, diff_id)
    result = _compress(store, diff_id, forms[0], compression, _Sink(out), progress)
    return LayerBlob(Digest(diff_id), Digest(result.digest),
                     mt.layer_media_type(compression, docker=docker_media_type), result.size,
                     result.size_uncompressed, max((f.content_size for f in forms), default=-1))


def _forms(store: Store, diff_id: str) -> list[LayerBlob]:
    from dockyard.imageops.layers import stored_forms

    forms = stored_forms(store, diff_id)
    if not forms:
        raise NotFound(f"layer {diff_id} not found in the local store")
    return forms


def _compress(store: Store, diff_id: str, source: LayerBlob, compression: str, out: object,
              progress: Callable[[int, int], None] | None) -> LayerDigests:
    """Compress the layer from its stored form ``source`` into ``out``, checked against ``diff_id``
    (a stored tar that hashes otherwise is quarantined)."""
    from dockyard.archive.compression import CompressingWriter, open_decompressed, usable_cpus
    from dockyard.imageops.layers import open_form

    plain = mt.layer_compression(source.media_type) == "none"
    # An uncompressed source is its own diff ID: the check below verifies it without a second hash.
    # A layer kept as its snapshot is written again from it, and checked as it streams.
    stored = store.content.exists(source.digest)
    with (store.content.open(source.digest) if plain and stored
          else open_form(store, source.digest, source.size, f"layer {diff_id}")[0]) as f:
        # The stored tar itself (the compressor maps it), the tar written again from the snapshot,
        # or the stored form decompressed.
        reader = f if plain else open_decompressed(f)[0]
        # Every usable core compresses (pigz-style gzip members, or zstd workers); the blob's bytes
        # do not depend on how many there are.
        with CompressingWriter(out, compression, threads=usable_cpus()) as cw:  # type: ignore[arg-type]
            total = max(source.uncompressed_size, 0)
            cw.write_from(reader, None if progress is None else lambda done: progress(done, total))
            result = cw.close()
    if result.diff_id != diff_id and plain and stored:
        from dockyard.content.verify import quarantined

        raise quarantined(store.content, source.digest, f"content hashes to {result.diff_id}",
                          f"layer {diff_id}", result.diff_id)
    if result.diff_id != diff_id:
        raise CorruptData(f"layer blob {source.digest} decompresses to {result.diff_id}, "
                          f"recorded as {diff_id}")
    return result


def learn_content_sizes(store: Store, diff_ids: Sequence[str]) -> None:
    """Fill in docker-style sizes of layers stored without one (by code other than ``store_layer*``):
    from an unpacked snapshot if there is one, else by reading an uncompressed blob's headers."""
    from dockyard.image import chain_ids

    for diff_id, chain in zip(diff_ids, chain_ids(diff_ids), strict=True):
        forms = store.meta.layer_blobs(diff_id)
        if not forms or any(f.content_size >= 0 for f in forms):
            continue
        size = -1
        if store.snapshots.exists(chain):
            size = store.snapshots.size(chain)
        else:
            for form in forms:
                if mt.layer_compression(form.media_type) == "none" and store.content.exists(form.digest):
                    with store.content.open(form.digest) as f:
                        size = ContentSize().scan(f)
                    break
        if size >= 0:
            store.meta.set_content_size(diff_id, size)


def commit_image(store: Store, config: bytes | ImageConfig, *, names: Sequence[str] = (),
                 repo_digests: Sequence[str] = (), manifest_digest: str = "", parent: str = "",
                 require_layers: bool = True, add_platform: bool = False) -> ImageRecord:
    """Record an image whose layers are already stored; return its record (``id`` = config digest).

    ``config`` as bytes is stored verbatim (the image ID is the digest of exactly those bytes).
    ``names`` are tags (normalised; ``:latest`` added), moved from any image that had them (with
    ``add_platform``, the image joins the tag's other platforms, replacing only its own platform's);
    ``repo_digests`` are ``name@digest`` of manifests this image was pulled or pushed as.
    """
    raw = config.to_json() if isinstance(config, ImageConfig) else bytes(config)
    parsed = config if isinstance(config, ImageConfig) else ImageConfig.from_json(raw)
    tags = [normalize_tag(n) for n in names]
    digests = [normalize_repo_digest(d) for d in repo_digests]
    if manifest_digest:
        manifest_digest = str(Digest(manifest_digest))
    # Under the shared GC lock no collection can run between storing the config and recording it.
    learn_content_sizes(store, parsed.diff_ids)
    with store.gc_lock():
        # A rebuild that changed nothing makes the same config: it is not written (and synced) again.
        info = store.content.ingest(raw, expected=Digest.from_bytes(raw))
        sizes = store.meta.layer_sizes()
        total = 0
        from dockyard.imageops.layers import stored_forms

        for diff_id in parsed.diff_ids:
            forms = stored_forms(store, diff_id)
            if not forms:
                if require_layers:
                    raise NotFound(f"layer {diff_id} of image {info.digest} is not in the local store")
                continue
            size = sizes.get(str(diff_id), -1)
            total += size if size >= 0 else forms[0].size
        labels = parsed.config.get("Labels") or {}
        record = ImageRecord(
            id=info.digest, created=parsed.created, size=total, os=parsed.os,
            architecture=parsed.architecture, variant=parsed.variant,
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            diff_ids=list(parsed.diff_ids), manifest_digest=manifest_digest, parent=parent,
            added=time.time(),
        )
        with store.meta.transaction():
            store.meta.put_image(record)
            for tag in tags:
                if add_platform:
                    from dockyard.imageops import platforms  # a multi-platform build's images only

                    platforms.add_to_tag(store, tag, record.id)
                else:
                    store.meta.set_tag(tag, record.id)
            for name, digest in digests:
                store.meta.add_repo_digest(name, digest, record.id)
    return store.meta.get_image(record.id) or record
