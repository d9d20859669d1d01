"""Digest errors carry go-digest's exact text, and the small constructors keep what they are given."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.oci.digest import Digest, Hasher, InvalidDigest

HEX = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sha256", "invalid checksum digest format"),           # no separator
        (":" + HEX, "invalid checksum digest format"),           # no algorithm
        ("SHA256:" + HEX, "invalid checksum digest format"),     # algorithm grammar
        ("sha256:" + "G" * 64, "invalid checksum digest format"),  # encoded grammar passes, not hex
        ("sha256:" + HEX + ":x", "invalid checksum digest format"),
        ("blake3:" + HEX, "unsupported digest algorithm"),
        ("sha256:" + HEX[:-1], "invalid checksum digest length"),
    ],
)
def test_error_text_is_exact(value: str, message: str) -> None:
    with pytest.raises(InvalidDigest) as caught:
        Digest(value)
    assert str(caught.value) == message


def test_hasher_rejects_unknown_algorithm_with_exact_text() -> None:
    with pytest.raises(InvalidDigest) as caught:
        Hasher("md5")
    assert str(caught.value) == "unsupported digest algorithm"


def test_from_hex_builds_and_validates() -> None:
    assert Digest.from_hex(HEX) == f"sha256:{HEX}"
    assert Digest.from_hex("ab" * 64, "sha512") == "sha512:" + "ab" * 64
    with pytest.raises(InvalidDigest):
        Digest.from_hex("abc")


def test_hasher_copy_keeps_the_byte_count() -> None:
    h = Hasher()
    h.update(b"abcd")
    snapshot = h.copy()
    assert snapshot.size == 4
    snapshot.update(b"e")
    assert (snapshot.size, h.size) == (5, 4)
