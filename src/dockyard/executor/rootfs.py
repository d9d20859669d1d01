"""Building a container's filesystem: the overlay root with mount stubs, and the generated files.

Shared by the built-in executor (inside the container's private mount namespace) and the runc backend
(on the host, under the run directory).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from dockyard import fs
from dockyard.executor import mount as m
from dockyard.executor.spec import Mount, ProcessSpec
from dockyard.executor.user import secure_join, start_error
from dockyard.userns import overlay_userxattr

TYPE_CHECKING = False  # no typing at run time (see zygote.py)
if TYPE_CHECKING:
    from typing import Any

# Mount points every container gets: path -> is a directory.
STANDARD_TARGETS: tuple[tuple[str, bool], ...] = (
    ("/proc", True), ("/dev", True), ("/sys", True),
    ("/etc/hosts", False), ("/etc/resolv.conf", False), ("/etc/hostname", False),
)

# Docker's defaults (moby daemon/pkg/oci/defaults.go): hidden, and read-only, kernel interfaces. Without
# them a root process could write /proc/sys or /proc/sysrq-trigger of the host, or read what leaks
# other tenants' activity (/proc/interrupts, RAPL energy counters under powercap).
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_CPUS = "/sys/devices/system/cpu"


def masked_paths() -> list[str]:
    """:data:`MASKED_PATHS` and, as Docker, each CPU's ``thermal_throttle`` directory that exists here."""
    extra: list[str] = []
    try:
        names = os.listdir(_CPUS)
    except OSError:
        names = []
    for name in sorted(names):
        path = f"{_CPUS}/{name}/thermal_throttle"
        if name.startswith("cpu") and name[3:].isdigit() and os.path.isdir(path):
            extra.append(path)
    return [*MASKED_PATHS, *extra]

_MAX_MOUNT_DATA = 4000  # the kernel copies at most one page of mount options


def mount_targets(spec: ProcessSpec) -> list[tuple[str, bool]]:
    """Every path the container mounts over, with whether it must be a directory."""
    targets = list(STANDARD_TARGETS)
    for mnt in spec.mounts:
        if mnt.type == "tmpfs":
            targets.append((mnt.target, True))
        elif mnt.type == "secret":
            targets.append((mnt.target, False))
        else:
            targets.append((mnt.target, os.path.isdir(mnt.source)))
    return targets


def _too_many(count: int) -> Exception:
    return start_error(f"too many layers for one overlay mount ({count} lower directories)")


def _overlay_data(lowers_top_first: Sequence[str], upper: str | None, work: str | None,
                  top: str | None) -> tuple[str, str | None]:
    """Mount options, and the directory to chdir into when absolute paths would not fit in a page.

    ``top`` is an extra lower layer above the others. When the options are too long, the image layers
    (which share a store directory) are given relative to their common parent; the rest stay absolute.
    Without ``upper`` the overlay is read-only.
    """
    extra = [top] if top else []
    tail = f",upperdir={upper},workdir={work}" if upper else ""
    tail += ",index=off" + overlay_userxattr()
    data = f"lowerdir={':'.join([*extra, *lowers_top_first])}{tail}"
    if len(data) <= _MAX_MOUNT_DATA:
        return data, None
    base = os.path.commonpath(lowers_top_first)
    if base == lowers_top_first[0]:
        base = os.path.dirname(base)
    rel = [os.path.relpath(p, base) for p in lowers_top_first]
    data = f"lowerdir={':'.join([*extra, *rel])}{tail}"
    if len(data) > _MAX_MOUNT_DATA:
        raise _too_many(len(lowers_top_first))
    return data, base


def _mount_overlay(target: str, lowers_top_first: Sequence[str], upper: str | None, work: str | None,
                   allow_chdir: bool, top: str | None = None) -> None:
    try:
        _try_mount_overlay(target, lowers_top_first, upper, work, allow_chdir, top)
    except OSError as exc:
        where = f" (upper {upper}, work {work})" if upper else ""
        raise start_error(f"cannot mount the overlay rootfs of {len(lowers_top_first)} layers{where}: "
                          f"{exc.strerror}")


def _try_mount_overlay(target: str, lowers_top_first: Sequence[str], upper: str | None, work: str | None,
                       allow_chdir: bool, top: str | None) -> None:
    data, base = _overlay_data(lowers_top_first, upper, work, top)
    flags = 0 if upper else m.MS_RDONLY
    if base is None:
        m.mount("overlay", target, "overlay", flags, data)
        return
    if not allow_chdir:
        raise _too_many(len(lowers_top_first))
    # Overlayfs resolves relative layer paths against the caller's cwd: the way around the page limit.
    old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(base)
        m.mount("overlay", target, "overlay", flags, data)
    finally:
        os.fchdir(old)
        os.close(old)


_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
Entry = tuple[os.stat_result, str]  # lstat of the visible entry, and its path in the layer it comes from


def _opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


class LayeredView:
    """Read-only lookups in a stack of overlay layers (top first), as overlayfs would show them.

    A whiteout hides what is below it; a non-directory, or an opaque directory, ends the merge with the
    layers below. Answers what a mount would, without the cost of mounting (and, worse, unmounting) one.
    """

    def __init__(self, layers_top_first: Sequence[str]) -> None:
        self.layers = list(layers_top_first)
        self._cache: dict[tuple[str, ...], tuple[Entry | None, list[str]]] = {}

    def entry(self, parts: tuple[str, ...]) -> Entry | None:
        """The visible entry at ``parts`` (no symlink followed), or None."""
        return self._lookup(parts)[0]

    def _lookup(self, parts: tuple[str, ...]) -> tuple[Entry | None, list[str]]:
        cached = self._cache.get(parts)
        if cached is not None:
            return cached
        if not parts:
            result: tuple[Entry | None, list[str]] = ((os.lstat(self.layers[0]), self.layers[0]), self.layers)
        else:
            parent, candidates = self._lookup(parts[:-1])
            found: Entry | None = None
            merged: list[str] = []
            if parent is not None and stat.S_ISDIR(parent[0].st_mode):
                rel = "/".join(parts)
                for index, layer in enumerate(candidates):
                    path = os.path.join(layer, rel)
                    try:
                        st = os.lstat(path)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        break  # a whiteout
                    if found is None:
                        found = (st, path)
                    if not stat.S_ISDIR(st.st_mode) or not stat.S_ISDIR(found[0].st_mode):
                        break
                    merged.append(layer)
                    if index + 1 < len(candidates) and _opaque(path):
                        break
            result = (found, merged)
        self._cache[parts] = result
        return result

    def resolve(self, path: str) -> tuple[tuple[str, ...], Entry | None]:
        """``path`` with symlinks followed inside the view (as :func:`secure_join`), and its entry."""

        def read_link(parts: list[str]) -> str | None:
            found = self.entry(tuple(parts))
            return os.readlink(found[1]) if found is not None and stat.S_ISLNK(found[0].st_mode) else None

        try:
            done = tuple(fs.walk(path, read_link))
        except fs.SymlinkLoop as exc:
            raise start_error(f"{exc} in the container") from None
        return done, self.entry(done)


def _build_stubs(view: LayeredView, stub_dir: str, targets: Sequence[tuple[str, bool]]) -> bool:
    """Create in ``stub_dir`` the targets missing from ``view``; True if any was missing.

    Parents that exist get the mode, owner and times of the original, so that the merged directory looks
    unchanged and a copy-up of it records nothing new.
    """
    copied: list[tuple[str, os.stat_result]] = []
    any_missing = False
    for target, is_dir in targets:
        rel, found = view.resolve(target)
        if found is not None or not rel:
            continue
        any_missing = True
        for depth in range(1, len(rel)):
            dest = os.path.join(stub_dir, *rel[:depth])
            if os.path.isdir(dest):
                continue
            parent = view.entry(rel[:depth])
            if parent is None:
                os.mkdir(dest, 0o755)
                continue
            st = parent[0]
            if not stat.S_ISDIR(st.st_mode):
                raise start_error(f"cannot mount on {target}: /{'/'.join(rel[:depth])} is not a directory")
            os.mkdir(dest)
            os.chmod(dest, stat.S_IMODE(st.st_mode))
            os.chown(dest, st.st_uid, st.st_gid)
            copied.append((dest, st))
        leaf = os.path.join(stub_dir, *rel)
        if is_dir:
            os.makedirs(leaf, 0o755, exist_ok=True)
        else:
            os.close(os.open(leaf, os.O_CREAT | os.O_WRONLY, 0o644))
    for dest, st in reversed(copied):
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    return any_missing


def mount_rootfs(rootfs: dict[str, Any], target: str, scratch: str, targets: Sequence[tuple[str, bool]],
                 *, allow_chdir: bool) -> None:
    """Mount the rootfs at ``target`` with every mount point present.

    A plain directory is bind-mounted and missing mount points are created in it. An overlay gets missing
    mount points from an extra top lower layer in ``scratch`` (a tmpfs), so they never reach the upper
    directory and the layer holds only what the process changed; or from the one the caller made for
    these layers and targets, ``rootfs["stubs"]`` ("" when none is needed).
    """
    if "path" in rootfs:
        m.mount(rootfs["path"], target, None, m.MS_BIND | m.MS_REC)
        for path, is_dir in targets:
            resolved = secure_join(target, path)
            if os.path.lexists(resolved):
                continue
            if is_dir:
                os.makedirs(resolved, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(resolved), 0o755, exist_ok=True)
                os.close(os.open(resolved, os.O_CREAT | os.O_WRONLY, 0o644))
        return
    lowers = [str(p) for p in reversed(rootfs["lower"])]
    upper, work = rootfs["upper"], rootfs["work"]
    top: str | None = rootfs.get("stubs")
    if top is None:
        top = os.path.join(scratch, "stubs")
        os.mkdir(top, 0o755)
        if not stub_layer(lowers, upper, targets, top):
            top = None
    _mount_overlay(target, lowers, upper, work, allow_chdir, top or None)


def stub_layer(lowers_top_first: Sequence[str], upper: str, targets: Sequence[tuple[str, bool]],
               stub_dir: str) -> bool:
    """Fill ``stub_dir`` (empty) with the mount points ``targets`` that the overlay of ``upper`` on
    ``lowers_top_first`` lacks, to be its extra top lower layer; whether any were needed."""
    # The upper directory is the top layer of the view: its whiteouts count, as in the real mount.
    return _build_stubs(LayeredView([upper, *lowers_top_first]), stub_dir, targets)


_RESOLV_CONF = "/etc/resolv.conf"
_resolv_cache: tuple[tuple[int, int, int, int, int], str] | None = None


def host_resolv_conf() -> str:
    """The host's /etc/resolv.conf (the container gets a copy, as with Docker's host network): read
    again only when the file (or the one its symlink names) has changed since the last read."""
    global _resolv_cache
    try:
        st = os.stat(_RESOLV_CONF)
    except OSError:
        return ""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cached = _resolv_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(_RESOLV_CONF) as f:
            text = f.read()
    except OSError:
        return ""
    _resolv_cache = (key, text)
    return text


def hosts_text(spec: ProcessSpec) -> str:
    """/etc/hosts for the container."""
    lines = [f"127.0.0.1\tlocalhost {spec.hostname}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for name, ip in spec.hosts]
    return "\n".join(lines) + "\n"


def write_files(scratch: str, spec: ProcessSpec, resolv_conf: str) -> dict[str, str]:
    """Write the generated files into ``scratch``; container path -> host file to bind there."""
    files: dict[str, str] = {}
    for name, text in (("hosts", hosts_text(spec)), ("resolv.conf", resolv_conf),
                       ("hostname", spec.hostname + "\n")):
        path = os.path.join(scratch, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        files["/etc/" + name] = path
    return files


def secret_file(scratch: str, index: int, mnt: Mount) -> str:
    """Write a secret mount's contents to a file in ``scratch`` with its mode and owner; return it."""
    data = mnt.data
    if data is None:
        try:
            with open(mnt.source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise start_error(f"secret for {mnt.target}: cannot read {mnt.source}: {exc.strerror}")
    path = os.path.join(scratch, f"secret{index}")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, mnt.uid, mnt.gid)
        os.fchmod(fd, mnt.mode)
    finally:
        os.close(fd)
    return path


def discard_overlay(scratch: str, index: int, source: str) -> str:
    """Mount a writable overlay of ``source`` whose writes land in ``scratch``; return its path."""
    base = os.path.join(scratch, f"discard{index}")
    for sub in ("upper", "work", "merged"):
        os.makedirs(os.path.join(base, sub))
    m.mount("overlay", os.path.join(base, "merged"), "overlay", 0,
            f"lowerdir={source},upperdir={base}/upper,workdir={base}/work,index=off{overlay_userxattr()}")
    return os.path.join(base, "merged")
