"""fuse-overlayfs: overlay mounts where the kernel's overlayfs refuses them (a user namespace on a
kernel before 5.11, which lacks ``userxattr``).

It reads lower layers in overlayfs's own form (0/0 character device whiteouts, the opaque xattr), but
marks an opaque directory in its upper three ways at once (the xattr, an empty ``.wh..wh..opq`` file
and a whiteout named ``.wh..opq``), and where a 0/0 device cannot be made it writes ``.wh.<name>``
files. :func:`normalize_upper` turns such an upper into overlayfs's form, so a layer committed from
it is the one the kernel's overlay would have given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.errors import ExecutionError
from dockyard.executor import mount as m
from dockyard.executor.rootfs import stub_layer
from dockyard.executor.spec import RootfsSpec

BINARY = "fuse-overlayfs"
_OWN_PREFIX = "user.fuseoverlayfs."  # its bookkeeping (origin, opaque), no part of a layer
_OWN_OPAQUE = _OWN_PREFIX + "opaque"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
DEVICE = "/dev/fuse"


def unusable() -> str:
    """Empty when fuse-overlayfs can be tried here, else why not."""
    if shutil.which(BINARY) is None:
        return f"{BINARY} is not installed (apt-get install fuse-overlayfs)"
    if not os.access(DEVICE, os.R_OK | os.W_OK):
        return f"{DEVICE} is not open to this user"
    return ""


def mount(target: str, lowers_top_first: Sequence[str], upper: str | None = None,
          work: str | None = None) -> None:
    """Mount an overlay of ``lowers_top_first`` (under ``upper``, if given) on ``target``; returns once
    it is mounted (fuse-overlayfs goes to the background then, and ends when it is unmounted)."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise ExecutionError(f"{BINARY} is not installed (apt-get install fuse-overlayfs)")
    data = f"lowerdir={':'.join(lowers_top_first)}"
    if upper is not None:
        data += f",upperdir={upper},workdir={work}"
    # allow_other: the steps' processes run as other users than the one mounting it.
    done = subprocess.run([binary, "-o", f"{data},allow_other", target], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        why = "; ".join(line for line in done.stderr.splitlines() if "unknown argument" not in line)
        raise ExecutionError(f"{BINARY} could not mount {target}: {why or f'exit {done.returncode}'}")


def unmount(target: str) -> None:
    """Unmount ``target``; a plain unmount first, which waits for the writes to reach the upper."""
    try:
        m.umount2(target, 0)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        m.umount2(target, m.MNT_DETACH)


@contextlib.contextmanager
def mounted_rootfs(rootfs: RootfsSpec, targets: Sequence[tuple[str, bool]], scratch: Path) -> Iterator[Path]:
    """``rootfs`` mounted by fuse-overlayfs under ``scratch``, for a run to take as a plain directory;
    the mount points ``targets`` it lacks come from an extra top layer (as the executor's own overlays
    have them, so they never reach the upper). Afterwards the upper is in overlayfs's form."""
    scratch.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="fuse-", dir=scratch))
    try:
        lowers = [str(p) for p in reversed(rootfs.lowerdirs)]
        stubs, merged = base / "stubs", base / "merged"
        stubs.mkdir()
        merged.mkdir()
        top = [str(stubs)] if stub_layer(lowers, str(rootfs.upperdir), targets, str(stubs)) else []
        mount(str(merged), [*top, *lowers], str(rootfs.upperdir), str(rootfs.workdir))
        try:
            yield merged
        finally:
            unmount(str(merged))
            normalize_upper(str(rootfs.upperdir), [*top, *lowers])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def normalize_upper(upper: str, lowers_top_first: Sequence[str]) -> None:
    """Rewrite fuse-overlayfs's whiteouts, opaque markers and own xattrs in ``upper`` (unmounted) as
    overlayfs's. It marks every directory it makes opaque; overlayfs only one made where the layers
    below had that name (``rm -rf d && mkdir d``), so the others lose the mark."""
    # Here, not at the top: the isolation probe imports this module without site-packages.
    from dockyard.archive.whiteout import OPAQUE, WHITEOUT_PREFIX, make_whiteout, opaque_xattr

    opq_whiteout = OPAQUE[len(WHITEOUT_PREFIX):]  # ".wh..opq": fuse-overlayfs whites that out too
    for parent, _dirs, files in os.walk(upper):
        rel = os.path.relpath(parent, upper)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            opaque = False
            for attr in os.listxattr(fd):
                if attr in (_OWN_OPAQUE, *_OPAQUE_XATTRS):
                    opaque = True
                if attr.startswith(_OWN_PREFIX) or attr in _OPAQUE_XATTRS:
                    os.removexattr(fd, attr)
            names = set(files)
            if OPAQUE in names:
                os.unlink(OPAQUE, dir_fd=fd)
                names.discard(OPAQUE)
                opaque = True
            below = rel != "." and any(os.path.lexists(os.path.join(low, rel)) for low in lowers_top_first)
            if opaque and below:
                os.setxattr(fd, opaque_xattr(), b"y")
            for name in names:
                st = os.lstat(name, dir_fd=fd)
                if name == opq_whiteout and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    os.unlink(name, dir_fd=fd)
                    continue
                if name.startswith(WHITEOUT_PREFIX) and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(name, dir_fd=fd)
                    make_whiteout(fd, name[len(WHITEOUT_PREFIX):])
                    continue
                if not stat.S_ISLNK(st.st_mode):
                    path = os.path.join(parent, name)
                    for attr in os.listxattr(path, follow_symlinks=False):
                        if attr.startswith(_OWN_PREFIX):
                            os.removexattr(path, attr, follow_symlinks=False)
        finally:
            os.close(fd)
