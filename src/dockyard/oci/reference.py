"""Image references (``[domain/]path[:tag][@digest]``), parsed and normalised exactly as Docker does.

The grammar and error texts are those of distribution/reference, which docker, containerd and
BuildKit share. ``parse`` is strict (no normalisation); ``parse_normalized`` is what the docker CLI
applies to user input (``busybox`` -> ``docker.io/library/busybox``); ``parse_docker_ref`` also adds
``:latest`` and drops a tag when a digest is present, as containerd stores names.
"""

from __future__ import annotations

import re
from typing import Final

from dockyard.errors import InvalidReference
from dockyard.oci import pathmatch
from dockyard.record import record

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
NAME_TOTAL_LENGTH_MAX: Final = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = f"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN_AND_PORT = f"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REMOTE_NAME = f"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = f"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

DOMAIN_RE: Final = re.compile(f"^{_DOMAIN_AND_PORT}$", re.ASCII)
NAME_RE: Final = re.compile(f"^(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})$", re.ASCII)
REFERENCE_RE: Final = re.compile(f"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
TAG_RE: Final = re.compile(f"^{_TAG}$", re.ASCII)
DIGEST_RE: Final = re.compile(f"^{_DIGEST}$", re.ASCII)
IDENTIFIER_RE: Final = re.compile(r"^[a-f0-9]{64}$")

# go-digest's algorithms as the reference library sees them (sha256 only; see test notes).
_DIGEST_ANCHORED = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_DIGEST_LENGTHS = {"sha256": 64}


class ReferenceError(InvalidReference):
    """A reference does not parse; ``kind`` is the upstream error's name (e.g. ``ErrNameEmpty``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _err(kind: str) -> ReferenceError:
    return ReferenceError(kind, _MESSAGES[kind])


_MESSAGES: Final = {
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrTagInvalidFormat": "invalid tag format",
    "ErrDigestInvalidFormat": "invalid digest format",
    "ErrNameContainsUppercase": "repository name must be lowercase",
    "ErrNameEmpty": "repository name must have at least one component",
    "ErrNameTooLong": f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters",
    "ErrNameNotCanonical": "repository name must be canonical",
    "digest.ErrDigestInvalidFormat": "invalid checksum digest format",
    "digest.ErrDigestInvalidLength": "invalid checksum digest length",
    "digest.ErrDigestUnsupported": "unsupported digest algorithm",
}


def _parse_digest(value: str) -> str:
    i = value.find(":")
    if i <= 0 or i + 1 == len(value):
        raise _err("digest.ErrDigestInvalidFormat")
    algorithm, encoded = value[:i], value[i + 1:]
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is None:
        if not _DIGEST_ANCHORED.match(value):
            raise _err("digest.ErrDigestInvalidFormat")
        raise _err("digest.ErrDigestUnsupported")
    if len(encoded) != length:
        raise _err("digest.ErrDigestInvalidLength")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise _err("digest.ErrDigestInvalidFormat")
    return value


@record(frozen=True, slots=True)
class Reference:
    """A named reference. ``domain`` is empty only for strictly parsed, unnormalised input."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """The path as the registry API names it (``library/busybox``)."""
        return self.path

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar_name(self) -> str:
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
                path = path[len(OFFICIAL_REPO_PREFIX):]
        return f"{domain}/{path}" if domain else path

    def familiar(self) -> str:
        """The short form docker shows (``busybox:latest``)."""
        out = self.familiar_name()
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> Reference:
        if not TAG_RE.match(tag):
            raise _err("ErrTagInvalidFormat")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> Reference:
        if not DIGEST_RE.match(digest):
            raise _err("ErrDigestInvalidFormat")
        return Reference(self.domain, self.path, self.tag, digest)

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path)

    def tag_or_latest(self) -> Reference:
        """Add ``:latest`` when neither tag nor digest is given (docker's TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self

    @property
    def registry_host(self) -> str:
        """The host to contact: Docker Hub's API lives at ``registry-1.docker.io``."""
        return "registry-1.docker.io" if self.domain == DEFAULT_DOMAIN else self.domain


@record(frozen=True, slots=True)
class DigestReference:
    """A reference that is only a digest (``sha256:...``), e.g. an image ID."""

    digest: str

    def __str__(self) -> str:
        return self.digest


def parse(s: str) -> Reference:
    """Strict parse: no normalisation; ``str()`` round-trips to the input."""
    m = REFERENCE_RE.match(s)
    if m is None:
        if not s:
            raise _err("ErrNameEmpty")
        if REFERENCE_RE.match(s.lower()):
            raise _err("ErrNameContainsUppercase")
        raise _err("ErrReferenceInvalidFormat")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    nm = NAME_RE.match(name)
    assert nm is not None  # REFERENCE_RE's name group is NAME_RE
    domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _err("ErrNameTooLong")
    if digest is not None:
        _parse_digest(digest)
    return Reference(domain, path, tag, digest)


def with_name(name: str) -> Reference:
    """A name-only reference (no tag or digest allowed)."""
    m = NAME_RE.match(name)
    if m is None:
        raise _err("ErrReferenceInvalidFormat")
    if len(m.group(2)) > NAME_TOTAL_LENGTH_MAX:
        raise _err("ErrNameTooLong")
    return Reference(m.group(1) or "", m.group(2))


def split_docker_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized(s: str) -> Reference:
    """What the docker CLI does to user input: ``busybox`` -> ``docker.io/library/busybox``."""
    if IDENTIFIER_RE.match(s):
        raise ReferenceError(
            "ErrReferenceInvalidFormat",
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings",
        )
    domain, remainder = split_docker_domain(s)
    colon = remainder.find(":")
    remote = remainder[:colon] if colon > -1 else remainder
    if remote.lower() != remote:
        raise ReferenceError(
            "ErrNameContainsUppercase",
            f"invalid reference format: repository name ({remote}) must be lowercase",
        )
    return parse(f"{domain}/{remainder}")


def parse_named(s: str) -> Reference:
    """Accept only input that is already fully normalised."""
    ref = parse_normalized(s)
    if str(ref) != s:
        raise _err("ErrNameNotCanonical")
    return ref


def parse_any(s: str) -> Reference | DigestReference:
    """Like ``parse_normalized``, but a bare 64-hex ID or ``sha256:<hex>`` is a digest reference."""
    if IDENTIFIER_RE.match(s):
        return DigestReference(f"sha256:{s}")
    try:
        return DigestReference(_parse_digest(s))
    except ReferenceError:
        return parse_normalized(s)


def parse_docker_ref(s: str) -> Reference:
    """Normalise, add ``:latest`` when untagged, and drop the tag when a digest is present."""
    ref = parse_normalized(s)
    if ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.tag_or_latest()


def familiar_match(pattern: str, ref: Reference | DigestReference) -> bool:
    """Docker's ``reference=`` filter: match the familiar string, then the familiar name."""
    if isinstance(ref, DigestReference):
        return pathmatch.match(pattern, str(ref))
    if pathmatch.match(pattern, ref.familiar()):
        return True
    return pathmatch.match(pattern, ref.familiar_name())
