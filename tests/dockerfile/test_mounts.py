"""The one ``--mount`` reader: docker run's keys and ``-v`` give the same MountSpec as RUN --mount."""

from __future__ import annotations

import os

import pytest

from dockyard.dockerfile.mounts import MountSpec, parse_mount, parse_run_mount, parse_volume
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
    with pytest.raises(InvalidArgument, match=r'^invalid argument "type=bind,"x" for "--mount" flag: '
                                              r'failed to parse csv mounts'):
        parse_run_mount('type=bind,"x')
    with pytest.raises(DockerfileError, match="failed to parse csv mounts"):
        parse_mount('type=bind,"x')


@pytest.mark.parametrize(("value", "message"), [
    ("", "failed to parse csv mounts: EOF"),
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
    for bad, message in (("/h", "invalid volume specification: '/h'"), ("/h:/c:xx", "invalid mode: xx"),
                         ("name:/c", "named volumes are not supported")):
        with pytest.raises(InvalidArgument, match=message):
            parse_volume(bad)
