"""Choosing how RUN steps are isolated (``--isolation``): namespaces with overlayfs, or chroot.

``namespaces`` is the built-in (or runc) executor: mount, pid, uts and ipc namespaces over an overlay
mount (in rootless mode inside the user's own user namespace). ``chroot`` needs neither namespaces nor
mounts: the copying snapshotter and a chroot, for builds inside an unprivileged container. ``auto``
probes, once per build, for the strongest that works here and says why it settled lower.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import ExecutionError, InvalidArgument

ISOLATIONS = ("auto", "namespaces", "chroot")

# A throw-away child tries what a namespace run needs: new namespaces, a private mount tree and an
# overlay mount (with userxattr in a user namespace). It prints why it failed, if it does.
_PROBE = """\
import os, sys
sys.path.insert(0, {src!r})
from dockyard.executor import mount as m
from dockyard.userns import overlay_userxattr
base = {base!r}
try:
    m.unshare(m.CLONE_NEWNS | m.CLONE_NEWPID | m.CLONE_NEWUTS | m.CLONE_NEWIPC)
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    for d in ("l", "u", "w", "m"):
        os.mkdir(os.path.join(base, d))
    m.mount("overlay", os.path.join(base, "m"), "overlay", 0,
            f"lowerdir={{base}}/l,upperdir={{base}}/u,workdir={{base}}/w" + overlay_userxattr())
except OSError as exc:
    print(exc.strerror or exc)
    sys.exit(1)
"""


@dataclass(frozen=True, slots=True)
class Choice:
    """The isolation in use, and (for ``auto``) why the stronger one was not."""

    isolation: str
    reason: str = ""

    def describe(self) -> str:
        """One line for the build log."""
        if self.isolation == "namespaces":
            return "isolation: namespaces (overlayfs)"
        because = f"; namespaces: {self.reason}" if self.reason else ""
        return f"isolation: chroot (copying snapshotter{because})"


def namespaces_work(scratch: Path) -> str:
    """Empty when namespaces and an overlay mount work here, else what refused them."""
    import dockyard

    scratch.mkdir(parents=True, exist_ok=True)
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="probe-") as base:
        try:
            done = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE.format(src=src, base=base)],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode == 0:
        return ""
    return done.stdout.strip().lower() or f"probe exited with {done.returncode}"


def choose(isolation: str, scratch: Path) -> Choice:
    """Resolve ``auto``; check the name of the others."""
    if isolation not in ISOLATIONS:
        raise InvalidArgument(f"unknown isolation {isolation!r} (use one of: {', '.join(ISOLATIONS)})")
    if isolation != "auto":
        return Choice(isolation)
    reason = namespaces_work(scratch)
    if not reason:
        return Choice("namespaces")
    if os.geteuid() != 0:
        raise ExecutionError(f"no isolation works here: namespaces: {reason}; chroot needs root")
    return Choice("chroot", reason)
