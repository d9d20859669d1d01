"""The one ``--mount`` reader: docker run's keys and ``-v`` give the same MountSpec as RUN --mount."""

from __future__ import annotations

import os

import pytest

from dockyard.dockerfile.mounts import (
    MountSpec,
    csv_fields,
    parse_device,
    parse_mount,
    parse_run_mount,
    parse_volume,
)
from dockyard.errors import DockerfileError, InvalidArgument


def test_run_mount_keys_and_aliases() -> None:
    assert parse_run_mount("type=bind,source=/h,target=/c") == MountSpec(
        type="bind", source="/h", target="/c", readonly=False)  # writable unless asked, unlike RUN --mount
    for ro in ("readonly", "ro", "ro=true", "readonly=1"):
        assert parse_run_mount(f"type=bind,src=/h,dst=/c,{ro}").readonly
    assert not parse_run_mount("type=bind,src=/h,destination=/c,ro=false").readonly
    tmpfs = parse_run_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770")
    assert (tmpfs.type, tmpfs.size_limit, tmpfs.mode) == ("tmpfs", 64 << 20, 0o1770)
    assert parse_run_mount("target=/v").type == "volume"  # the docker CLI's default type


def test_run_mount_makes_dot_sources_absolute() -> None:
    assert parse_run_mount("type=bind,src=.,dst=/c").source == os.getcwd()
    assert parse_run_mount("type=bind,src=./sub,dst=/c").source == os.path.join(os.getcwd(), "sub")
    assert parse_run_mount("type=bind,src=name,dst=/c").source == "name"


def test_run_mount_and_run_instruction_share_the_csv_reader() -> None:
    # A quoted field keeps its comma in both readers.
    assert parse_run_mount('type=bind,"source=/a,b",target=/c').source == "/a,b"
    assert parse_mount('type=bind,"source=/a,b",target=/c').source == "/a,b"
    column = "parse error on line 1, column 13: extraneous or missing \" in quoted-field"
    with pytest.raises(InvalidArgument) as run_err:
        parse_run_mount('type=bind,"x')
    assert str(run_err.value) == f'invalid argument "type=bind,\\"x" for "--mount" flag: {column}'
    with pytest.raises(DockerfileError) as build_err:
        parse_mount('type=bind,"x')
    assert build_err.value.detail == f"failed to parse csv mounts: {column}"
    with pytest.raises(DockerfileError, match="failed to parse csv mounts: parse error on line 1, column 2"):
        parse_device('a"b')


QUOTE = 'extraneous or missing " in quoted-field'


# Go's encoding/csv on one flag value (the messages checked against the docker CLI's --mount).
@pytest.mark.parametrize(("value", "expected"), [
    ("a,b", ["a", "b"]),
    ("a,,b,", ["a", "", "b", ""]),
    ('"a,b",c', ["a,b", "c"]),
    ('"a""b"', ['a"b']),
    ('x,"a\nb"', ["x", "a\nb"]),  # a quoted field goes on over the line break
    ('x,"a\r\nb"', ["x", "a\nb"]),  # \r\n read as \n
    ("a,b\nc,d", ["a", "b"]),  # only the first record
    ("\n\na", ["a"]),  # empty lines before it are skipped
    ("a\r", ["a"]),  # a trailing \r is dropped
    ('"a"\n', ["a"]),
    ('é,"ü"', ["é", "ü"]),
    ("", "EOF"),
    ("\n", "EOF"),
    ("\r", "EOF"),
    ('a"b', 'parse error on line 1, column 2: bare " in non-quoted-field'),
    ('type=bind,tar"get=/c', 'parse error on line 1, column 14: bare " in non-quoted-field'),
    (' "a"', 'parse error on line 1, column 2: bare " in non-quoted-field'),
    ('"abc', 'parse error on line 1, column 5: extraneous or missing " in quoted-field'),
    ('"a""b"x', 'parse error on line 1, column 6: extraneous or missing " in quoted-field'),
    ('"a" ,b', 'parse error on line 1, column 3: extraneous or missing " in quoted-field'),
    ('é,"ü"x', 'parse error on line 1, column 7: extraneous or missing " in quoted-field'),  # byte columns
    ('x,"a\nb"c', f"record on line 1; parse error on line 2, column 2: {QUOTE}"),
    ('x,"a\nb', f"record on line 1; parse error on line 2, column 2: {QUOTE}"),
    ('\n\ntype=bind,"q', 'parse error on line 3, column 13: extraneous or missing " in quoted-field'),
])
def test_csv_fields_read_as_go_does(value: str, expected: list[str] | str) -> None:
    if isinstance(expected, list):
        assert csv_fields(value, ValueError) == expected
    else:
        with pytest.raises(ValueError) as err:
            csv_fields(value, ValueError)
        assert str(err.value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("", "EOF"),
    ("type=bind,source=/h", "target is required"),
    ("type=,target=/c", "type is required"),
    ("type=bind,target=/c,nope", "invalid field 'nope' must be a key=value pair"),
    ("type=bind,target=/c,size=1", "unexpected key 'size' in 'size=1'"),  # a BuildKit key, not docker run's
    ("type=bind,target=/c,ro=maybe", "invalid value for ro: maybe"),
    ("type=tmpfs,target=/c,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,target=/c,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
    ("type=bind,target=/c,tmpfs-size=1m", "cannot mix 'tmpfs-\\*' options with mount type 'bind'"),
    ("type=volume,target=/c,volume-driver=x", "'volume-driver' is not supported by dockyard"),
    ("type=bind,target=/c,bind-propagation=shared", "'bind-propagation' is not supported by dockyard"),
])
def test_run_mount_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=f'for "--mount" flag: {message}$'):
        parse_run_mount(value)


def test_run_mount_unknown_type_is_the_daemons_message() -> None:
    with pytest.raises(InvalidArgument, match=r'^invalid mount config for type "nfs": mount type unknown$'):
        parse_run_mount("type=nfs,target=/c")


def test_volume_short_form_gives_the_same_type() -> None:
    assert parse_volume("/h:/c") == parse_run_mount("type=bind,src=/h,dst=/c")
    assert parse_volume("/h:/c:ro") == parse_run_mount("type=bind,src=/h,dst=/c,readonly")
    for bad, message in (
        ("/h", "invalid volume specification: '/h': anonymous volumes are not supported"),
        ("/h:/c:xx", "invalid mode: xx"),
        ("name:/c", "invalid volume specification: 'name:/c': named volumes are not supported"),
        ("/h:/c:ro:z", "invalid spec: /h:/c:ro:z: too many colons"),
        (":/c", "invalid spec: :/c: empty section between colons"),
        ("/h:/c:", "invalid spec: /h:/c:: empty section between colons"),
        ("/h:c", "invalid volume specification: '/h:c': invalid mount config for type \"bind\": "
                 "invalid mount path: 'c' mount path must be absolute"),
    ):
        with pytest.raises(InvalidArgument) as err:
            parse_volume(bad)
        assert str(err.value).startswith(message)
