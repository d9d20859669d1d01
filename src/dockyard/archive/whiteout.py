"""OCI/Docker whiteout names and their overlayfs equivalents.

In a layer tar, ``dir/.wh.name`` deletes ``dir/name`` from the layers below and
``dir/.wh..wh..opq`` hides everything the layers below had in ``dir``. overlayfs spells the same
things as a 0/0 character device named ``name`` and the xattr ``trusted.overlay.opaque=y`` (in a user
namespace, where ``trusted.*`` is out of reach, ``user.overlay.opaque=y`` with the ``userxattr`` option).
"""

from __future__ import annotations

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
