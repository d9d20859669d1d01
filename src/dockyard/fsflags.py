"""Inode flags (``chattr``'s) that the stores set on their scratch directories."""

from __future__ import annotations

import fcntl
import os
import struct

__all__ = ["spread_subdirectories"]

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def spread_subdirectories(path: str | os.PathLike[str]) -> None:
    """Mark ``path`` as the top of directory hierarchies (``chattr +T``): ext4 then places each
    directory made in it in a block group it picks among the emptier ones (Orlov), not beside its
    parent. Why: ext4 without a journal skips inodes deleted in the last minutes when it allocates
    new ones, scanning past each; a build's upper directories made in the group where the last
    prune deleted thousands of files made every file a COPY writes slower, build after build (the
    reference build's cold time on this machine's root disk went 1.1 -> 2.0 s over three builds;
    0.7 s with the flag). Other filesystems ignore or refuse the flag: nothing is lost either way."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
    except OSError:
        pass  # not ext4 (tmpfs, overlayfs...), or not ours to change
    finally:
        os.close(fd)
