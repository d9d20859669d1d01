"""Thin ctypes wrappers for the Linux calls the executor needs and the stdlib lacks.

mount, umount2, unshare, pivot_root, sethostname, prctl, capset; each raises ``OSError`` with errno.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_MOVE = 8192
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Docker's default capability set (moby's oci/caps/defaults.go), by number.
DEFAULT_CAPS: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
    "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}
DEFAULT_CAP_MASK = sum(1 << n for n in DEFAULT_CAPS.values())

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str], fstype: str | None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {fstype or 'bind'}",
           os.fspath(target))


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), "umount", os.fspath(target))


def unshare(flags: int) -> None:
    """unshare(2); call it in a single-threaded process."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace behind ``fd``."""
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (glibc has no wrapper)."""
    machine = os.uname().machine  # what platform.machine() says, without importing platform
    number = _SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise OSError(38, f"pivot_root: unsupported machine {machine}")
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> None:
    """prctl(2) for options that return 0 on success."""
    _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


_CLOSE_RANGE_CLOEXEC = 1 << 2


def cloexec_from(first: int) -> bool:
    """Mark every descriptor from ``first`` up close-on-exec in one close_range(2) (Linux 5.11); False
    if this libc or kernel cannot (the caller then marks them one by one)."""
    close_range = getattr(_libc, "close_range", None)
    if close_range is None:
        return False
    close_range.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_int]
    return bool(close_range(first, 0xFFFFFFFF, _CLOSE_RANGE_CLOEXEC) == 0)


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def drop_bounding_set(keep_mask: int) -> None:
    """Drop every capability not in ``keep_mask`` from the bounding set, and clear the ambient set."""
    for cap in range(last_cap() + 1):
        if not keep_mask & (1 << cap):
            prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def capset_data(effective: int, permitted: int, inheritable: int) -> tuple[ctypes.Array[ctypes.c_char], ...]:
    """The header and data buffers capset(2) takes, for 64-bit masks."""
    header = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = struct.pack("6I", effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
                       effective >> 32, permitted >> 32, inheritable >> 32)
    return ctypes.create_string_buffer(header, len(header)), ctypes.create_string_buffer(data, len(data))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread (64-bit masks)."""
    hbuf, dbuf = capset_data(effective, permitted, inheritable)
    _check(_libc.capset(hbuf, dbuf), "capset")


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, ifreq))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
