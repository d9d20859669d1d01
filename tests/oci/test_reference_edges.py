"""Reference edges the conformance table does not reach: exact error kinds and texts of the docker
CLI's normalisation, the length boundary, and the small helpers other layers build names with."""

from __future__ import annotations

import pytest

from dockyard.oci.reference import (
    DigestReference,
    ReferenceError,
    familiar_match,
    parse,
    parse_any,
    parse_normalized,
    with_name,
)

HEX = "ab" * 32


def _error(call: object, value: str) -> ReferenceError:
    with pytest.raises(ReferenceError) as caught:
        call(value)  # type: ignore[operator]
    return caught.value


def test_hex_identifier_is_refused_with_dockers_text() -> None:
    err = _error(parse_normalized, HEX)
    assert err.kind == "ErrReferenceInvalidFormat"
    assert str(err) == f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"


@pytest.mark.parametrize(("value", "remote"), [("Busybox", "library/Busybox"), ("busyboX", "library/busyboX"),
                                               ("localhost:5000/Ab:v1", "Ab")])
def test_uppercase_name_is_refused_with_dockers_text(value: str, remote: str) -> None:
    err = _error(parse_normalized, value)
    assert err.kind == "ErrNameContainsUppercase"
    assert str(err) == f"invalid reference format: repository name ({remote}) must be lowercase"


@pytest.mark.parametrize("value", ["busybox:Latest", "localhost/a:TAG", f"busybox:BAR@sha256:{HEX}"])
def test_uppercase_tag_is_fine(value: str) -> None:
    ref = parse_normalized(value)
    assert ref.tag is not None and ref.tag != ref.tag.lower()


def test_uppercase_hex_in_digest_is_refused_by_the_digest_check() -> None:
    err = _error(parse, "busybox@sha256:" + "A" * 64)
    assert err.kind == "digest.ErrDigestInvalidFormat"
    assert str(err) == "invalid checksum digest format"


def test_name_length_boundary() -> None:
    assert with_name("a" * 255).path == "a" * 255
    err = _error(with_name, "a" * 256)
    assert err.kind == "ErrNameTooLong"


def test_familiar_match_of_a_digest_reference() -> None:
    ref = parse_any(f"sha256:{HEX}")
    assert isinstance(ref, DigestReference)
    assert familiar_match("sha256:*", ref)
    assert familiar_match(f"sha256:{HEX}", ref)
    assert not familiar_match("sha512:*", ref)


def test_name_only_keeps_domain_and_path() -> None:
    ref = parse_normalized(f"localhost:5000/team/app:v1@sha256:{HEX}").name_only()
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "team/app", None, None)


@pytest.mark.parametrize(("value", "expected"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}"),
])
def test_tag_or_latest_only_fills_an_empty_reference(value: str, expected: str) -> None:
    assert str(parse_normalized(value).tag_or_latest()) == expected
