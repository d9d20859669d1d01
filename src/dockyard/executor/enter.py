"""Run another process in a running container (``exec``): join its namespaces, then drop to its rules.

Started as ``python -I -c <bootstrap> REQUEST-JSON`` (a small, single-threaded process: setns of a mount
namespace needs that) with the caller's stdio and an error pipe (``errfd``). It opens the container's
namespaces from its first process (``/proc/PID/ns``), compiles the seccomp filter while the host's
libseccomp is reachable, joins ipc, uts, net, pid and mount namespaces and forks (a pid namespace
applies to children). The child resolves the user and program inside the container, takes the same
capabilities, no_new_privs and seccomp filter as the first process, and execs. With ``tty`` the child
gets a terminal from the container's /dev/pts and this process pumps between it and its own stdio.
The exit status is the program's (128+n for signal n); a failure to start writes one line on ``errfd`` and
exits 126 (cannot run), 127 (not found) or 125.

Rootless: a detached container lives in the user namespace its ``run -d`` made, which a later dockyard's
own fresh namespace could never enter (a sibling namespace has no capability over it). So ``exec`` does
not make one: its CLI stays in the host's user namespace, and this process joins the container's user
namespace first. The kernel lets it: a process whose euid owns a user namespace, in that namespace's
parent, has every capability in it and in the namespaces it owns. This was chosen over Podman's
long-lived per-user "pause process" that every command joins: nothing to keep alive or find again
through a pid file, and the container's own first process names the namespace. Only a namespace owned
by this process's euid is joined (``NS_GET_OWNER_UID``), so a stale pid never leads into someone else's.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import sys
import termios
from typing import Any, NoReturn

from dockyard.errors import DockyardError, ExecutionError
from dockyard.executor import mount as m
from dockyard.executor import seccomp
from dockyard.executor.fdpass import cloexec_above_stdio
from dockyard.executor.spec import DEFAULT_PATH, env_dict
from dockyard.executor.user import lookup_path, resolve_user, start_error
from dockyard.userns import foreign_namespace_owner

BOOTSTRAP = ("import sys; sys.path.insert(0, {path!r}); "
             "from dockyard.executor.enter import main; main()")
_NAMESPACES = (("ipc", m.CLONE_NEWIPC), ("uts", m.CLONE_NEWUTS), ("net", m.CLONE_NEWNET),
               ("pid", m.CLONE_NEWPID), ("mnt", m.CLONE_NEWNS))


_HELPER_IGNORES = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


_error_fd = [3]  # where a failure to start is reported: the request's ``errfd``


def _fail(message: str, code: int) -> NoReturn:
    try:
        os.write(_error_fd[0], message.encode() + b"\n")
    except OSError:
        pass
    os._exit(code)


def _child(req: dict[str, Any], program_filter: bytes | None, slave: int | None) -> NoReturn:
    try:
        m.prctl(m.PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in _HELPER_IGNORES:
            signal.signal(sig, signal.SIG_DFL)  # an ignored signal would stay ignored past exec
        user = resolve_user("/", str(req.get("user") or ""))
        env = env_dict(list(req["env"]))
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", user.home)
        cwd = str(req.get("cwd") or "/")
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise start_error(f"chdir to cwd (\"{cwd}\") set in config.json failed: "
                              f"{(exc.strerror or '').lower()}", 126) from None
        if slave is not None:
            os.setsid()
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        elif not req.get("interactive"):
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
        m.drop_bounding_set(m.DEFAULT_CAP_MASK)
        os.setgroups(user.all_groups([], primary=True))
        os.setgid(user.gid)
        os.setuid(user.uid)
        if user.uid == 0:
            m.capset(m.DEFAULT_CAP_MASK, m.DEFAULT_CAP_MASK, 0)
        m.prctl(m.PR_SET_NO_NEW_PRIVS, 1)
        args = list(req["args"])
        program = lookup_path("/", args[0], env["PATH"])
        cloexec_above_stdio()  # the error pipe and the rest must not outlive the exec
        if program_filter is not None:
            seccomp.install(program_filter)
        try:
            os.execve(program, args, env)
        except OSError as exc:
            code = 127 if exc.errno == errno.ENOENT else 126
            raise start_error(f'exec: "{args[0]}": {(exc.strerror or "").lower()}', code) from None
    except ExecutionError as exc:
        _fail(exc.message, exc.exit_code)
    except DockyardError as exc:
        _fail(exc.message, 126)
    except OSError as exc:
        _fail(f"exec failed: {exc.strerror}", 126)
    except BaseException as exc:
        _fail(f"exec failed: {type(exc).__name__}: {exc}", 125)
    os._exit(125)


def _copy_size(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _pump(master: int, pid: int, interactive: bool) -> int:
    """Copy stdin to the terminal and the terminal to stdout until the child ends and its output is read."""
    inputs = [master] + ([0] if interactive else [])
    status: int | None = None
    while True:
        if status is None:
            done, status_raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_raw
        try:
            ready, _, _ = select.select(inputs, [], [], 0.05)
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""  # EIO: every holder of the terminal's other side is gone
            if not data:
                break
            os.write(1, data)
        elif status is not None:
            break
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(master, data)
            else:
                inputs.remove(0)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return status


def _join_user_namespace(pid: int) -> None:
    """Join the user namespace of process ``pid`` if it is not ours and this user owns it (rootless)."""
    try:
        found = foreign_namespace_owner(pid)
    except OSError:
        _fail(f"container is not running (process {pid} is gone)", 125)
    if found is None:
        return  # root's containers, or a caller already inside
    fd, owner = found
    try:
        if owner != os.geteuid():
            _fail(f"the user namespace of process {pid} belongs to uid {owner}, not to this user", 125)
        try:
            m.setns(fd, m.CLONE_NEWUSER)
        except OSError as exc:
            _fail(f"cannot join the user namespace of the container ({exc.strerror}): run exec from the "
                  "host's user namespace as the user who started the container", 125)
    finally:
        os.close(fd)


def enter(req: dict[str, Any]) -> int:
    """Join the container of ``req["pid"]`` and run ``req["args"]``; the exit status."""
    pid = int(req["pid"])
    _error_fd[0] = int(req.get("errfd", 3))
    try:
        fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), kind)
               for name, kind in _NAMESPACES]
    except OSError:
        _fail(f"container is not running (process {pid} is gone)", 125)
    _join_user_namespace(pid)
    try:
        program_filter = seccomp.program_for(req.get("seccomp"))
    except DockyardError as exc:
        _fail(exc.message, 125)
    for cgroup in req.get("cgroups", ()):  # counted with the container (while host paths are in view)
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write("0")
        except OSError:
            pass
    for fd, kind in fds:
        m.setns(fd, kind)
        os.close(fd)
    slave = master = None
    if req.get("tty"):
        master, slave = os.openpty()  # the container's /dev/ptmx (its devpts): ``tty`` inside names it
        if os.isatty(0):
            _copy_size(0, slave)
            signal.signal(signal.SIGWINCH, lambda *_: _copy_size(0, master) if master is not None else None)
    child = os.fork()
    if child == 0:
        if master is not None:
            os.close(master)
        _child(req, program_filter, slave)
    if master is None:
        _, status = os.waitpid(child, 0)
    else:
        assert slave is not None
        os.close(slave)
        status = _pump(master, child, bool(req.get("interactive")))
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main() -> None:
    """Entry point: the request is ``argv[1]`` (JSON); exits with the program's status."""
    for sig in _HELPER_IGNORES:  # the terminal's Ctrl-C is the program's business; we wait for it
        signal.signal(sig, signal.SIG_IGN)
    try:
        code = enter(json.loads(sys.argv[1]))
    except OSError as exc:
        _fail(f"exec failed: {exc.strerror}", 125)
    sys.stdout.flush()
    os._exit(code)
