"""Rootless mode: the whole dockyard process moves into a user namespace of its own.

A non-root user's dockyard calls :func:`enter_user_namespace` first thing (before any thread starts):
the process unshares a user namespace, a forked helper maps it with ``newuidmap``/``newgidmap`` (the
user is uid 0 inside, uid N is subordinate id base + N - 1, as Podman and BuildKit do), and then it
unshares a mount namespace. The helper stays outside to start pasta for the private network
(:mod:`dockyard.executor.outside`). From there on every store operation, unpack, RUN step and commit sees the
image's own owners: a layer written here holds uid 0 / 1000 exactly as one written by real root.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from dockyard.errors import ExecutionError
from dockyard.executor import mount as m
from dockyard.executor import outside
from dockyard.record import record

ROOTLESS_ENV = "DOCKYARD_ROOTLESS_UID"
"""Set (to the real uid) in a process that entered its user namespace; children inherit it."""


@record(frozen=True, slots=True)
class IdRange:
    """One line of /etc/subuid or /etc/subgid: ``count`` ids from ``start``."""

    start: int
    count: int


def sub_ids(path: str | os.PathLike[str], user: str, uid: int) -> IdRange | None:
    """The first range of ``user`` (by name or number) in a subuid/subgid file, or None."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            return IdRange(start, count)
    return None


def in_rootless_namespace() -> bool:
    """Whether this process runs in the user namespace :func:`enter_user_namespace` made."""
    return bool(os.environ.get(ROOTLESS_ENV))


def _fix(command: str) -> str:
    return f"(fix: {command})"


def _ranges(user: str, uid: int, gid: int) -> tuple[IdRange, IdRange]:
    subuid = sub_ids("/etc/subuid", user, uid)
    subgid = sub_ids("/etc/subgid", user, uid)
    add = f"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
    if subuid is None:
        raise ExecutionError(f"rootless: no subordinate uid range for user {user} in /etc/subuid {_fix(add)}")
    if subgid is None:
        raise ExecutionError(f"rootless: no subordinate gid range for user {user} in /etc/subgid {_fix(add)}")
    return subuid, subgid


def _tools() -> tuple[str, str]:
    found = [shutil.which(name) for name in ("newuidmap", "newgidmap")]
    for name, path in zip(("newuidmap", "newgidmap"), found, strict=True):
        if path is None:
            raise ExecutionError(f"rootless: {name} not found on PATH {_fix('sudo apt-get install uidmap')}")
    return found[0] or "", found[1] or ""


def _unshare_user() -> None:
    try:
        m.unshare(m.CLONE_NEWUSER)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # the one other cause: threads (a program embedding dockyard)
            raise ExecutionError("rootless: cannot create a user namespace in a process that already runs "
                                 "threads: enter it first thing (dockyard's command line does)") from None
        raise ExecutionError(
            f"rootless: cannot create a user namespace ({exc.strerror}): user namespaces are disabled "
            f"{_fix('sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=28633')}"
        ) from None


def _map_ids(pid: int, uid: int, gid: int, subuid: IdRange, subgid: IdRange, tools: tuple[str, str]) -> None:
    """Run newuidmap and newgidmap on ``pid``: 0 -> the user, 1.. -> the subordinate range."""
    for tool, own, sub, what in ((tools[0], uid, subuid, "uid"), (tools[1], gid, subgid, "gid")):
        args = [tool, str(pid), "0", str(own), "1", "1", str(sub.start), str(sub.count)]
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            detail = lines[-1] if lines else f"exit {done.returncode}"
            raise ExecutionError(f"rootless: {os.path.basename(tool)} failed: {detail} (check the {what} "
                                 f"range in /etc/sub{what}, and that {tool} is setuid root)")


def enter_user_namespace() -> None:
    """Move this (single-threaded) process into a new user and mount namespace, mapped as above.

    Does nothing for root or when already inside. Raises :class:`ExecutionError` naming the missing
    piece (a subordinate range, ``newuidmap``, user namespaces) and the command that fixes it.
    """
    if os.geteuid() == 0:
        return
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    subuid, subgid = _ranges(user, uid, gid)
    tools = _tools()
    # The parent cannot map itself (newuidmap must run from outside the namespace), so a helper
    # forked before the unshare waits for the word, maps the parent, and reports how it went. It then
    # stays outside to start pasta for the private network (see executor.outside).
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    ours, its = outside.channel()
    parent = os.getpid()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        os.close(done_r)
        ours.close()
        try:
            if os.read(go_r, 1) == b"1":
                _map_ids(parent, uid, gid, subuid, subgid, tools)
                os.write(done_w, b"ok")
                os.close(done_w)
                outside.serve(its)
        except ExecutionError as exc:
            os.write(done_w, exc.message.encode())
        finally:
            os._exit(1)
    os.close(go_r)
    os.close(done_w)
    its.close()
    answer = ""
    try:
        try:
            _unshare_user()
        except BaseException:
            os.write(go_w, b"0")
            raise
        os.write(go_w, b"1")
        answer = os.read(done_r, 4096).decode()
    finally:
        os.close(go_w)
        os.close(done_r)
        if answer != "ok":
            os.waitpid(helper, 0)
    if answer != "ok":
        raise ExecutionError(answer or "rootless: the id-mapping helper died")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.setgroups([])
    m.unshare(m.CLONE_NEWNS)
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    os.environ[ROOTLESS_ENV] = str(uid)
    os.environ[outside.FD_ENV] = str(ours.detach())  # close-on-exec: no container inherits it
