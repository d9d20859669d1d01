"""Choosing how RUN steps are isolated (``--isolation``): namespaces with overlayfs, or chroot.

``namespaces`` is the built-in (or runc) executor: mount, pid, uts and ipc namespaces over an overlay
mount (in rootless mode inside the user's own user namespace). ``chroot`` needs neither namespaces nor
mounts: the copying snapshotter and a chroot, for builds inside an unprivileged container. ``auto``
probes, once per build, for the strongest that works here and says why it settled lower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.record import record
from dockyard.userns import in_user_namespace

ISOLATIONS = ("auto", "namespaces", "chroot")

REFUSE_OVERLAY_ENV = "DOCKYARD_TEST_REFUSE_OVERLAY"
"""Set (to anything) to make the probe treat the kernel's overlayfs as refused: for tests of the
fallbacks on a kernel that has it."""

# A throw-away child tries what a namespace run needs: new namespaces and a private mount tree, then an
# overlay mount (with userxattr in a user namespace), then fuse-overlayfs. Its first line says which
# mounts overlays here: "overlayfs", "fuse-overlayfs" or "none"; the next ones why the stronger ones
# were refused. Exit status 1 (and the reason): namespaces themselves were refused.
_PROBE = """\
import os, sys
sys.path.insert(0, {src!r})
from dockyard.executor import fuseoverlay, mount as m
from dockyard.userns import overlay_userxattr
base = {base!r}
try:
    m.unshare(m.CLONE_NEWNS | m.CLONE_NEWPID | m.CLONE_NEWUTS | m.CLONE_NEWIPC)
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    for d in ("l", "u", "w", "m"):
        os.mkdir(os.path.join(base, d))
except OSError as exc:
    print(exc.strerror or exc)
    sys.exit(1)
why = []
try:
    if {refuse!r}:
        raise OSError(0, "refused for this test ({env})")
    m.mount("overlay", os.path.join(base, "m"), "overlay", 0,
            f"lowerdir={{base}}/l,upperdir={{base}}/u,workdir={{base}}/w" + overlay_userxattr())
    print("overlayfs")
    sys.exit(0)
except OSError as exc:
    why.append("overlayfs: " + (exc.strerror or str(exc)))
try:
    why.append(fuseoverlay.unusable())
    if not why[-1]:
        why.pop()
        fuseoverlay.mount(os.path.join(base, "m"), [base + "/l"], base + "/u", base + "/w")
        fuseoverlay.unmount(os.path.join(base, "m"))
        print("fuse-overlayfs")
        print(*why, sep="\\n")
        sys.exit(0)
except Exception as exc:
    why.append(str(exc))
print("none")
print(*why, sep="\\n")
"""


@record(frozen=True, slots=True)
class Choice:
    """The isolation in use, what mounts its overlays, and why stronger ones were not used."""

    isolation: str
    reason: str = ""
    mounter: str = "overlayfs"  # or fuse-overlayfs (namespaces); chroot copies instead

    @property
    def fell_back(self) -> bool:
        """Whether something weaker than asked for is in use (the build log says so)."""
        return bool(self.reason)

    def describe(self) -> str:
        """One line for the build log."""
        if self.isolation == "namespaces":
            because = f"; {self.reason}" if self.reason else ""
            return f"isolation: namespaces ({self.mounter}{because})"
        because = f"; {self.reason}" if self.reason else ""
        return f"isolation: chroot (copying snapshotter{because})"


def probe(scratch: Path) -> tuple[str, str]:
    """What mounts overlays here (``overlayfs``, ``fuse-overlayfs``, ``none``) and why the stronger were
    refused; ``("", why)`` when namespaces themselves are refused."""
    import dockyard

    scratch.mkdir(parents=True, exist_ok=True)
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    refuse = bool(os.environ.get(REFUSE_OVERLAY_ENV))
    import subprocess  # a probe is rare (its answer is kept): neither at import
    import tempfile

    with tempfile.TemporaryDirectory(dir=scratch, prefix="probe-") as base:
        code = _PROBE.format(src=src, base=base, refuse=refuse, env=REFUSE_OVERLAY_ENV)
        try:
            done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "", str(exc)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return "", (lines[0] if lines else "").lower() or f"probe exited with {done.returncode}"
    return lines[0], "; ".join(lines[1:])


def _known_good(scratch: Path, found: bool = False) -> bool:
    """Whether a probe found the kernel's overlayfs working since this boot (recorded when ``found``):
    a rootless build then skips the probe's process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            mark = scratch / f"overlayfs-works-{f.read().strip()}"
        if found:
            mark.touch()
        return mark.exists()
    except OSError:
        return False


def choose(isolation: str, scratch: Path) -> Choice:
    """Resolve ``auto``; check the name of the others. ``namespaces`` in a user namespace (rootless)
    falls back to fuse-overlayfs, and then to chroot with the copying snapshotter, when the kernel's
    overlayfs is refused (before 5.11 it is, there)."""
    if isolation not in ISOLATIONS:
        raise InvalidArgument(f"unknown isolation {isolation!r} (use one of: {', '.join(ISOLATIONS)})")
    if isolation == "chroot":
        return Choice(isolation)
    forced = bool(os.environ.get(REFUSE_OVERLAY_ENV))
    if isolation == "namespaces" and not forced and (not in_user_namespace() or _known_good(scratch)):
        return Choice(isolation)  # the kernel's overlayfs is there: real root, or seen since boot
    mounter, why = probe(scratch)
    if mounter == "overlayfs" and not forced:
        _known_good(scratch, found=True)
    if mounter == "overlayfs":
        return Choice("namespaces")
    if mounter == "fuse-overlayfs":
        return Choice("namespaces", why, mounter)
    if isolation == "namespaces" and not mounter:
        return Choice("namespaces")  # as asked: the run says what refused it
    reason = why if mounter else f"namespaces: {why}"
    if os.geteuid() != 0:
        raise ExecutionError(f"no isolation works here: {reason}; chroot needs root")
    return Choice("chroot", reason)
