"""Offline base images, made from Debian packages instead of pulled from Docker Hub.

- ``busybox``: the static binary of Debian's ``busybox-static`` (the installed one when its
  architecture matches, else ``apt-get download`` + ``dpkg-deb -x``), a symlink per applet, a
  minimal ``/etc/passwd`` and ``/etc/group`` (root, nobody). Fixed mtimes and a fixed creation time
  make it reproducible: the same package gives the same image ID on every machine.
- ``debian:<suite>``: ``debootstrap [--variant minbase] [--arch A] <suite>`` into a scratch
  directory, given the settings Docker's official Debian images carry (``docker_settings``: apt
  cleans its cache after each install, no translations, compressed indexes, no services started),
  written as one layer in sorted order with mtimes clamped to ``SOURCE_DATE_EPOCH`` when set. A
  foreign architecture runs its second stage through qemu-user-static (binfmt). Each stage is a
  progress event of kind ``vertex`` (``[2/5] apply Docker image settings``), as build steps are.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.archive.tarheader import DIRTYPE, REGTYPE, SYMTYPE, TarEntry
from dockyard.archive.writer import TarWriter, TreeOptions, write_tree
from dockyard.errors import ExecutionError, InvalidArgument, NotFound
from dockyard.image import ImageRecord
from dockyard.imageops import Store, commit
from dockyard.oci import platform as platforms
from dockyard.oci.config import History, ImageConfig
from dockyard.progress import Event, Outcome, ProgressSink, VertexCompleted, VertexStarted, discard
from dockyard.record import record

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Creation time of bootstrapped busybox images (fixed, for reproducible IDs); SOURCE_DATE_EPOCH wins.
BUSYBOX_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_DEB_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm/v7": "armhf", "arm/v6": "armel", "386": "i386",
             "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el"}
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
         "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
         "var": 0o755, "var/tmp": 0o1777}


_APT_CLEAN = ('"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
              '/var/cache/apt/*.bin || true";')
#: What debuerreotype writes into Docker's official Debian images (path, mode, text): in an image,
#: package installs happen in build steps, so caches and translations only make layers bigger.
DOCKER_SETTINGS: tuple[tuple[str, int, str], ...] = (
    # Services must not start while a build installs packages (invoke-rc.d asks this script).
    ("usr/sbin/policy-rc.d", 0o755, "#!/bin/sh\n# dockyard: no service starts in image builds\nexit 101\n"),
    # A build step is redone from scratch if interrupted: fsync after each unpacked file only costs time.
    ("etc/dpkg/dpkg.cfg.d/docker-apt-speedup", 0o644, "force-unsafe-io\n"),
    # "apt-get clean" after every dpkg run and every update, and no binary package caches at all.
    ("etc/apt/apt.conf.d/docker-clean", 0o644,
     f"DPkg::Post-Invoke {{ {_APT_CLEAN} }};\nAPT::Update::Post-Invoke {{ {_APT_CLEAN} }};\n"
     'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    # Package lists stay compressed on disk.
    ("etc/apt/apt.conf.d/docker-gzip-indexes", 0o644, 'Acquire::GzipIndexes "true";\n'),
    # No Translation-* files on apt-get update.
    ("etc/apt/apt.conf.d/docker-no-languages", 0o644, 'Acquire::Languages "none";\n'),
    # "apt-get purge --auto-remove" also removes what was kept only because something suggests it.
    ("etc/apt/apt.conf.d/docker-autoremove-suggests", 0o644, 'Apt::AutoRemove::SuggestsImportant "false";\n'),
)


def docker_settings(rootfs: Path) -> list[str]:
    """Write ``DOCKER_SETTINGS`` into the Debian tree ``rootfs``; return the paths written.

    A directory the release lacks (``dpkg.cfg.d`` on very old ones) skips that file, as debuerreotype
    does, rather than inventing configuration the tools there would not read.
    """
    written: list[str] = []
    for rel, mode, text in DOCKER_SETTINGS:
        path = rootfs / rel
        if not path.parent.is_dir():
            continue
        path.unlink(missing_ok=True)  # never write through a symlink the tree may hold
        path.write_text(text)
        path.chmod(mode)
        written.append(rel)
    return written


def deb_arch(platform: platforms.Platform) -> str:
    """Debian's name for a platform's architecture (``arm64``, ``armhf``...)."""
    p = platform.normalized()
    key = f"{p.architecture}/{p.variant}" if p.variant else p.architecture
    arch = _DEB_ARCH.get(key)
    if arch is None or p.os != "linux":
        raise InvalidArgument(f"platform {p} has no Debian architecture")
    return arch


def _epoch(default: int) -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else default


def _rfc3339(epoch: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _run(argv: Sequence[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise NotFound(f"{what}: {argv[0]} is not installed") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        tail = err[-1] if err else f"exit status {proc.returncode}"
        raise ExecutionError(f"{what}: {' '.join(argv[:3])} failed: {tail}")
    assert isinstance(proc, subprocess.CompletedProcess)
    return proc


class _Stages:
    """Numbered stages reported as build-step events (``[2/5] ...``): started, then done or error."""

    def __init__(self, sink: ProgressSink, total: int) -> None:
        self._sink = sink
        self._total = total
        self._n = 0

    @contextlib.contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self._n += 1
        vid = f"bootstrap-{self._n}"
        self._sink(VertexStarted(vid, f"[{self._n}/{self._total}] {title}"))
        try:
            yield
        except BaseException as exc:
            outcome: Outcome = "canceled" if isinstance(exc, KeyboardInterrupt) else "error"
            self._sink(VertexCompleted(vid, f"[{self._n}/{self._total}] {title}", outcome, str(exc)))
            raise
        self._sink(VertexCompleted(vid, f"[{self._n}/{self._total}] {title}", "done"))


@record(frozen=True, slots=True)
class BusyboxSource:
    binary: bytes
    version: str
    applets: list[str]


def _installed_version(package: str, arch: str) -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}|${Version}", f"{package}:{arch}"],
                          capture_output=True, check=False)
    status, _, version = proc.stdout.decode().partition("|")
    return version if proc.returncode == 0 and status.endswith(" installed") else ""


def _applets(binary: str) -> list[str]:
    """Applet paths (``bin/sh``, ``usr/bin/awk``...): from the binary, else from the host's busybox."""
    for candidate in (binary, shutil.which("busybox") or "/bin/busybox"):
        try:
            proc = subprocess.run([candidate, "--list-full"], capture_output=True, check=False, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip():
            return sorted({line.strip() for line in proc.stdout.decode().splitlines() if line.strip()})
    raise ExecutionError("bootstrap busybox: cannot list the applets (busybox --list-full failed)")


def busybox_source(arch: str, workdir: Path) -> BusyboxSource:
    """The busybox-static binary for Debian architecture ``arch``, its package version and applets."""
    version = _installed_version("busybox-static", arch)
    if version and Path("/bin/busybox").is_file():
        data = Path("/bin/busybox").read_bytes()
        return BusyboxSource(data, version, _applets("/bin/busybox"))
    os.chmod(workdir, 0o777)  # apt-get download drops privileges to _apt
    what = f"bootstrap busybox: download busybox-static:{arch}"
    try:
        _run(["apt-get", "download", "-qq", f"busybox-static:{arch}"], what, cwd=workdir)
    except ExecutionError as exc:
        raise ExecutionError(f"{exc} (for a foreign architecture: dpkg --add-architecture {arch} && "
                             "apt-get update)") from None
    debs = sorted(workdir.glob("busybox-static_*.deb"))
    if not debs:
        raise NotFound(f"{what}: no package was downloaded")
    _run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "x")], f"bootstrap busybox: unpack {debs[0].name}")
    fields = _run(["dpkg-deb", "-f", str(debs[0]), "Version"], "bootstrap busybox: read the version")
    binary = workdir / "x" / "bin" / "busybox"
    if not binary.is_file():
        raise NotFound(f"bootstrap busybox: {debs[0].name} has no bin/busybox")
    version = fields.stdout.decode().strip()
    # The applet list depends on the version only; the host's own copy answers without emulation.
    host_arch = deb_arch(platforms.host())
    same = host_arch != arch and _installed_version("busybox-static", host_arch) == version
    return BusyboxSource(binary.read_bytes(), version, _applets("/bin/busybox" if same else str(binary)))


def busybox_rootfs(src: BusyboxSource, mtime: int) -> bytes:
    """The root filesystem tar: directories, ``/bin/busybox``, applet symlinks, passwd and group."""
    entries: dict[str, TarEntry] = {}
    for path, mode in _DIRS.items():
        entries[path] = TarEntry(path, DIRTYPE, mode=mode, mtime=mtime)
    files = {"bin/busybox": (src.binary, 0o755), "etc/passwd": (_PASSWD, 0o644), "etc/group": (_GROUP, 0o644)}
    for applet in src.applets:
        applet = applet.strip("/")
        if applet in files or applet == "bin/busybox" or not applet:
            continue
        parent = os.path.dirname(applet)
        if parent and parent not in entries:
            entries[parent] = TarEntry(parent, DIRTYPE, mode=0o755, mtime=mtime)
        entries[applet] = TarEntry(applet, SYMTYPE, mode=0o777, mtime=mtime, linkname="/bin/busybox")
    for path, (_, mode) in files.items():
        entries[path] = TarEntry(path, REGTYPE, mode=mode, mtime=mtime)
    out = io.BytesIO()
    tw = TarWriter(out)
    for path in sorted(entries, key=lambda p: p.split("/")):
        entry = entries[path]
        if entry.type == DIRTYPE:
            entry.name = path + "/"
        tw.add(entry, files[path][0] if path in files else None)
    tw.close()
    return out.getvalue()


def bootstrap_busybox(store: Store, *, names: Sequence[str] = ("busybox:latest",),
                      platform: platforms.Platform | None = None,
                      progress: ProgressSink = discard) -> ImageRecord:
    """Make a busybox image from Debian's ``busybox-static``; the same package gives the same ID."""
    for name in names:
        commit.normalize_tag(name)
    target = (platform or platforms.host()).normalized()
    arch = deb_arch(target)
    mtime = _epoch(BUSYBOX_EPOCH)
    progress(Event(id="busybox", name="Fetching busybox-static", status="started"))
    with tempfile.TemporaryDirectory(prefix="dockyard-bootstrap-") as tmp:
        src = busybox_source(arch, Path(tmp))
    progress(Event(id="busybox", name="Fetching busybox-static", status="done"))
    rootfs = busybox_rootfs(src, mtime)
    created = _rfc3339(mtime)
    with store.lease() as lease:
        layer = commit.store_layer(store, rootfs, lease=lease)
        config = ImageConfig(
            architecture=target.architecture, os=target.os, variant=target.variant, created=created,
            config={"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]},
            diff_ids=[layer.diff_id],
            history=[History(created=created,
                             created_by=f"dockyard bootstrap busybox (busybox-static {src.version} {arch})")],
        )
        return commit.commit_image(store, config.to_json(), names=list(names), add_platform=True)


def bootstrap_debian(store: Store, suite: str, *, names: Sequence[str] = (), variant: str = "minbase",
                     platform: platforms.Platform | None = None, mirror: str = DEBIAN_MIRROR,
                     progress: ProgressSink = discard) -> ImageRecord:
    """Make a Debian image with ``debootstrap`` (downloads from ``mirror``; needs root)."""
    if not suite or "/" in suite or suite.startswith("-"):
        raise InvalidArgument(f"invalid Debian suite {suite!r}")
    names = list(names) or [f"debian:{suite}"]
    for name in names:
        commit.normalize_tag(name)
    if variant not in ("minbase", "buildd", "fakechroot", ""):
        raise InvalidArgument(f"invalid debootstrap variant {variant!r} (minbase, buildd or fakechroot)")
    target = (platform or platforms.host()).normalized()
    arch = deb_arch(target)
    if os.geteuid() != 0:
        raise InvalidArgument("bootstrap debian: debootstrap needs root")
    work = store.make_tmp("bootstrap")
    stages = _Stages(progress, 5)
    try:
        rootfs = work / "rootfs"
        argv = ["debootstrap", f"--arch={arch}"]
        if variant:
            argv.append(f"--variant={variant}")
        argv += [suite, str(rootfs), mirror]
        with stages(f"debootstrap --variant={variant or 'default'} {suite} {arch}"):
            _run(argv, f"bootstrap {suite}")
        with stages("apply Docker image settings (apt clean-up, no translations, gzip indexes)"):
            docker_settings(rootfs)
        with stages("remove caches and logs"):
            # Caches and logs that make two runs differ and that no image should carry.
            for junk in ("var/cache/apt/archives", "var/cache/apt", "var/lib/apt/lists", "var/log"):
                path = rootfs / junk
                if path.is_dir():
                    for child in path.iterdir():
                        if child.is_file() or child.is_symlink():
                            child.unlink()
        clamp = _epoch(-1)
        layer_path = work / "layer.tar"
        with stages("write the layer"):
            fd = os.open(layer_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_tree(rootfs, fd, TreeOptions(mtime_clamp=clamp if clamp >= 0 else None))
            finally:
                os.close(fd)
        created = _rfc3339(clamp) if clamp >= 0 else _rfc3339(int(os.stat(layer_path).st_mtime))
        with stages(f"store the image as {', '.join(names)}"), store.lease() as lease, \
                open(layer_path, "rb") as f:
            layer = commit.store_layer(store, f, lease=lease)
            config = ImageConfig(
                architecture=target.architecture, os=target.os, variant=target.variant, created=created,
                config={"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["bash"]},
                diff_ids=[layer.diff_id],
                history=[History(created=created, created_by=f"dockyard bootstrap debian:{suite} "
                                 f"(debootstrap --variant={variant} --arch={arch})")],
            )
            return commit.commit_image(store, config.to_json(), names=names, add_platform=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
