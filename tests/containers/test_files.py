"""``cp`` (both ways, ``-a``, ``-L``, ``-``), ``diff``, ``export``, ``commit``; and a container that tries
to make ``cp`` read or write host files through its symlinks."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.conftest import Dy, until

pytestmark = pytest.mark.slow


@pytest.fixture()
def host(tmp_path: Path) -> Path:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "f").write_text("a\n")
    (tmp_path / "d" / "sub" / "g").write_text("b\n")
    os.chown(tmp_path / "d" / "f", 1234, 1234)
    return tmp_path


@pytest.fixture()
def box(dy: Dy) -> str:
    r = dy("run", "-d", "--name", "box", "busybox:local", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    return "box"


def _cat(dy: Dy, path: str) -> str:
    return dy("exec", "box", "cat", path).stdout


def test_cp_into_a_running_container(dy: Dy, box: str, host: Path) -> None:
    assert dy("cp", str(host / "d"), f"{box}:/tmp/").returncode == 0
    r = dy("exec", box, "ls", "-lnR", "/tmp/d")
    assert " 0        0 " in r.stdout and "1234" not in r.stdout  # root's, as Docker without -a
    assert _cat(dy, "/tmp/d/sub/g") == "b\n"
    assert dy("cp", "-a", str(host / "d" / "f"), f"{box}:/tmp/f2").returncode == 0
    assert dy("exec", box, "stat", "-c", "%u:%g", "/tmp/f2").stdout == "1234:1234\n"
    assert dy("exec", box, "mkdir", "/merge").returncode == 0
    assert dy("cp", str(host / "d") + "/.", f"{box}:/merge").returncode == 0  # contents only
    assert dy("exec", box, "ls", "/merge").stdout.split() == ["f", "sub"]
    assert dy("cp", str(host / "d"), f"{box}:/renamed").returncode == 0  # a new name
    assert _cat(dy, "/renamed/f") == "a\n"
    r = dy("commit", box, "snap:running")  # paused while its layer is read, then running again
    assert r.returncode == 0, r.stderr
    assert dy("inspect", "-f", "{{.State.Status}}", box).stdout == "running\n"
    assert dy("run", "--rm", "snap:running", "cat", "/renamed/f").stdout == "a\n"
    for args, code, text in [
        ((str(host / "nope" / "x"), f"{box}:/tmp"), 1, f"lstat {host / 'nope'}: no such file or directory\n"),
        ((str(host / "d"), f"{box}:/etc/passwd"), 1, "cannot copy directory\n"),
        ((str(host / "d" / "f"), f"{box}:/nodir/x"), 1,
         f"Error: No such container:path: {box}:/nodir\n"),
        ((str(host / "d" / "f"), f"{box}:/newdir/"), 1, "no such directory\n"),
        (("a", "b"), 1, "must specify at least one container source\n"),
        ((f"{box}:/a", f"{box}:/b"), 1, "copying between containers is not supported\n"),
    ]:
        r = dy("cp", *args)
        assert (r.returncode, r.stderr) == (code, text), args


def test_cp_out_of_a_container(dy: Dy, box: str, host: Path) -> None:
    out = host / "out"
    out.mkdir()
    assert dy("cp", f"{box}:/etc/passwd", str(out) + "/").returncode == 0
    assert (out / "passwd").read_text().startswith("root:x:0:0:")
    assert dy("cp", f"{box}:/etc", str(out / "e")).returncode == 0
    assert sorted(os.listdir(out / "e")) == ["group", "hostname", "hosts", "passwd", "resolv.conf"]
    r = dy("cp", f"{box}:/etc/passwd", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout.encode("latin-1"))) as t:
        assert t.getnames() == ["passwd"]
    r = dy("cp", f"{box}:/nope", str(out))
    assert (r.returncode, r.stderr) == (1, f"Error: No such container:path: {box}:/nope\n")
    r = dy("cp", f"{box}:/etc/passwd", str(out / "nodir" / "x"))
    assert r.stderr == f'invalid output path: directory "{out / "nodir"}" does not exist\n'
    r = dy("cp", f"{box}:/etc/passwd/", str(out))
    assert r.stderr == "Error response from daemon: lstat /etc/passwd/: not a directory\n"
    r = dy("cp", "nope:/x", str(out))
    assert (r.returncode, r.stderr) == (1, "Error: No such container:path: nope:/x\n")


def test_cp_stdin_archive(dy: Dy, box: str, root: Path) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        info = tarfile.TarInfo("from-stdin")
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
    r = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), "cp", "-", f"{box}:/root"],
                       input=tar.getvalue(), capture_output=True, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert _cat(dy, "/root/from-stdin") == "hi\n"


def test_cp_diff_export_commit_of_a_stopped_container(dy: Dy, host: Path) -> None:
    r = dy("run", "-d", "--name", "work", "busybox:local", "sh", "-c",
           "echo hi > /tmp/x; rm /bin/ls; mkdir -p /newd/sub; sleep 1000")
    assert r.returncode == 0, r.stderr
    assert until(lambda: "A /tmp/x" in dy("diff", "work").stdout)
    assert dy("stop", "-t", "0", "work").returncode == 0
    assert dy("cp", str(host / "d" / "f"), "work:/added").returncode == 0
    assert dy("cp", "work:/tmp/x", str(host / "x")).returncode == 0
    assert (host / "x").read_text() == "hi\n"
    assert dy("diff", "work").stdout.splitlines() == [
        "A /added", "C /bin", "D /bin/ls", "A /newd", "A /newd/sub", "C /tmp", "A /tmp/x"]
    r = dy("diff", "nope")
    assert (r.returncode, r.stderr) == (1, "Error response from daemon: No such container: nope\n")
    exported = host / "fs.tar"
    assert dy("export", "-o", str(exported), "work").returncode == 0
    with tarfile.open(exported) as t:
        names = set(t.getnames())
    assert {"added", "tmp/x", "bin/sh", "etc/passwd"} <= names and "bin/ls" not in names
    r = dy("commit", "-m", "made by hand", "-a", "me <me@x>", "-c", 'CMD ["cat", "/tmp/x", "/added"]',
           "-c", "ENV MODE=committed", "work", "committed:v1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sha256:") and len(r.stdout.strip()) == 71
    r = dy("image", "inspect", "-f", "{{.Author}}|{{json .Config.Cmd}}|{{len .RootFS.Layers}}",
           "committed:v1")
    assert r.stdout == 'me <me@x>|["cat","/tmp/x","/added"]|2\n'
    r = dy("history", "--format", "{{.Comment}}", "committed:v1")
    assert r.stdout.splitlines()[0] == "made by hand"
    r = dy("run", "--rm", "committed:v1")
    assert (r.returncode, r.stdout) == (0, "hi\na\n")
    assert dy("run", "--rm", "committed:v1", "sh", "-c", "echo $MODE; ls /bin/ls").stdout == "committed\n"
    r = dy("commit", "-c", "BOGUS x", "work")
    assert r.returncode == 1 and "BOGUS is not a valid change command" in r.stderr


@pytest.fixture()
def secret_dir() -> Iterator[Path]:
    path = Path(f"/tmp/dy-cp-host-{os.getpid()}")
    path.mkdir()
    (path / "secret").write_text("host only\n")
    yield path
    shutil.rmtree(path)


def test_cp_never_follows_container_symlinks_out_of_its_root(dy: Dy, root: Path, box: str, host: Path,
                                                            secret_dir: Path) -> None:
    # the container plants links to host paths: absolute, relative climbing, and through a directory
    script = (f"ln -s {secret_dir}/secret /abs; ln -s ../../../../..{secret_dir}/secret /rel; "
              f"ln -s {secret_dir} /dir; echo ready")
    assert dy("exec", box, "sh", "-c", script).stdout == "ready\n"
    out = host / "out"
    out.mkdir()
    r = dy("cp", f"{box}:/abs", str(out / "abs"))  # the link itself, as Docker without -L
    assert r.returncode == 0 and os.readlink(out / "abs") == f"{secret_dir}/secret"
    for path in ("/abs", "/rel", "/dir/secret"):
        r = dy("cp", "-L", f"{box}:{path}", str(out / "followed"))
        assert r.returncode == 1 and "No such container:path" in r.stderr, path  # the container's own
        assert not (out / "followed").exists()
    # writes through the links land in the container (or fail), never in the host directory
    for dest in ("/dir/secret", "/abs", "/rel", "/dir/"):
        r = dy("cp", str(host / "d" / "f"), f"{box}:{dest}")  # followed inside the container: no parent
        assert r.returncode == 1 and r.stderr in (
            f"Error: No such container:path: {box}:{secret_dir}\n",
            "no such directory\n"), dest
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        link = tarfile.TarInfo("esc")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret_dir)
        t.addfile(link)
        info = tarfile.TarInfo("esc/secret")
        info.size = 6
        t.addfile(info, io.BytesIO(b"owned\n"))
    subprocess.run([sys.executable, "-m", "dockyard", "cp", "-", f"{box}:/"], input=tar.getvalue(),
                   capture_output=True, check=False, timeout=60,
                   env={**os.environ, "DOCKYARD_ROOT": str(root)})
    assert sorted(os.listdir(secret_dir)) == ["secret"]
    assert (secret_dir / "secret").read_text() == "host only\n"


def test_cp_into_a_container_racing_its_directory_for_a_symlink(dy: Dy, host: Path, secret_dir: Path) -> None:
    # CVE-2018-15664's shape: the container swaps a directory for a link to a host path while cp writes
    race = (f"while true; do mkdir -p /race; rm -rf /race; ln -s {secret_dir} /race; "
            "rm -f /race; done")
    assert dy("run", "-d", "--name", "racer", "busybox:local", "sh", "-c", race).returncode == 0
    for _ in range(15):
        dy("cp", str(host / "d" / "f"), "racer:/race/planted")
        dy("cp", "racer:/race/secret", str(host / "got"))
    assert sorted(os.listdir(secret_dir)) == ["secret"]
    assert not (host / "got").exists()
    assert json.loads(dy("inspect", "-f", "{{json .State.Running}}", "racer").stdout) is True
