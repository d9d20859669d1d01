"""Named and anonymous volumes: ``-v NAME:/path``, ``-v /path``, image ``VOLUME``s, the first-use copy,
``volume create|ls|inspect|rm|prune``, ``rm -v``; and what a container cannot do through them."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.containers.volumes import VolumeMount, parse_volume_flag
from dockyard.errors import InvalidArgument
from tests.builder.conftest import busybox_tar
from tests.containers.conftest import Dy, until


def test_volume_flag_parsing() -> None:
    assert parse_volume_flag("data:/srv") == VolumeMount("data", "/srv")
    assert parse_volume_flag("data:/srv:ro,nocopy") == VolumeMount("data", "/srv", readonly=True, copy=False)
    assert parse_volume_flag("/cache") == VolumeMount("", "/cache")
    assert parse_volume_flag("/host:/srv") is None  # a bind
    with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume name"):
        parse_volume_flag("../../etc:/srv")
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        parse_volume_flag("data:srv")
    with pytest.raises(InvalidArgument, match="invalid mode: ro,rw"):
        parse_volume_flag("data:/srv:ro,rw")


def test_volume_commands(dy: Dy, root: Path) -> None:
    assert dy("volume", "create", "--label", "team=a", "v1").stdout == "v1\n"
    assert dy("volume", "create", "v1").stdout == "v1\n"  # again: the same volume, as Docker
    anon = dy("volume", "create").stdout.strip()
    assert len(anon) == 64
    info = json.loads(dy("volume", "inspect", "v1").stdout)[0]
    assert info["Labels"] == {"team": "a"} and info["Driver"] == "local" and info["Scope"] == "local"
    assert json.loads(dy("volume", "inspect", anon).stdout)[0]["Labels"] == {}  # created: empty maps
    assert info["Mountpoint"] == str(root / "volumes" / "v1" / "_data")
    assert sorted(info) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    r = dy("volume", "ls")
    assert r.stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert r.stdout.splitlines()[1:] == [f"local     {anon}", "local     v1"]
    assert dy("volume", "ls", "-q", "--filter", "label=team=a").stdout == "v1\n"
    assert dy("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "-f", "name=v").stdout == "v1 team=a\n"
    r = dy("volume", "inspect", "nope")
    assert (r.returncode, r.stdout, r.stderr) == (1, "[]\n", "Error: No such volume: nope\n")
    r = dy("volume", "create", "a/b")
    assert r.returncode == 1 and "includes invalid characters for a local volume name" in r.stderr
    r = dy("volume", "rm", "nope", "v1")
    assert (r.returncode, r.stdout) == (1, "v1\n")
    assert r.stderr == "Error: No such volume: nope\n"
    assert dy("volume", "rm", "-f", "nope").returncode == 0
    (root / "volumes" / anon / "_data" / "f").write_bytes(b"12345")
    r = dy("volume", "prune", "-f")
    assert r.stdout == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 5B\n"
    assert dy("volume", "ls", "-q").stdout == ""


@pytest.mark.slow
def test_named_volume_outlives_containers_and_is_copied_up(dy: Dy, root: Path) -> None:
    r = dy("run", "-d", "--name", "web", "-v", "etc:/etc", "busybox:local", "sh", "-c",
           "echo kept > /etc/mine; sleep 1000")
    assert r.returncode == 0, r.stderr
    data = root / "volumes" / "etc" / "_data"
    assert until(lambda: (data / "mine").exists())
    # an empty volume got the image's /etc on first use, owners and modes kept
    assert sorted(os.listdir(data)) == ["group", "mine", "passwd"]
    assert (data / "passwd").stat().st_mode & 0o777 == 0o644
    r = dy("volume", "rm", "etc")
    assert r.returncode == 1
    assert r.stderr.startswith("Error response from daemon: remove etc: volume is in use - [")
    r = dy("ps", "--format", "{{.Mounts}} {{.LocalVolumes}}")
    assert r.stdout == "etc 1\n"
    mounts = json.loads(dy("inspect", "-f", "{{json .Mounts}}", "web").stdout)
    assert mounts == [{"Type": "volume", "Name": "etc", "Source": str(data), "Destination": "/etc",
                       "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    assert dy("rm", "-fv", "web").returncode == 0  # -v: anonymous volumes only
    assert (data / "mine").read_text() == "kept\n"
    # a second container sees what the first wrote, and the volume is no longer copied over
    r = dy("run", "-d", "--name", "reader", "-v", "etc:/srv:ro", "busybox:local", "sh", "-c",
           "cat /srv/mine; echo x > /srv/new; sleep 1000")
    assert r.returncode == 0, r.stderr
    assert until(lambda: "Read-only file system" in dy("logs", "reader").stderr)
    assert dy("logs", "reader").stdout == "kept\n"
    assert dy("rm", "-f", "reader").returncode == 0
    # a foreground run mounts volumes too; with --rm its anonymous ones end with it
    r = dy("run", "--rm", "-v", "etc:/srv", "-v", "/scratch", "busybox:local", "sh", "-c",
           "cat /srv/mine; ls /")
    assert r.stdout.startswith("kept\n") and "scratch" in r.stdout
    assert dy("volume", "ls", "-q").stdout == "etc\n"
    assert dy("volume", "rm", "etc").stdout == "etc\n"


@pytest.mark.slow
def test_anonymous_volumes_from_flags_and_image(dy: Dy, root: Path) -> None:
    with Client(root) as client, open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]', "VOLUME /data /etc"], names=["withvol:local"])
    r = dy("run", "-d", "--name", "ctra", "-v", "/cache", "-v", "named:/data", "withvol:local",
           "sleep", "1000")
    assert r.returncode == 0, r.stderr
    mounts = {m["Destination"]: m for m in json.loads(dy("inspect", "-f", "{{json .Mounts}}", "ctra").stdout)}
    assert sorted(mounts) == ["/cache", "/data", "/etc"]  # the image's /data is the named one given
    assert mounts["/data"]["Name"] == "named"
    anonymous = [mounts["/cache"]["Name"], mounts["/etc"]["Name"]]
    assert all(len(n) == 64 and mounts["/cache"]["Mode"] == "" for n in anonymous)
    etc = root / "volumes" / mounts["/etc"]["Name"] / "_data"
    assert until(lambda: (etc / "passwd").exists())  # copied up from the image
    r = dy("exec", "ctra", "sh", "-c", "echo hi > /cache/f && cat /cache/f")
    assert r.stdout == "hi\n"
    assert dy("rm", "-f", "ctra").returncode == 0  # without -v the anonymous volumes stay
    assert sorted(dy("volume", "ls", "-q").stdout.split()) == sorted([*anonymous, "named"])
    r = dy("run", "-d", "--name", "ctrb", "-v", "/cache", "withvol:local", "sleep", "1000")
    b_mounts = json.loads(dy("inspect", "-f", "{{json .Mounts}}", "ctrb").stdout)
    assert dy("rm", "-fv", "ctrb").returncode == 0
    names = set(dy("volume", "ls", "-q").stdout.split())
    assert not names & {m["Name"] for m in b_mounts}  # its anonymous volumes went with it
    assert "named" in names
    r = dy("run", "-d", "--rm", "--name", "ctrc", "-v", "/tmp", "busybox:local", "true")
    assert r.returncode == 0
    assert until(lambda: dy("ps", "-aq", "--filter", "name=ctrc").stdout == "")
    assert set(dy("volume", "ls", "-q").stdout.split()) == names  # --rm took its anonymous volume


def _image_with_link(root: Path, link: str, target: str, name: str) -> None:
    """busybox with one more entry: the symlink ``link`` -> ``target``."""
    out = root / "linked.tar"
    with tarfile.open(busybox_tar()) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        entry = tarfile.TarInfo(link)
        entry.type, entry.linkname = tarfile.SYMTYPE, target
        dst.addfile(entry)
    with Client(root) as client, open(out, "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=[name])


@pytest.mark.slow
def test_copy_up_never_follows_a_container_symlink_to_the_host(dy: Dy, root: Path) -> None:
    secret = Path(f"/tmp/dy-vol-secret-{os.getpid()}")
    (secret / "b").mkdir(parents=True)
    (secret / "b" / "secret").write_text("host only\n")
    try:
        # /a is an absolute link: inside the container it names the container's own (missing) path
        _image_with_link(root, "a", str(secret), "linked:local")
        r = dy("run", "-d", "--name", "evil", "-v", "trap:/a/b", "linked:local", "sh", "-c",
               "ls /a/b; echo listed; sleep 1000")
        assert r.returncode == 0, r.stderr
        assert until(lambda: "listed" in dy("logs", "evil").stdout)
        assert dy("logs", "evil").stdout == "listed\n"  # the volume, empty: nothing came from the host
        assert os.listdir(root / "volumes" / "trap" / "_data") == []
        assert (secret / "b" / "secret").read_text() == "host only\n"
    finally:
        shutil.rmtree(secret)
