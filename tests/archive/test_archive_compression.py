"""Compression detection, streaming decompression, and the one-pass compressing writer."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import zlib
from pathlib import Path

import pytest
import zstandard

from dockyard.archive import (
    CompressingWriter,
    HashingReader,
    apply_layer,
    detect,
    open_decompressed,
    write_tree,
)
from dockyard.errors import CorruptData, InvalidArgument

DATA = b"".join(b"line %d of a layer %s\n" % (i, os.urandom(i % 7)) for i in range(20_000))


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_detect_by_magic() -> None:
    assert detect(gzip.compress(b"x")) == "gzip"
    assert detect(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect(bz2.compress(b"x")) == "bzip2"
    assert detect(lzma.compress(b"x")) == "xz"
    assert detect(b"etc/\0\0\0") == "none" and detect(b"") == "none"


@pytest.mark.parametrize("kind", ["gzip", "gzip-multi", "zstd", "zstd-multi", "bzip2", "xz", "none"])
def test_open_decompressed(kind: str) -> None:
    half = len(DATA) // 2
    blob = {
        "gzip": lambda: gzip.compress(DATA),
        "gzip-multi": lambda: gzip.compress(DATA[:half]) + gzip.compress(DATA[half:]) + bytes(10),
        "zstd": lambda: zstandard.ZstdCompressor().compress(DATA),
        "zstd-multi": lambda: zstandard.ZstdCompressor().compress(DATA[:half])
        + zstandard.ZstdCompressor().compress(DATA[half:]),
        "bzip2": lambda: bz2.compress(DATA),
        "xz": lambda: lzma.compress(DATA),
        "none": lambda: DATA,
    }[kind]()
    reader, found = open_decompressed(io.BytesIO(blob))
    assert found == kind.split("-")[0]
    out = bytearray()
    while chunk := reader.read(65536):
        assert len(chunk) <= 65536
        out += chunk
    assert bytes(out) == DATA


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_corrupt_and_truncated_streams_are_corrupt_data(kind: str) -> None:
    good = gzip.compress(DATA) if kind == "gzip" else zstandard.ZstdCompressor().compress(DATA)
    bad = bytearray(good)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = os.urandom(64)
    for blob in (bytes(bad), good[: len(good) // 2]):
        reader, _ = open_decompressed(io.BytesIO(blob))
        with pytest.raises(CorruptData, match=kind):
            while reader.read(1 << 16):
                pass


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_compressing_writer_hashes_both_sides_in_one_pass(kind: str) -> None:
    out = io.BytesIO()
    cw = CompressingWriter(out, kind)  # type: ignore[arg-type]
    for i in range(0, len(DATA), 100_000):
        cw.write(DATA[i : i + 100_000])
    d = cw.close()
    blob = out.getvalue()
    assert d.diff_id == sha(DATA) and d.size_uncompressed == len(DATA)
    assert d.digest == sha(blob) and d.size == len(blob)
    assert cw.close() is d
    if kind == "gzip":
        assert gzip.decompress(blob) == DATA and d.media_type.endswith("tar+gzip") and d.size < len(DATA)
    elif kind == "zstd":
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == DATA
    else:
        assert blob == DATA and d.digest == d.diff_id


def test_compressing_writer_without_output_and_bad_kind() -> None:
    cw = CompressingWriter(None, "gzip", level=2)
    cw.write(DATA)
    assert cw.close().diff_id == sha(DATA)
    with pytest.raises(InvalidArgument):
        CompressingWriter(None, "bzip2")


def test_export_then_pull_pipeline(shm: Path) -> None:
    src, dst = shm / "src", shm / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(50):
        (src / "d" / f"f{i}").write_bytes(os.urandom(i * 100))
    blob_path = shm / "layer.tar.gz"
    with open(blob_path, "wb") as out:
        cw = CompressingWriter(out)
        write_tree(src, cw)
        digests = cw.close()
    with open(blob_path, "rb") as fh:
        hashing = HashingReader(fh)
        raw, kind = open_decompressed(hashing)
        unpacked = HashingReader(raw)
        stats = apply_layer(unpacked, dst)
    assert kind == "gzip" and stats.files == 50
    assert hashing.digest == digests.digest and hashing.size == digests.size  # drained to EOF
    assert unpacked.digest == digests.diff_id and unpacked.size == digests.size_uncompressed
    assert sorted(os.listdir(dst / "d")) == sorted(os.listdir(src / "d"))


def _members(blob: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, length, decompressed bytes) of each gzip member of ``blob``."""
    found, offset = [], 0
    while offset < len(blob):
        member = zlib.decompressobj(31)
        plain = member.decompress(blob[offset:])
        length = len(blob) - offset - len(member.unused_data)
        found.append((offset, length, plain))
        offset += length
    return found


def _same_blob(expected: bytes, got: bytes) -> None:
    """Assert two compressed blobs are equal; if not, say which gzip member first differs and how (a
    digest mismatch alone, seen once in CI, said nothing of where)."""
    if got == expected:
        return
    try:
        ours, theirs = _members(expected), _members(got)
    except zlib.error as exc:
        sizes = f"{len(expected)} vs {len(got)} bytes"
        raise AssertionError(f"blobs differ ({sizes}), one not gzip: {exc}") from None
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            where = next((k for k, (x, y) in enumerate(zip(a[2], b[2], strict=False)) if x != y), None)
            raise AssertionError(
                f"gzip member {i} of {len(ours)} vs {len(theirs)} differs: at {a[0]}/{b[0]}, {a[1]} vs "
                f"{b[1]} bytes, {len(a[2])} vs {len(b[2])} decompressed, first different byte {where}")
    raise AssertionError(f"blobs differ in their member count: {len(ours)} vs {len(theirs)}")


def _compress(kind: str, data: bytes, threads: int, piece: int = 300_000) -> tuple[bytes, str]:
    out = io.BytesIO()
    cw = CompressingWriter(out, kind, threads=threads)  # type: ignore[arg-type]
    for i in range(0, len(data), piece):
        cw.write(data[i : i + piece])
    d = cw.close()
    assert d.diff_id == sha(data) and d.digest == sha(out.getvalue()) and d.size == len(out.getvalue())
    return out.getvalue(), d.digest


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_parallel_compression_output_does_not_depend_on_thread_count(kind: str) -> None:
    data = DATA * 3 + os.urandom(1 << 20)  # several gzip blocks, a partial one at the end
    one, digest = _compress(kind, data, 1)
    for threads, piece in ((3, 1 << 20), (2, 77_777)):
        blob, got = _compress(kind, data, threads, piece=piece)
        if kind == "gzip":
            _same_blob(one, blob)
        assert blob == one and got == digest
    reader, found = open_decompressed(io.BytesIO(one))
    assert found == kind and reader.read() == data
    if kind == "gzip":
        assert gzip.decompress(one) == data  # a reader other than ours takes the members too


def test_parallel_gzip_is_independent_members_of_one_block_each() -> None:
    from isal import isal_zlib

    from dockyard.archive.compression import GZIP_BLOCK

    data = DATA * 5
    blob, _ = _compress("gzip", data, 2)
    members = [isal_zlib.compress(data[i : i + GZIP_BLOCK], 1, wbits=31)
               for i in range(0, len(data), GZIP_BLOCK)]
    assert len(members) > 2 and blob == b"".join(members)
    empty, _ = _compress("gzip", b"", 2)
    assert gzip.decompress(empty) == b"" and empty[:2] == b"\x1f\x8b"


def test_parallel_compression_failure_stops_the_workers() -> None:
    class Broken(io.BytesIO):
        def write(self, b: object) -> int:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), CompressingWriter(Broken(), "gzip", threads=2) as cw:
        for _ in range(10):
            cw.write(DATA)


def test_an_uncompressed_stream_reads_in_whole_pieces_after_detection() -> None:
    # Detection reads the first bytes ahead; the first read after it still fills the request, so a
    # compressor fed GZIP_BLOCK-sized reads (a first push) gets whole blocks, not 6 bytes and then
    # every block straddling two reads.
    from dockyard.archive.compression import GZIP_BLOCK

    data = os.urandom(3 * GZIP_BLOCK + 5)
    reader, found = open_decompressed(io.BufferedReader(io.BytesIO(data), GZIP_BLOCK))
    assert found == "none"
    sizes = []
    while chunk := reader.read(GZIP_BLOCK):
        sizes.append(len(chunk))
    assert sizes == [GZIP_BLOCK] * 3 + [5]
    short, _ = open_decompressed(io.BytesIO(b"abcdefgh"))
    assert short.read(3) == b"abc" and short.read(100) == b"defgh"


def test_parallel_compression_leaves_hashing_and_output_off_the_callers_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The caller (a first push reading the stored tar) only hands pieces on: the tar's sha256, the
    # members' hash and the output writes run on threads of their own, in order.
    import threading

    from dockyard.archive import compression

    hashed_on: set[threading.Thread] = set()
    real_sha256 = hashlib.sha256

    class Recording:
        def __init__(self) -> None:
            self.inner = real_sha256()

        def update(self, data: bytes) -> None:
            hashed_on.add(threading.current_thread())
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    written_from: set[threading.Thread] = set()

    class Out(io.BytesIO):
        def write(self, b: object) -> int:
            written_from.add(threading.current_thread())
            return super().write(b)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(compression.hashlib, "sha256", Recording)
    data = DATA * 4 + os.urandom(12345)
    out = Out()
    with CompressingWriter(out, "gzip", threads=2) as cw:
        for i in range(0, len(data), 100_000):
            cw.write(data[i : i + 100_000])
        result = cw.close()
    me = threading.current_thread()
    assert hashed_on and me not in hashed_on and written_from and me not in written_from
    assert result.diff_id == "sha256:" + real_sha256(data).hexdigest()
    assert result.digest == "sha256:" + real_sha256(out.getvalue()).hexdigest()
    assert gzip.decompress(out.getvalue()) == data


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_into_a_content_writer_every_byte_is_hashed_once(kind: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The content-store writer hashes what it writes (its commit checks it): the compressing writer
    # takes the blob's digest from there, and uncompressed the tar's too (the same bytes).
    from dockyard.archive import compression
    from dockyard.content import ContentStore

    hashed = [0]
    real_sha256 = hashlib.sha256

    class Counting:
        def __init__(self) -> None:
            self.inner = real_sha256()

        def update(self, data: bytes) -> None:
            hashed[0] += len(data)
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(compression.hashlib, "sha256", Counting)
    data = DATA * 2 + os.urandom(5000)
    store = ContentStore(tmp_path / "content", fsync=False)
    for threads in (0, 2):
        hashed[0] = 0
        with store.writer() as w:
            with CompressingWriter(w, kind, threads=threads) as cw:  # type: ignore[arg-type]
                for i in range(0, len(data), 65536):
                    cw.write(data[i : i + 65536])
                result = cw.close()
            info = w.commit()
        assert hashed[0] == (0 if kind == "none" else len(data))  # the tar's hash only, if it differs
        assert result.digest == str(info.digest) and result.size == info.size
        assert result.diff_id == "sha256:" + real_sha256(data).hexdigest()
        blob = store.read(info.digest)
        assert open_decompressed(io.BytesIO(blob))[0].read() == data


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_file_is_compressed_from_a_mapping_without_copies(kind: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A first push compresses the stored tar: with threads, the file is mapped and its pieces go to
    # the hashing (and gzip) threads as views of the mapping, never read into new buffers. The bytes
    # are those of a compression fed by reads.
    import mmap

    from dockyard.archive import compression

    block = compression.GZIP_BLOCK
    data = DATA * 4 + os.urandom(3 * block + 777)
    path = tmp_path / "layer.tar"
    path.write_bytes(b"skipped" + data)
    hashed: list[object] = []
    real_sha256 = hashlib.sha256

    class Recording:
        def __init__(self) -> None:
            self.inner = real_sha256()

        def update(self, piece: bytes) -> None:
            hashed.append(piece)
            self.inner.update(piece)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    expected, digest = _compress(kind, data, 2, piece=block)
    monkeypatch.setattr(compression.hashlib, "sha256", Recording)
    out = io.BytesIO()
    told: list[int] = []
    with path.open("rb") as f, CompressingWriter(out, kind, threads=2) as cw:  # type: ignore[arg-type]
        assert f.read(7) == b"skipped"  # from where the file stands
        assert cw.write_from(f, told.append) == len(data)
        assert f.read() == b""  # taken to its end
        result = cw.close()
    assert out.getvalue() == expected and result.digest == digest
    assert result.diff_id == "sha256:" + real_sha256(data).hexdigest()
    assert told == [min(len(data), i + block) for i in range(0, len(data), block)]
    whole = [p for p in hashed if len(p) == block]  # type: ignore[arg-type]
    assert len(whole) == len(data) // block
    assert all(isinstance(p, memoryview) and isinstance(p.obj, mmap.mmap) for p in whole)


def test_write_from_reads_what_cannot_be_mapped(tmp_path: Path) -> None:
    # A stream (a decompressor, a pipe) or a small file is read; without threads nothing is mapped.
    from dockyard.archive import compression

    data = DATA * 3
    expected, digest = _compress("gzip", data, 2)
    told: list[int] = []
    out = io.BytesIO()
    with CompressingWriter(out, "gzip", threads=2) as cw:
        assert cw.write_from(io.BytesIO(data), told.append) == len(data)
        written = cw.close()
    _same_blob(expected, out.getvalue())  # failed once in CI as a digest mismatch: now it says where
    assert written.digest == sha(out.getvalue()) == digest and told[-1] == len(data)
    assert len(told) == -(-len(data) // compression.GZIP_BLOCK)
    small = tmp_path / "small"
    small.write_bytes(data[:1000])
    with small.open("rb") as f:
        assert compression._mapping(f) is None
    path = tmp_path / "big"
    path.write_bytes(data)
    with path.open("rb") as f, CompressingWriter(io.BytesIO(), "gzip") as single:
        assert single.write_from(f) == len(data)
        assert single.close().diff_id == sha(data)


def test_parallel_gzip_stores_the_blocks_deflate_would_not_shrink(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bytes compressed already (random here) are stored in their member, not run through deflate:
    # less time, a smaller blob; a block with something to gain anywhere it is sampled is compressed.
    from isal import isal_zlib

    from dockyard.archive import compression

    block = compression.GZIP_BLOCK
    noise = os.urandom(2 * block)
    text = (DATA * 3)[:block]
    mixed = noise[: block // 2] + text[: block // 2]  # the end sample has text: compressed
    tail = os.urandom(100_000)  # a last, shorter block: stored too
    data = noise + text + mixed + tail
    deflated: list[int] = []
    real = isal_zlib.compress

    def counting(piece: bytes, level: int, wbits: int) -> bytes:
        if wbits == 31:
            deflated.append(len(piece))
        return real(piece, level, wbits=wbits)

    monkeypatch.setattr(compression.isal_zlib, "compress", counting)
    blob, digest = _compress("gzip", data, 2, piece=block)
    assert deflated == [block, block]  # the text and the mixed block
    assert _compress("gzip", data, 1, piece=77_777)[1] == digest
    assert gzip.decompress(blob) == data and open_decompressed(io.BytesIO(blob))[0].read() == data
    members = [real(text, 1, wbits=31), real(mixed, 1, wbits=31)]
    stored_size = [10 + n + 5 * -(-n // 0xFFFF) + 8 for n in (block, block, len(tail))]
    assert len(blob) == sum(stored_size) + sum(map(len, members))
    assert blob[stored_size[0] + stored_size[1] :].startswith(b"".join(members))
    deflated_all = b"".join(real(data[i : i + block], 1, wbits=31) for i in range(0, len(data), block))
    assert len(blob) < len(deflated_all)
    # Small data is deflated whatever it is (three samples would be most of it).
    deflated.clear()
    small = os.urandom(40_000)
    assert gzip.decompress(_compress("gzip", small, 2)[0]) == small and deflated == [len(small)]
