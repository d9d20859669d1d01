"""``load``: read a ``docker save`` tar or an OCI layout tar (gzip'd or not) into the local store.

One streaming pass, no seeking (stdin works): every member that looks like a layer (a tar, gzip or
zstd stream) is copied straight into the content store while its digest, its diff ID (the digest of
the uncompressed tar) and the safety of every path inside it are checked in the same pass; small
JSON documents stay in memory. Only when the whole archive has been read are ``manifest.json`` or
``index.json`` interpreted, every reference verified, and the images recorded at once: a failed
load records nothing (blobs already copied are unreferenced and go with the next GC).
Layers are not unpacked here; that happens lazily when a container runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from dockyard.archive.compression import HashingReader, detect, open_decompressed
from dockyard.archive.reader import TarReader
from dockyard.archive.tarheader import AREGTYPE, CONTTYPE, LNKTYPE, REGTYPE, SYMTYPE, TarEntry
from dockyard.content import ContentStore
from dockyard.errors import CorruptData, DigestMismatch, DockyardError, InvalidArgument, NotFound
from dockyard.image import LayerBlob
from dockyard.imageops import Lease, Store, commit, layout
from dockyard.imageops import platforms as tag_platforms
from dockyard.imageops.attestations import is_attestation, keep
from dockyard.oci import mediatypes as mt
from dockyard.oci import platform as platforms
from dockyard.oci import reference
from dockyard.oci.canonical import loads_object
from dockyard.oci.config import ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_index, parse_manifest, sniff_media_type
from dockyard.progress import Event, ProgressSink, discard
from dockyard.record import field, record

#: Members up to this size that do not look like a layer are kept in memory (JSON documents).
SMALL = 4 << 20
_HEAD = 1024  # enough to see a gzip/zstd magic or a ustar header's magic at offset 257
_REGULAR = frozenset((REGTYPE, AREGTYPE, CONTTYPE))
_MAX_LINK_HOPS = 40


@record(slots=True)
class Member:
    """A regular file of the archive, as the scan left it."""

    path: str
    size: int
    digest: Digest
    data: bytes | None = None  # kept in memory (small, not a layer)
    diff_id: Digest | None = None  # digest of the uncompressed tar, when it looked like a layer
    uncompressed_size: int = -1
    compression: str = "none"
    stored: bool = False  # committed to the content store under ``digest``
    error: DockyardError | None = None  # why it is not a usable layer


@record(slots=True)
class ScannedArchive:
    """Everything one pass over the archive learned: regular files and links, by cleaned path."""

    source: str
    members: dict[str, Member] = field(default_factory=dict)
    links: dict[str, tuple[str, bool]] = field(default_factory=dict)  # path -> (target, is_symlink)

    def member(self, path: str, what: str) -> Member:
        seen = 0
        current = path
        while current in self.links:
            target, symlink = self.links[current]
            current = layout.resolve_link(current, target, symlink=symlink, where=self.source)
            seen += 1
            if seen > _MAX_LINK_HOPS:
                raise CorruptData(f"{self.source}: {what} {path!r}: too many levels of links")
        found = self.members.get(current)
        if found is None:
            raise CorruptData(f"{self.source}: {what} {path!r} is missing from the archive")
        return found

    def has(self, path: str) -> bool:
        return path in self.members or path in self.links


@record(frozen=True, slots=True)
class LoadedLayer:
    diff_id: Digest
    digest: Digest
    media_type: str
    size: int
    uncompressed_size: int


@record(slots=True)
class LoadedImage:
    """One image of the archive, verified, its blobs already in the content store (but the config
    and manifest bytes, which ``commit`` stores with the image record)."""

    config_bytes: bytes
    config: ImageConfig
    layers: list[LoadedLayer]
    names: list[str] = field(default_factory=list)
    manifest_bytes: bytes | None = None
    manifest_media_type: str = ""

    @property
    def id(self) -> Digest:
        return Digest.from_bytes(self.config_bytes)


class _Tee:
    """A readable over an entry's body chunks that writes every byte it hands out to ``sink``.

    Chunks are views of the outer reader's immutable buffers, so they stay valid without a copy;
    only what ``read`` returns is copied, once.
    """

    def __init__(self, head: bytes, chunks: Iterator[bytes | memoryview],
                 sink: Callable[[bytes | memoryview], object]) -> None:
        self._view = memoryview(head)
        self._pos = 0
        self._chunks = chunks
        self._sink = sink
        if head:
            sink(head)

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._view):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._view = memoryview(chunk)
            self._pos = 0
            self._sink(self._view)
        start = self._pos
        end = len(self._view) if n < 0 else min(len(self._view), start + n)
        self._pos = end
        return bytes(self._view[start:end])

    def drain(self) -> None:
        self._pos = len(self._view)
        for chunk in self._chunks:
            self._sink(chunk)


def _looks_like_layer(head: bytes) -> str:
    """``"gzip"``/``"zstd"``/``"tar"`` when ``head`` starts a layer-ish stream, else ``""``."""
    kind = detect(head)
    if kind in ("gzip", "zstd", "bzip2", "xz"):
        return kind
    if len(head) >= 263 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 512 and not any(head[:512]):
        return "tar"  # an empty tar: two zero blocks
    return ""


def _check_layer_entry(entry: TarEntry, where: str) -> None:
    layout.clean_member(entry.name, where)
    if entry.type == LNKTYPE:
        layout.clean_member(entry.linkname, f"{where}: hard link {entry.name!r}")


class _Scanner:
    def __init__(self, content: ContentStore, source: str, progress: ProgressSink,
                 protect: Callable[[Digest], None] | None) -> None:
        self.content = content
        self.source = source
        self.progress = progress
        self.protect = protect

    def scan(self, stream: BinaryIO) -> ScannedArchive:
        out = ScannedArchive(self.source)
        try:
            plain, _ = open_decompressed(stream)
            reader = TarReader(plain)
            for entry in reader:
                self._entry(reader, entry, out)
        except DigestMismatch:
            raise  # names its place already
        except CorruptData as exc:
            if str(exc).startswith(self.source):
                raise
            raise CorruptData(f"{self.source}: {exc}") from None
        if not out.members and not out.links:
            raise CorruptData(f"{self.source}: empty archive (not a tar of an image?)")
        return out

    def _entry(self, reader: TarReader, entry: TarEntry, out: ScannedArchive) -> None:
        path = layout.clean_member(entry.name, self.source)
        if entry.type in (SYMTYPE, LNKTYPE):
            out.links[path] = (entry.linkname, entry.type == SYMTYPE)
            return
        if entry.type not in _REGULAR:
            return  # directories and the like carry nothing a load needs
        head = reader.read(min(entry.size, _HEAD))
        kind = _looks_like_layer(head)
        if not kind and entry.size <= SMALL:
            data = head + reader.read()
            out.members[path] = Member(path, len(data), Digest.from_bytes(data), data=data)
            return
        out.members[path] = self._store(reader, entry, path, head, kind)

    def _store(self, reader: TarReader, entry: TarEntry, path: str, head: bytes, kind: str) -> Member:
        expected = layout.digest_of_blob_path(path)
        self.progress(Event(id=path, name="Loading layer", status="started", total=entry.size))
        with self.content.writer() as w:
            tee = _Tee(head, reader.chunks(), w.write)
            diff_id: Digest | None = None
            usize = -1
            error: DockyardError | None = None
            if kind:
                where = f"{self.source}: layer {path}"
                try:
                    if kind == "tar":
                        inner = TarReader(tee)
                        for item in inner:
                            _check_layer_entry(item, where)
                        inner.drain()
                    else:
                        plain, _ = open_decompressed(tee)
                        hashing = HashingReader(plain)
                        inner = TarReader(hashing)
                        for item in inner:
                            _check_layer_entry(item, where)
                        inner.drain()
                        diff_id, usize = Digest(hashing.digest), hashing.size
                except CorruptData as exc:
                    msg = str(exc)
                    error = exc if msg.startswith(where) else CorruptData(f"{where}: {msg}")
            tee.drain()
            if w.size != entry.size:
                raise CorruptData(f"{self.source}: member {path!r} truncated")
            digest = w.digest
            if expected is not None and expected != digest:
                raise DigestMismatch(expected, digest, f"{self.source}: {path}")
            if kind == "tar" and error is None:
                diff_id, usize = digest, w.size
            if not kind:
                error = CorruptData(f"{self.source}: layer {path}: not a tar archive")
            w.commit(self.protect)
        self.progress(Event(id=path, name="Loading layer", status="done", current=entry.size,
                            total=entry.size))
        compression = kind if kind in ("gzip", "zstd") else "none"
        return Member(path, entry.size, digest, diff_id=diff_id, uncompressed_size=usize,
                      compression=compression, stored=True, error=error)


def scan(stream: BinaryIO, content: ContentStore, *, source: str = "archive",
         progress: ProgressSink = discard, protect: Callable[[Digest], None] | None = None
         ) -> ScannedArchive:
    """Read a whole archive: layers go into ``content`` (``protect`` runs before each is visible)."""
    return _Scanner(content, source, progress, protect).scan(stream)


# -- interpreting what was scanned ----------------------------------------------------------------


def _bytes_of(archive: ScannedArchive, content: ContentStore, path: str, what: str) -> bytes:
    m = archive.member(path, what)
    if m.data is not None:
        return m.data
    return content.read(m.digest)


def _layer(archive: ScannedArchive, path: str, expected_diff_id: Digest, media_type: str = "") -> LoadedLayer:
    m = archive.member(path, "layer")
    if m.error is not None:
        raise m.error
    if m.data is not None or m.diff_id is None:
        raise CorruptData(f"{archive.source}: layer {path}: not a tar archive")
    if m.diff_id != expected_diff_id:
        raise DigestMismatch(expected_diff_id, m.diff_id, f"{archive.source}: layer {path}: diff ID")
    if not media_type or not layout.is_layer_type(media_type):
        media_type = mt.layer_media_type(m.compression)
    size = m.uncompressed_size if m.uncompressed_size >= 0 else m.size
    return LoadedLayer(m.diff_id, m.digest, media_type, m.size, size)


def _config(archive: ScannedArchive, content: ContentStore, path: str,
            where: str) -> tuple[bytes, ImageConfig]:
    data = _bytes_of(archive, content, path, "config")
    expected = layout.digest_of_blob_path(path)
    if expected is not None and Digest.from_bytes(data) != expected:
        raise DigestMismatch(expected, Digest.from_bytes(data), f"{archive.source}: {path}")
    return data, ImageConfig.from_json(data, f"{where}: config {path}")


def _from_docker_manifest(archive: ScannedArchive, content: ContentStore) -> list[LoadedImage]:
    where = f"{archive.source}: {layout.MANIFEST_JSON}"
    entries = layout.parse_docker_manifest(_bytes_of(archive, content, layout.MANIFEST_JSON, "file"), where)
    oci_manifests = _oci_manifests_by_config(archive, content)
    images: list[LoadedImage] = []
    for i, entry in enumerate(entries):
        place = f"{where}: image {i}"
        config_bytes, config = _config(archive, content, entry.config, place)
        if len(config.diff_ids) != len(entry.layers):
            raise CorruptData(f"{place}: {len(entry.layers)} layers listed but the config has "
                              f"{len(config.diff_ids)} diff IDs")
        config_digest = Digest.from_bytes(config_bytes)
        found = oci_manifests.get(config_digest)
        media_types = [d.media_type for d in found[1].layers] if found else []
        if len(media_types) != len(entry.layers):
            media_types = [""] * len(entry.layers)
        layers = [_layer(archive, p, d, t) for p, d, t in zip(entry.layers, config.diff_ids, media_types,
                                                               strict=True)]
        image = LoadedImage(config_bytes, config, layers, names=list(entry.repo_tags))
        if found and [x.digest for x in found[1].layers] == [x.digest for x in layers]:
            image.manifest_bytes, image.manifest_media_type = found[0], found[1].media_type
        images.append(image)
    return images


def _oci_manifests_by_config(archive: ScannedArchive,
                             content: ContentStore) -> dict[Digest, tuple[bytes, Manifest]]:
    """Manifests of the archive's ``blobs/`` (docker 25+ writes them next to ``manifest.json``)."""
    out: dict[Digest, tuple[bytes, Manifest]] = {}
    for path, m in archive.members.items():
        if m.data is None or not path.startswith("blobs/"):
            continue
        try:
            man = parse_manifest(m.data, path)
        except DockyardError:
            continue
        out[man.config.digest] = (m.data, man)
    return out


def _blob(archive: ScannedArchive, content: ContentStore, desc: Descriptor, what: str) -> bytes:
    data = _bytes_of(archive, content, layout.blob_path(desc.digest), what)
    actual = Digest.from_bytes(data)
    if actual != desc.digest:
        raise DigestMismatch(desc.digest, actual, f"{archive.source}: {what} {layout.blob_path(desc.digest)}")
    return data


def _attestations(archive: ScannedArchive, store: Store, index_data: bytes, lease: Lease) -> list[Descriptor]:
    """The attestation manifests of a saved index that the archive holds, stored with their blobs."""
    out = []
    for desc in parse_index(index_data, f"{archive.source}: index").manifests:
        if not is_attestation(desc) or layout.blob_path(desc.digest) not in archive.members:
            continue
        data = _blob(archive, store.content, desc, "attestation manifest")
        manifest = parse_manifest(data, f"{archive.source}: attestation manifest {desc.digest}")
        for blob in (manifest.config, *manifest.layers):
            if layout.blob_path(blob.digest) in archive.members:
                store.content.ingest(_blob(archive, store.content, blob, "attestation"), expected=blob.digest,
                                     before_publish=lease.add_blob)
        store.content.ingest(data, expected=desc.digest, before_publish=lease.add_blob)
        out.append(desc)
    return out


def _image_from_manifest(archive: ScannedArchive, content: ContentStore, data: bytes,
                         where: str, names: list[str]) -> LoadedImage:
    man = parse_manifest(data, where)
    config_bytes = _blob(archive, content, man.config, "config")
    config = ImageConfig.from_json(config_bytes, f"{where}: config")
    if len(config.diff_ids) != len(man.layers):
        raise CorruptData(f"{where}: {len(man.layers)} layers but the config has "
                          f"{len(config.diff_ids)} diff IDs")
    layers: list[LoadedLayer] = []
    for desc, diff_id in zip(man.layers, config.diff_ids, strict=True):
        layer = _layer(archive, layout.blob_path(desc.digest), diff_id, desc.media_type)
        if layer.digest != desc.digest:
            where_layer = f"{archive.source}: layer {layout.blob_path(desc.digest)}"
            raise DigestMismatch(desc.digest, layer.digest, where_layer)
        layers.append(layer)
    return LoadedImage(config_bytes, config, layers, names=names, manifest_bytes=data,
                       manifest_media_type=man.media_type)


def _from_oci_index(archive: ScannedArchive, content: ContentStore,
                    want: platforms.Platform | None) -> list[LoadedImage]:
    where = f"{archive.source}: {layout.INDEX_JSON}"
    if archive.has(layout.OCI_LAYOUT):
        layout.parse_oci_layout(_bytes_of(archive, content, layout.OCI_LAYOUT, "file"),
                                f"{archive.source}: {layout.OCI_LAYOUT}")
    index = parse_index(_bytes_of(archive, content, layout.INDEX_JSON, "file"), where)
    images: list[LoadedImage] = []
    for i, desc in enumerate(index.manifests):
        names = [n for n in [layout.image_name_of(desc)] if n]
        data = _blob(archive, content, desc, "manifest")
        kind = desc.media_type or sniff_media_type(loads_object(data, where))
        if mt.is_index(kind) and want is None and names:
            # A multi-platform image: every platform the archive holds, under the one name.
            for j, member in enumerate(_platform_manifests(archive, content, data, f"{where}: manifest {i}")):
                images.append(_image_from_manifest(archive, content, member, f"{where}: manifest {i}.{j}",
                                                   names))
            continue
        if mt.is_index(kind):
            data = _pick_platform(archive, content, data, f"{where}: manifest {i}", want)
        images.append(_image_from_manifest(archive, content, data, f"{where}: manifest {i}", names))
    return images


def _platform_manifests(archive: ScannedArchive, content: ContentStore, data: bytes,
                        where: str) -> list[bytes]:
    """The manifests of an index the archive holds (attestations, platform unknown, left out)."""
    index = parse_index(data, where)
    found = [_blob(archive, content, d, "manifest") for d in index.manifests
             if mt.is_manifest(d.media_type) and d.platform is not None
             and d.platform.architecture != "unknown" and layout.blob_path(d.digest) in archive.members]
    if not found:
        raise NotFound(f"{where}: the archive holds no image of the index")
    return found


def named_indexes(archive: ScannedArchive, content: ContentStore) -> list[tuple[str, bytes]]:
    """(name, index bytes) of the multi-platform images ``index.json`` names."""
    if not archive.has(layout.INDEX_JSON):
        return []
    where = f"{archive.source}: {layout.INDEX_JSON}"
    out: list[tuple[str, bytes]] = []
    for desc in parse_index(_bytes_of(archive, content, layout.INDEX_JSON, "file"), where).manifests:
        name = layout.image_name_of(desc)
        if name and mt.is_index(desc.media_type) and layout.blob_path(desc.digest) in archive.members:
            out.append((name, _blob(archive, content, desc, "index")))
    return out


def _pick_platform(archive: ScannedArchive, content: ContentStore, data: bytes, where: str,
                   want: platforms.Platform | None) -> bytes:
    index = parse_index(data, where)
    target = want or platforms.host()
    candidates = [d for d in index.manifests if mt.is_manifest(d.media_type)
                  and d.platform is not None and target.matches(d.platform)
                  and layout.blob_path(d.digest) in archive.members]
    if not candidates and want is None:
        candidates = [d for d in index.manifests if mt.is_manifest(d.media_type)
                      and layout.blob_path(d.digest) in archive.members]
    if not candidates:
        raise NotFound(f"{where}: no image for platform {target} in the archive")
    return _blob(archive, content, candidates[0], "manifest")


def interpret(archive: ScannedArchive, content: ContentStore, *,
              platform: platforms.Platform | None = None) -> list[LoadedImage]:
    """The verified images of a scanned archive (``manifest.json`` first, else ``index.json``)."""
    if archive.has(layout.MANIFEST_JSON):
        images = _from_docker_manifest(archive, content)
    elif archive.has(layout.INDEX_JSON):
        images = _from_oci_index(archive, content, platform)
    elif archive.has(layout.REPOSITORIES):
        raise CorruptData(f"{archive.source}: only a legacy 'repositories' file, no manifest.json "
                          "(images saved by docker before 1.10 are not supported)")
    else:
        raise CorruptData(f"{archive.source}: no manifest.json or index.json in the archive "
                          "(not a docker save or OCI layout tar?)")
    if not images:
        raise CorruptData(f"{archive.source}: the archive holds no images")
    return images



# -- into the store -------------------------------------------------------------------------------


@record(frozen=True, slots=True)
class LoadResult:
    """One loaded image: its ID, the familiar names it got, and the IDs those names were taken from."""

    image_id: Digest
    names: tuple[str, ...]
    replaced: tuple[tuple[str, Digest], ...] = ()


def _familiar(name: str) -> str:
    try:
        return reference.parse_normalized(name).familiar()
    except InvalidArgument:
        return name


def _held(store: Store, name: str) -> list[Digest]:
    """The images the tag ``name`` holds: each platform's of a multi-platform tag, else its one."""
    members = store.meta.tag_platforms(name)
    if members:
        return [m.image_id for m in members]
    one = store.meta.get_tag(name)
    return [one] if one is not None else []


def load_into(store: Store, stream: BinaryIO, *, source: str = "archive",
              platform: platforms.Platform | None = None,
              progress: ProgressSink = discard) -> list[LoadResult]:
    """Load every image of the archive on ``stream`` into ``store``; return what was loaded.

    Everything is read and verified before the first image is recorded; a lease keeps the copied
    blobs from a concurrent GC until then.
    """
    results: list[LoadResult] = []
    with store.lease() as lease:
        archive = scan(stream, store.content, source=source, progress=progress, protect=lease.add_blob)
        images = interpret(archive, store.content, platform=platform)
        for img in images:
            for name in img.names:
                commit.normalize_tag(name)  # refuse a bad tag before anything is recorded
        for img in images:
            for layer in img.layers:
                store.meta.add_layer_blob(LayerBlob(layer.diff_id, layer.digest, layer.media_type,
                                                    layer.size, layer.uncompressed_size))
            manifest_digest = ""
            if img.manifest_bytes is not None:
                info = store.content.ingest(img.manifest_bytes, before_publish=lease.add_blob)
                manifest_digest = str(info.digest)
            before = {name: _held(store, commit.normalize_tag(name)) for name in img.names}
            rec = commit.commit_image(store, img.config_bytes, names=img.names,
                                      manifest_digest=manifest_digest, add_platform=True)
            # Only an image the tag no longer holds was replaced: another platform joining a
            # multi-platform tag (a saved index loads one platform at a time) replaces nothing.
            replaced: list[tuple[str, Digest]] = []
            for name, held in before.items():
                after = _held(store, commit.normalize_tag(name))
                replaced += [(_familiar(name), old) for old in held if old != rec.id and old not in after]
            results.append(LoadResult(rec.id, tuple(_familiar(n) for n in img.names), tuple(replaced)))
        if platform is None:
            for name, data in named_indexes(archive, store.content):
                full = commit.normalize_tag(name)
                adopted = tag_platforms.adopt_index(store, full, data)  # the index as saved
                kept = _attestations(archive, store, data, lease)
                if kept and not adopted:
                    keep(store, full, kept)
    return results
