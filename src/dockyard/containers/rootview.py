"""A container's filesystem as one directory, for ``cp``, ``export`` and the first-use copy of volumes.

A running container's is ``/proc/PID/root`` (its own mounts, volumes included). A stopped one's is
mounted in a forked child that has a mount namespace of its own: the overlay of the image's layers and
the container's writable layer (read-only, or writable for ``cp`` into it), with its volumes bound in.
The mounts die with the child, so nothing is left mounted whatever happens to the caller.

Paths inside the view must still be resolved with :func:`dockyard.fs.walk.secure_join` or
:class:`dockyard.archive.apply.SafeRoot`: the kernel would follow an absolute symlink of the container
to the host's root.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dockyard.containers.store import LEASE_TTL, Record, monitor_alive
from dockyard.errors import DockyardError, ExecutionError
from dockyard.executor import outside
from dockyard.executor.rootless import in_rootless_namespace
from dockyard.executor.spec import RootfsSpec

T = TypeVar("T")


def rootfs_spec(root: Path, rec: Record) -> RootfsSpec:
    """The overlay of ``rec``: its image's layers (unpacked if needed, kept by its lease) under its
    writable layer."""
    from dockyard.imageops import Store
    from dockyard.imageops.unpack import unpack_layers

    store = Store(root)
    try:
        lease = store.lease(ttl=LEASE_TTL, lease_id=f"container-{rec.id}")
        lowers = unpack_layers(store, list(rec.config["DiffIds"]), lease=lease)
    finally:
        store.close()
    upper, work = rec.path / "rootfs" / "upper", rec.path / "rootfs" / "work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    if not lowers:
        empty = rec.path / "rootfs" / "empty"
        empty.mkdir(exist_ok=True)
        lowers = [empty]
    return RootfsSpec(lowerdirs=list(reversed(lowers)), upperdir=upper, workdir=work)


def running_root(rec: Record) -> str | None:
    """``/proc/PID/root`` of a running container, else None."""
    st = rec.state["State"]
    if st["Running"] and monitor_alive(rec.state) and int(st["Pid"]):
        path = f"/proc/{int(st['Pid'])}/root"
        if os.path.isdir(path):
            return path
    return None


def in_view(root: Path, rec: Record, action: Callable[[str], T], *, writable: bool = False,
            volumes: bool = True) -> T:
    """``action(path)`` on the container's filesystem; its result (or its DockyardError) comes back.
    ``volumes=False`` leaves the volumes out (``export``)."""
    live = running_root(rec) if volumes else None
    if live is not None:
        return action(live)
    if volumes and in_rootless_namespace() and rec.state["State"]["Running"] and monitor_alive(rec.state):
        # Rootless, a process of a uid other than 0 started by another dockyard is out of this one's
        # reach (a sibling user namespace): the helper outside, the namespace's owner, opens its root.
        fd = outside.open_root(int(rec.state["State"]["Pid"]))
        if fd is not None:
            try:
                return action(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
    spec = rootfs_spec(root, rec)
    target = rec.path / f"view.{os.getpid()}"
    target.mkdir(exist_ok=True)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_fd)
        code = 0
        try:
            _mount(spec, str(target), writable, rec.config.get("Mounts") or [] if volumes else [])
            outcome: tuple[str, Any] = ("ok", action(str(target)))
        except DockyardError as exc:
            outcome = ("error", (type(exc), exc.message))
        except OSError as exc:
            outcome = ("error", (ExecutionError, f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")))
        except BaseException as exc:  # any failure must reach the parent as one line
            outcome = ("error", (ExecutionError, f"{type(exc).__name__}: {exc}"))
            code = 1
        try:
            with os.fdopen(write_fd, "wb") as f:
                pickle.dump(outcome, f)
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    shutil.rmtree(target, ignore_errors=True)
    if not data:
        raise ExecutionError("the container's filesystem could not be read")
    kind, value = pickle.loads(data)  # our own child's answer
    if kind == "error":
        cls, message = value
        try:
            error = cls(message)
        except TypeError:  # an error class with other arguments: the message is what matters
            error = DockyardError(message)
        raise error
    result: T = value
    return result


def _mount(spec: RootfsSpec, target: str, writable: bool, mounts: list[dict[str, Any]]) -> None:
    from dockyard.executor import mount as m
    from dockyard.executor.rootfs import _mount_overlay
    from dockyard.fs.walk import secure_join

    m.unshare(m.CLONE_NEWNS)
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    lowers = [str(p) for p in spec.lowerdirs]
    if writable:
        _mount_overlay(target, lowers, str(spec.upperdir), str(spec.workdir), True)
    else:
        _mount_overlay(target, lowers, None, None, True, str(spec.upperdir))
    for mnt in mounts:
        where = secure_join(target, mnt["Destination"])
        if os.path.isdir(where) and not os.path.islink(where):
            m.mount(mnt["Source"], where, None, m.MS_BIND)
