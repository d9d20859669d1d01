"""Rootless mode end to end: a non-root user with subordinate ids builds, runs, pushes, pulls, loads
and saves on a store in their XDG data directory, and gets the same image as root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError
from dockyard.executor import isolation, rootless

from .conftest import Runner

BUSYBOX_TAR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers")) / "images" / "busybox-amd64.tar"
REGISTRY = "127.0.0.1:5000"  # the registry peer
# One xdist worker for every rootless test: they share the test user's store and venv, which a
# second worker's session set-up would wipe or rebuild under them.
pytestmark = [pytest.mark.xdist_group("rootless"), pytest.mark.slow]

# Owners, a whiteout, an opaque directory (removed and made again), COPY and USER: what rootless
# must translate back into the image's own terms.
DOCKERFILE = """\
FROM base:local
RUN mkdir -p /app/d && echo hi > /app/x && echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd \\
    && chown -R 1000:1000 /app && rm -rf /bin/vi && mkdir /opq && touch /opq/a
RUN rm -rf /opq && mkdir /opq && touch /opq/b
COPY f /app/f
USER app
RUN id -u > /app/me && touch /tmp/y
"""
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """A directory both root and the test user can read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-rootless-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _root_dockyard(root: Path, *args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **EPOCH}
    done = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def root_build(shared_dir: Path) -> tuple[str, Path, Path]:
    """Root's build of DOCKERFILE on a busybox base: (image ID, saved base tar, context)."""
    store = shared_dir / "root-store"
    _root_dockyard(store, "import", str(BUSYBOX_TAR), "base:local")
    base = shared_dir / "base.tar"
    _root_dockyard(store, "save", "-o", str(base), "base:local")
    base.chmod(0o644)
    context = shared_dir / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "f").write_text("data\n")
    for p in (context, context / "Dockerfile", context / "f"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    image_id = _root_dockyard(store, "build", "-q", "-t", "t:root", str(context)).strip()
    return image_id, base, context


@pytest.mark.busybox
def test_rootless_build_gives_roots_image_id(rootless: Runner, rootless_user: pwd.struct_passwd,
                                            root_build: tuple[str, Path, Path], shared_dir: Path) -> None:
    root_id, base, context = root_build
    _ok(rootless("load", "-i", str(base)))
    image_id = _ok(rootless("build", "-q", "-t", "t:rootless", ".", cwd=context, env=EPOCH)).strip()
    assert image_id == root_id
    # The store is the user's XDG data directory, owned by the user outside the namespace.
    store = Path(os.environ["DYTEST_ROOTLESS_XDG_DATA_HOME"]) / "dockyard"
    assert store.parent.is_relative_to(Path(rootless_user.pw_dir) / ".local" / "share")
    assert (store / "metadata.db").stat().st_uid == rootless_user.pw_uid
    # The saved layers hold the image's owners, never sub-ids, and overlay's whiteouts in OCI form.
    out = shared_dir / "saved"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    _ok(rootless("save", "-o", str(out / "t.tar"), "t:rootless"))
    members: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(out / "t.tar") as outer:
        for blob in outer.getmembers():
            if blob.isfile() and blob.name.startswith("blobs/"):
                fileobj = outer.extractfile(blob)
                assert fileobj is not None
                try:
                    with tarfile.open(fileobj=fileobj) as layer:
                        members.update((m.name.lstrip("./"), m) for m in layer.getmembers())
                except tarfile.ReadError:
                    continue  # a JSON blob
    assert (members["app/x"].uid, members["app/x"].gid) == (1000, 1000)
    assert members["app/f"].uid == 0
    assert "bin/.wh.vi" in members and "opq/.wh..wh..opq" in members
    assert max(m.uid for m in members.values()) < 65536


@pytest.mark.busybox
def test_rootless_chroot_isolation_gives_the_same_image(rootless: Runner,
                                                        root_build: tuple[str, Path, Path]) -> None:
    """The copying snapshotter as the last fallback: same layers as overlayfs makes (here, on ext4,
    ``rm -rf /opq && mkdir /opq`` gets the old inode number back and must still become opaque)."""
    root_id, base, context = root_build
    _ok(rootless("load", "-i", str(base)))
    image_id = _ok(rootless("build", "-q", "--no-cache", "--isolation", "chroot", ".", cwd=context,
                            env=EPOCH))
    assert image_id.strip() == root_id


@pytest.mark.busybox
def test_rootless_auto_isolation_picks_namespaces(rootless: Runner,
                                                 root_build: tuple[str, Path, Path]) -> None:
    root_id, base, context = root_build
    _ok(rootless("load", "-i", str(base)))
    done = rootless("build", "--progress", "plain", "--isolation", "auto", ".", cwd=context, env=EPOCH)
    assert done.returncode == 0, done.stderr
    assert "[internal] isolation: namespaces (overlayfs)" in done.stderr
    assert f"writing image {root_id}" in done.stderr


@pytest.mark.busybox
@pytest.mark.fuse_overlayfs
def test_rootless_fuse_overlayfs_fallback_gives_the_same_image(rootless: Runner,
                                                              root_build: tuple[str, Path, Path]) -> None:
    """Where the kernel's overlayfs refuses a user namespace (before 5.11; forced here), fuse-overlayfs
    mounts the layers, the log says so, and the image is root's."""
    root_id, base, context = root_build
    _ok(rootless("load", "-i", str(base)))
    done = rootless("build", "--progress", "plain", "--no-cache", ".", cwd=context,
                    env={**EPOCH, isolation.REFUSE_OVERLAY_ENV: "1"})
    assert done.returncode == 0, done.stderr
    assert ("[internal] isolation: namespaces (fuse-overlayfs; overlayfs: refused for this test "
            f"({isolation.REFUSE_OVERLAY_ENV}))") in done.stderr
    assert f"writing image {root_id}" in done.stderr


@pytest.mark.busybox
def test_rootless_run_copies_the_layers_where_no_overlay_mounts(rootless: Runner, shared_dir: Path,
                                                                root_build: tuple[str, Path, Path]) -> None:
    """Neither the kernel's overlayfs (refused for this test) nor fuse-overlayfs (not on PATH): ``run``
    takes a copy of the layers as its root, as the builder's chroot fallback does, in its namespaces."""
    _ok(rootless("load", "-i", str(root_build[1])))
    bare = shared_dir / "bin-no-fuse"
    bare.mkdir(exist_ok=True)
    for tool in ("newuidmap", "newgidmap"):
        found = shutil.which(tool)
        assert found is not None
        if not (bare / tool).exists():
            (bare / tool).symlink_to(found)
    script = "awk '$5 == \"/\" {print $4}' /proc/self/mountinfo; head -1 /etc/passwd; echo x > /new; cat /new"
    out = _ok(rootless("run", "--rm", "--network", "none", "base:local", "sh", "-c", script,
                       env={isolation.REFUSE_OVERLAY_ENV: "1"}, path=str(bare))).splitlines()
    assert out[0].endswith("/rootfs"), out  # the copy's directory, not an overlay's "/"
    assert out[1:] == ["root:x:0:0:root:/root:/bin/sh", "x"]


@pytest.mark.busybox
def test_rootless_run(rootless: Runner, root_build: tuple[str, Path, Path]) -> None:
    _ok(rootless("load", "-i", str(root_build[1])))
    # uid 0 of the container is the user; uid 1000 a sub-id, and both look like themselves inside.
    out = _ok(rootless("run", "--rm", "base:local", "sh", "-c", "id -u; cat /proc/self/uid_map"))
    lines = out.split()
    assert lines[0] == "0" and lines[1:4] == ["0", str(pwd.getpwnam("dyrootless").pw_uid), "1"]
    assert lines[4:7] == ["1", "200000", "65536"]  # uid N = sub-id base + N - 1
    assert _ok(rootless("run", "--rm", "-u", "1000", "base:local", "id", "-u")).strip() == "1000"


@pytest.mark.busybox
def test_rootless_detached_container(rootless: Runner, root_build: tuple[str, Path, Path]) -> None:
    """``run -d`` returns once the process runs, with its pid as the host numbers it (the zygote has a
    pid namespace of its own in rootless mode), on the private network (the monitor gets the helper
    that starts pasta); ``stop`` reaches that process."""
    _ok(rootless("load", "-i", str(root_build[1])))
    name = f"detached-{os.getpid()}"
    _ok(rootless("run", "-d", "--name", name, "base:local", "sleep", "30"))
    try:
        state = _ok(rootless("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name)).split()
        assert state[0] == "true"
        assert Path(f"/proc/{state[1]}/cmdline").read_bytes() == b"sleep\x0030\x00"
        assert "10.0.2.100" in Path(f"/proc/{state[1]}/net/fib_trie").read_text()
        _ok(rootless("stop", "-t", "1", name))
        assert _ok(rootless("inspect", "-f", "{{.State.Running}}", name)).strip() == "false"
    finally:
        rootless("rm", "-f", name)


@pytest.mark.busybox
@pytest.mark.registry
def test_rootless_push_pull_images(rootless: Runner, root_build: tuple[str, Path, Path]) -> None:
    _ok(rootless("load", "-i", str(root_build[1])))
    ref = f"{REGISTRY}/rootless-test/base:{os.getpid()}"
    _ok(rootless("tag", "base:local", ref))
    _ok(rootless("push", ref))
    _ok(rootless("rmi", ref))
    _ok(rootless("pull", ref))
    assert ref.rsplit(":", 1)[0] in _ok(rootless("images"))
    assert _ok(rootless("run", "--rm", ref, "cat", "/etc/passwd")).startswith("root:")


def test_no_subordinate_range_is_one_clear_line(no_range: Runner) -> None:
    done = no_range("images")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no subordinate uid range for user dyrootless-noids in /etc/subuid" in done.stderr
    assert "usermod --add-subuids" in done.stderr and "Traceback" not in done.stderr
    # Commands that never touch the store need no namespace.
    assert no_range("dockerfile", "--help").returncode == 0


def test_missing_newuidmap_is_named(rootless: Runner, shared_dir: Path) -> None:
    bare = shared_dir / "bin"
    bare.mkdir(exist_ok=True)
    done = rootless("images", path=str(bare))
    assert done.returncode != 0
    assert "newuidmap not found" in done.stderr and "apt-get install uidmap" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_disabled_user_namespaces_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(flags: int) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(rootless.m, "unshare", refuse)
    with pytest.raises(ExecutionError, match=r"user namespaces are disabled .*sysctl"):
        rootless._unshare_user()


def test_user_namespace_refused_to_a_threaded_process_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(flags: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(rootless.m, "unshare", refuse)
    with pytest.raises(ExecutionError, match=r"process that already runs threads") as info:
        rootless._unshare_user()
    assert "disabled" not in info.value.message


def test_sub_ids_reads_name_or_number(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n# x\n1001:300000:1000\nbob:bad:1\nbob:5:0\n")
    assert rootless.sub_ids(path, "alice", 1000) == rootless.IdRange(100000, 65536)
    assert rootless.sub_ids(path, "carol", 1001) == rootless.IdRange(300000, 1000)
    assert rootless.sub_ids(path, "bob", 1002) is None
    assert rootless.sub_ids(tmp_path / "missing", "alice", 1000) is None
