"""Whether this process runs in a user namespace of its own (rootless mode), and what follows for
overlayfs: ``trusted.*`` xattrs are out of reach there, so overlays take ``userxattr`` and opaque
directories are marked ``user.overlay.opaque`` (as they are where no overlay can be mounted at
all). Stdlib only: the executor's zygote imports it.
"""

from __future__ import annotations

import fcntl
import os
import struct

NS_GET_OWNER_UID = 0xB704  # _IO(0xb7, 0x4): the uid that owns a user namespace

_in_userns: bool | None = None


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the host's."""
    global _in_userns
    if _in_userns is None:
        try:
            with open("/proc/self/uid_map") as f:
                _in_userns = f.read().split() != ["0", "0", "4294967295"]
        except OSError:
            _in_userns = False
    return _in_userns


def overlay_userxattr() -> str:
    """The extra overlay mount option this process needs: ``,userxattr`` in a user namespace."""
    return ",userxattr" if in_user_namespace() else ""


def trusted_xattrs() -> bool:
    """Whether ``trusted.*`` xattrs (overlayfs's own) can be set: CAP_SYS_ADMIN on the host's user
    namespace. Not in rootless mode, nor as root of an unprivileged container."""
    if in_user_namespace():
        return False
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 21 & 1)  # CAP_SYS_ADMIN
    except OSError:
        pass
    return False


def foreign_namespace_owner(pid: int) -> tuple[int, int] | None:
    """For process ``pid`` in a user namespace other than this process's: (a descriptor of that
    namespace, which the caller closes; the uid owning it). None when it shares ours. Raises
    ``OSError`` when the process is gone or out of reach."""
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        theirs, ours = os.fstat(fd), os.stat("/proc/self/ns/user")
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            os.close(fd)
            return None
        owner: int = struct.unpack("I", fcntl.ioctl(fd, NS_GET_OWNER_UID, bytes(4)))[0]
    except BaseException:
        os.close(fd)
        raise
    return fd, owner
