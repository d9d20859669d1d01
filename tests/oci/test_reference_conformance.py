"""Every case of distribution/reference's tests (tests/data/reference)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.oci import pathmatch
from dockyard.oci.reference import (
    DIGEST_RE,
    DOMAIN_RE,
    IDENTIFIER_RE,
    NAME_RE,
    REFERENCE_RE,
    DigestReference,
    Reference,
    ReferenceError,
    familiar_match,
    parse,
    parse_any,
    parse_docker_ref,
    parse_named,
    parse_normalized,
    with_name,
)
from tests.conftest import CONFORMANCE

DATA: dict[str, Any] = json.loads((CONFORMANCE / "reference" / "distribution_reference.json").read_text())


def cases(section: str) -> list[Any]:
    value = DATA[section]
    return list(value["cases"] if isinstance(value, dict) else value)


def _expect_error(exc: ReferenceError, expected: dict[str, str]) -> None:
    assert exc.kind == expected["name"]
    assert str(exc) == expected["message"]


@pytest.mark.parametrize("case", cases("parse"), ids=lambda c: c["input"][:60])
def test_parse(case: dict[str, Any]) -> None:
    if "expect_error" in case:
        with pytest.raises(ReferenceError) as info:
            parse(case["input"])
        _expect_error(info.value, case["expect_error"])
        return
    ref = parse(case["input"])
    want = case["expect"]
    assert str(ref) == want["string"]
    assert ref.name == want["name"]
    assert ref.domain == want["domain"]
    assert ref.tag == want["tag"]
    assert ref.digest == want["digest"]


@pytest.mark.parametrize("case", cases("with_name_failure"), ids=lambda c: c["input"][:60])
def test_with_name_failure(case: dict[str, Any]) -> None:
    with pytest.raises(ReferenceError) as info:
        with_name(case["input"])
    _expect_error(info.value, case["expect_error"])


@pytest.mark.parametrize("case", cases("domain_and_path"), ids=lambda c: c["input"])
def test_domain_and_path(case: dict[str, Any]) -> None:
    ref = with_name(case["input"])
    assert (ref.domain, ref.path) == (case["domain"], case["path"])


@pytest.mark.parametrize("case", cases("json_field"), ids=lambda c: c["description"])
def test_json_field(case: dict[str, Any]) -> None:
    # The JSON field type parses with the strict parser.
    if "expect_error" in case:
        with pytest.raises(ReferenceError) as info:
            parse(case["input"])
        _expect_error(info.value, case["expect_error"])
        return
    ref = parse(case["input"])
    assert (ref.name, ref.tag, ref.digest) == (case["expect"]["name"], case["expect"]["tag"],
                                              case["expect"]["digest"])


@pytest.mark.parametrize("case", cases("with_tag"), ids=lambda c: c["expect"])
def test_with_tag(case: dict[str, Any]) -> None:
    ref = with_name(case["name"])
    if case["digest"]:
        ref = ref.with_digest(case["digest"])
    assert str(ref.with_tag(case["tag"])) == case["expect"]


@pytest.mark.parametrize("case", cases("with_digest"), ids=lambda c: c["expect"])
def test_with_digest(case: dict[str, Any]) -> None:
    ref = with_name(case["name"])
    if case["tag"]:
        ref = ref.with_tag(case["tag"])
    assert str(ref.with_digest(case["digest"])) == case["expect"]


@pytest.mark.parametrize("case", cases("parse_named"), ids=lambda c: c["input"])
def test_parse_named(case: dict[str, Any]) -> None:
    if "expect_error" in case:
        with pytest.raises(ReferenceError) as info:
            parse_named(case["input"])
        _expect_error(info.value, case["expect_error"])
        return
    ref = parse_named(case["input"])
    assert (ref.domain, ref.path) == (case["expect"]["domain"], case["expect"]["path"])


@pytest.mark.parametrize("name", cases("normalized_valid_names"))
def test_normalized_valid(name: str) -> None:
    parse_normalized(name)


@pytest.mark.parametrize("name", cases("normalized_invalid_names"), ids=lambda s: s[:60])
def test_normalized_invalid(name: str) -> None:
    with pytest.raises(ReferenceError):
        parse_normalized(name)


@pytest.mark.parametrize("case", cases("repository_info"), ids=lambda c: c["inputs"][0])
def test_repository_info(case: dict[str, Any]) -> None:
    for given in case["inputs"]:
        ref = parse_normalized(given)
        want = case["expect"]
        assert ref.familiar_name() == want["familiar_name"]
        assert str(ref) == want["full_name"]
        assert ref.domain == want["domain"]
        assert ref.path == want["path"]


def test_tag_and_digest_normalized() -> None:
    case = DATA["tag_and_digest_normalized"]
    ref = parse_normalized(case["input"])
    assert str(ref) == case["expect_string"]
    assert (ref.tag is not None) == case["expect_is_tagged"]
    assert (ref.digest is not None) == case["expect_is_canonical"]
    assert ref.familiar() == case["expect_familiar_string"]


@pytest.mark.parametrize("case", cases("invalid_components"), ids=lambda c: c["api"])
def test_invalid_components(case: dict[str, Any]) -> None:
    assert case["expect_error"]
    with pytest.raises(ReferenceError):
        if case["api"].startswith("ParseNormalizedNamed"):
            parse_normalized(case["input"])
        elif case["api"].startswith("WithTag"):
            parse_normalized("busybox").with_tag(case["input"])
        else:
            parse_normalized("busybox").with_digest(case["input"])


@pytest.mark.parametrize("case", cases("parse_any_reference"), ids=lambda c: c["input"])
def test_parse_any(case: dict[str, Any]) -> None:
    ref = parse_any(case["input"])
    assert str(ref) == case["expect_string"]
    assert isinstance(ref, DigestReference) == ("expect_kind" in case)


@pytest.mark.parametrize("case", cases("normalized_split_hostname"), ids=lambda c: c["input"])
def test_split_hostname(case: dict[str, Any]) -> None:
    ref = parse_normalized(case["input"])
    assert (ref.domain, ref.path) == (case["domain"], case["path"])


@pytest.mark.parametrize("case", cases("familiar_match"), ids=lambda c: f"{c['pattern']}~{c['reference']}")
def test_familiar_match(case: dict[str, Any]) -> None:
    assert familiar_match(case["pattern"], parse_any(case["reference"])) == case["expect"]


def test_familiar_match_bad_pattern() -> None:
    case = DATA["familiar_match"]["error_case"]
    assert case["expect_error"]
    with pytest.raises(pathmatch.BadPattern):
        familiar_match(case["pattern"], parse_any(case["reference"]))


@pytest.mark.parametrize("case", cases("parse_docker_ref"), ids=lambda c: c["name"])
def test_parse_docker_ref(case: dict[str, Any]) -> None:
    assert str(parse_docker_ref(case["input"])) == case["expect"]


REGEXPS = {"domain": DOMAIN_RE, "full_name": NAME_RE, "reference": REFERENCE_RE, "identifier": IDENTIFIER_RE}


@pytest.mark.parametrize(
    ("kind", "case"),
    [(kind, c) for kind in REGEXPS for c in DATA["regexp"][kind]],
    ids=lambda v: v if isinstance(v, str) else v["input"][:50],
)
def test_regexp(kind: str, case: dict[str, Any]) -> None:
    m = REGEXPS[kind].match(case["input"])
    assert (m is not None) == case["match"]
    if m is not None and "subs" in case:
        assert [g or "" for g in m.groups()] == case["subs"]


def test_digest_regexp_rejects_short() -> None:
    assert DIGEST_RE.match("sha256:" + "a" * 32)
    assert not DIGEST_RE.match("sha256:abc")


def test_reference_helpers() -> None:
    ref = parse_normalized("busybox")
    assert isinstance(ref, Reference)
    assert ref.registry_host == "registry-1.docker.io"
    assert ref.repository == "library/busybox"
    assert str(ref.tag_or_latest()) == "docker.io/library/busybox:latest"
    assert parse_normalized("127.0.0.1:5000/a/b:v1").registry_host == "127.0.0.1:5000"
