"""OCI/Docker whiteout names and their overlayfs equivalents.

In a layer tar, ``dir/.wh.name`` deletes ``dir/name`` from the layers below and
``dir/.wh..wh..opq`` hides everything the layers below had in ``dir``. overlayfs spells the same
things as a 0/0 character device named ``name`` and the xattr ``trusted.overlay.opaque=y`` (in a user
namespace, where ``trusted.*`` is out of reach, ``user.overlay.opaque=y`` with the ``userxattr`` option).
"""

from __future__ import annotations

import os
import stat

from dockyard.userns import trusted_xattrs

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OPAQUE_XATTR = "user.overlay.opaque"


def opaque_xattr() -> str:
    """The opaque-directory xattr to write here: ``trusted.*`` as real root, else ``user.*`` (in a user
    namespace overlays are mounted with ``userxattr``; without CAP_SYS_ADMIN none are mounted)."""
    return OVERLAY_OPAQUE_XATTR if trusted_xattrs() else USER_OPAQUE_XATTR


def make_whiteout(dir_fd: int, name: str) -> None:
    """A whiteout for ``name`` in the directory open as ``dir_fd``: overlayfs's 0/0 character device,
    or, where that cannot be made (a store on overlayfs itself, such as a container's root filesystem,
    refuses it), an empty ``.wh.<name>`` file, the layer tar's own spelling. Only the copying
    snapshotter stacks such layers (overlays are not mounted there)."""
    try:
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)
    except PermissionError:
        fd = os.open(WHITEOUT_PREFIX + name, os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        os.fchmod(fd, 0o600)
        os.close(fd)


def is_whiteout(base: str) -> bool:
    """True when a path's last component is any whiteout marker."""
    return base.startswith(WHITEOUT_PREFIX)


def whiteout_target(base: str) -> str | None:
    """The name a ``.wh.<name>`` entry deletes; None for opaque and other ``.wh..wh.`` metadata."""
    if base.startswith(WHITEOUT_META_PREFIX) or not base.startswith(WHITEOUT_PREFIX):
        return None
    return base[len(WHITEOUT_PREFIX):] or None


def whiteout_name(base: str) -> str:
    """The tar name component that deletes ``base``."""
    return WHITEOUT_PREFIX + base
