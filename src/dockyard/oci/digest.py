"""Content digests (``algorithm:hex``), as the OCI image spec and go-digest define them."""

from __future__ import annotations

from dockyard.errors import InvalidArgument

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` imports no typing, re or hashlib (imported
# where a digest is first validated or computed).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from re import Pattern
    from typing import Final

SHA256: Final = "sha256"
SHA512: Final = "sha512"
_HEX_LEN: Final = {SHA256: 64, SHA512: 128}
_patterns: tuple[Pattern[str], Pattern[str], Pattern[str]] | None = None


def _compiled() -> tuple[Pattern[str], Pattern[str], Pattern[str]]:
    """go-digest's algorithm, encoded and hex patterns, compiled on first use."""
    global _patterns
    if _patterns is None:
        import re

        _patterns = (re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*"), re.compile(r"[a-zA-Z0-9=_-]+"),
                     re.compile(r"[a-f0-9]+"))
    return _patterns


class InvalidDigest(InvalidArgument):
    """A string is not a well-formed, supported digest."""


class Digest(str):
    """A validated digest string such as ``sha256:e3b0...``; compares and hashes as the string."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        validate(value)
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    @property
    def short(self) -> str:
        """The first 12 hex characters, as docker shows image IDs."""
        return self.hex[:12]

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = SHA256) -> Digest:
        import hashlib

        return cls(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")

    @classmethod
    def from_hex(cls, hexdigest: str, algorithm: str = SHA256) -> Digest:
        return cls(f"{algorithm}:{hexdigest}")


def validate(value: str) -> None:
    """Raise ``InvalidDigest`` with go-digest's message unless ``value`` is a supported digest."""
    algorithm, sep, encoded = value.partition(":")
    if not sep or not algorithm or not encoded:
        raise InvalidDigest("invalid checksum digest format")
    algorithm_re, encoded_re, hex_re = _compiled()
    if not algorithm_re.fullmatch(algorithm) or not encoded_re.fullmatch(encoded):
        raise InvalidDigest("invalid checksum digest format")
    expected = _HEX_LEN.get(algorithm)
    if expected is None:
        raise InvalidDigest("unsupported digest algorithm")
    if len(encoded) != expected:
        raise InvalidDigest("invalid checksum digest length")
    if not hex_re.fullmatch(encoded):
        raise InvalidDigest("invalid checksum digest format")


def is_valid(value: str) -> bool:
    try:
        validate(value)
    except InvalidDigest:
        return False
    return True


class Hasher:
    """Incremental digest computation that remembers the byte count."""

    __slots__ = ("_h", "algorithm", "size")

    def __init__(self, algorithm: str = SHA256) -> None:
        if algorithm not in _HEX_LEN:
            raise InvalidDigest("unsupported digest algorithm")
        import hashlib

        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(f"{self.algorithm}:{self._h.hexdigest()}")

    def copy(self) -> Hasher:
        other = Hasher.__new__(Hasher)
        other.algorithm = self.algorithm
        other._h = self._h.copy()
        other.size = self.size
        return other
