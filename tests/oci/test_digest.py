from __future__ import annotations

import hashlib

import pytest

from dockyard.oci.digest import Digest, Hasher, InvalidDigest, is_valid

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_from_bytes_matches_hashlib() -> None:
    d = Digest.from_bytes(b"")
    assert d == EMPTY
    assert d.algorithm == "sha256"
    assert d.hex == hashlib.sha256(b"").hexdigest()
    assert d.short == "e3b0c44298fc"
    assert Digest.from_bytes(b"x", "sha512").hex == hashlib.sha512(b"x").hexdigest()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        ("sha256:" + "f" * 63, "invalid checksum digest length"),
        ("sha256:" + "F" * 64, "invalid checksum digest format"),
        ("md5:" + "f" * 32, "unsupported digest algorithm"),
        ("sha512:" + "f" * 64, "invalid checksum digest length"),
        ("sha256:../../etc/passwd", "invalid checksum digest format"),
    ],
)
def test_invalid(value: str, message: str) -> None:
    with pytest.raises(InvalidDigest, match=message):
        Digest(value)
    assert not is_valid(value)


def test_hasher_counts_and_copies() -> None:
    h = Hasher()
    h.update(b"abc")
    snapshot = h.copy()
    h.update(b"def")
    assert h.size == 6
    assert h.digest() == Digest.from_bytes(b"abcdef")
    assert snapshot.digest() == Digest.from_bytes(b"abc")
