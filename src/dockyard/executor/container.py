"""The container's first process: namespaces, mounts, pivot_root, user, capabilities, then exec.

Runs in a child of the zygote, pid 1 of a new pid namespace: :func:`prepare` while it waits as the
spare, :func:`container_main` once a request arrives. On any failure it reports one JSON message on
the run socket and exits with Docker's code (125 setup, 126 cannot run, 127 not found); on success the
socket closes at exec (it is close-on-exec).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import struct
import termios

from dockyard.errors import DockyardError, ExecutionError
from dockyard.executor import mount as m
from dockyard.executor import seccomp
from dockyard.executor.fdpass import cloexec_above_stdio
from dockyard.executor.rootfs import (
    READONLY_PATHS,
    discard_overlay,
    masked_paths,
    mount_rootfs,
    mount_targets,
    secret_file,
    write_files,
)
from dockyard.executor.spec import DEFAULT_PATH, ProcessSpec, env_dict
from dockyard.executor.user import bad_cwd, lookup_path, resolve_user, secure_join, start_error
from dockyard.userns import in_user_namespace

TYPE_CHECKING = False  # no typing at run time (see zygote.py)
if TYPE_CHECKING:
    from typing import Any, NoReturn

_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
            ("tty", 5, 0))
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
              ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_NOEXEC = m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC


def _setup_dev(root: str) -> None:
    dev = os.path.join(root, "dev")
    m.mount("tmpfs", dev, "tmpfs", m.MS_NOSUID | m.MS_STRICTATIME, "mode=755,size=65536k")
    old_umask = os.umask(0)  # device modes exactly as given
    try:
        for name, major, minor in _DEVICES:
            if in_user_namespace():
                # mknod of a real device is refused in a user namespace: bind the host's node, as
                # rootless runc does.
                os.close(os.open(os.path.join(dev, name), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
                m.mount(f"/dev/{name}", os.path.join(dev, name), None, m.MS_BIND)
            else:
                os.mknod(os.path.join(dev, name), 0o666 | 0o020000, os.makedev(major, minor))
    finally:
        os.umask(old_umask)
    for name, target in _DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    for sub in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(dev, sub), 0o755)
    m.mount("devpts", os.path.join(dev, "pts"), "devpts", m.MS_NOSUID | m.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5")
    m.mount("shm", os.path.join(dev, "shm"), "tmpfs", _NOEXEC, "mode=1777,size=65536k")
    m.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", _NOEXEC)


def _mount_sysfs(target: str) -> None:
    try:
        m.mount("sysfs", target, "sysfs", _NOEXEC | m.MS_RDONLY)
    except PermissionError:
        # In a user namespace sysfs needs a network namespace of its own; with the host's network
        # the host's /sys is bound read-only instead (what rootless runc does).
        if not in_user_namespace():
            raise
        m.mount("/sys", target, None, m.MS_BIND | m.MS_REC)
        m.mount(None, target, None, m.MS_REMOUNT | m.MS_BIND | m.MS_RDONLY | _NOEXEC)


def _protect_kernel_files(root: str, under: str = "/") -> None:
    """Docker's read-only and masked paths of ``root`` (those under ``under`` only)."""
    for path in READONLY_PATHS:
        full = root + path
        if path.startswith(under) and os.path.exists(full):
            m.mount(full, full, None, m.MS_BIND | m.MS_REC)
            m.mount(None, full, None, m.MS_REMOUNT | m.MS_BIND | m.MS_RDONLY | m.MS_NOSUID | m.MS_NODEV
                    | m.MS_NOEXEC)
    for path in _MASKED:
        full = root + path
        if not path.startswith(under):
            continue
        if os.path.isdir(full):
            m.mount("tmpfs", full, "tmpfs", m.MS_RDONLY, "size=0")
        elif os.path.exists(full):
            m.mount(root + "/dev/null", full, None, m.MS_BIND)


# The masked paths of this machine: the zygote lists them once (each container is forked from it).
_MASKED = masked_paths()
_KERNEL_TREES = ("proc", "dev", "sys")


def _stage_kernel_trees(stage: str) -> bool:
    """Mount /proc, /dev and /sys (with Docker's read-only and masked paths) under ``stage``, on a
    tmpfs of this process's own (private) mount namespace, while it waits as the spare: a request
    then only moves them into its root (:func:`_move_kernel_trees`). False if that failed (the
    request then mounts them itself).

    Each depends on nothing a request says: /proc on the pid namespace, /dev on nothing, /sys on the
    network namespace, which the spare has already (a request wanting another remounts it)."""
    try:
        m.mount("tmpfs", stage, "tmpfs", m.MS_NOSUID | m.MS_NODEV, "mode=700")
    except OSError:
        return False
    try:
        for name in _KERNEL_TREES:
            os.mkdir(os.path.join(stage, name), 0o755)
        m.mount("proc", os.path.join(stage, "proc"), "proc", _NOEXEC)
        _setup_dev(stage)
        _mount_sysfs(os.path.join(stage, "sys"))
        _protect_kernel_files(stage)
        return True
    except OSError:
        m.umount2(stage, m.MNT_DETACH)
        return False


def _move_kernel_trees(stage: str, root: str, fresh_sys: bool) -> None:
    """Move the staged /proc, /dev and /sys (their masks and read-only binds come along) into
    ``root``; ``fresh_sys``: mount /sys anew first (the network namespace changed since)."""
    if fresh_sys:
        sys_dir = os.path.join(stage, "sys")
        m.umount2(sys_dir, m.MNT_DETACH)
        _mount_sysfs(sys_dir)
        _protect_kernel_files(stage, "/sys/")
    for name in _KERNEL_TREES:
        m.mount(os.path.join(stage, name), secure_join(root, "/" + name), None, m.MS_MOVE)


def _bind(source: str, target: str, readonly: bool) -> None:
    m.mount(source, target, None, m.MS_BIND | m.MS_REC)
    if readonly:
        m.mount(None, target, None, m.MS_REMOUNT | m.MS_BIND | m.MS_RDONLY)


def _setup_mounts(root: str, scratch: str, spec: ProcessSpec, resolv_conf: str) -> None:
    m.mount("proc", os.path.join(root, "proc"), "proc", _NOEXEC)
    _setup_dev(root)
    _mount_sysfs(os.path.join(root, "sys"))
    _protect_kernel_files(root)
    _setup_given_mounts(root, scratch, spec, resolv_conf)


def _setup_given_mounts(root: str, scratch: str, spec: ProcessSpec, resolv_conf: str) -> None:
    for target, source in write_files(scratch, spec, resolv_conf).items():
        _bind(source, secure_join(root, target), False)
    for index, mnt in enumerate(spec.mounts):
        target = secure_join(root, mnt.target)
        if mnt.type == "tmpfs":
            data = "mode=1777" + (f",size={mnt.size}" if mnt.size else "")
            m.mount("tmpfs", target, "tmpfs", m.MS_NOSUID | m.MS_NODEV, data)
        elif mnt.type == "secret":
            _bind(secret_file(scratch, index, mnt), target, True)
        elif mnt.discard_writes:
            if os.path.isdir(mnt.source):
                _bind(discard_overlay(scratch, index, mnt.source), target, False)
            else:
                copy = os.path.join(scratch, f"discard{index}")
                import shutil  # this case only: the zygote (which every container is forked from) stays small

                shutil.copy2(mnt.source, copy)
                _bind(copy, target, False)
        else:
            if not os.path.exists(mnt.source):
                raise start_error(f"bind source path does not exist: {mnt.source}")
            _bind(mnt.source, target, mnt.readonly)


def _exec_env(spec: ProcessSpec, home: str) -> dict[str, str]:
    env = env_dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    return env


def _lend_mount_namespace(sock: socket.socket) -> None:
    # The last reference to a mount namespace tears it down inside an RCU grace period, which under load
    # takes milliseconds. The caller keeps a reference and drops it after it has the exit status, so the
    # container's exit (and the status) does not wait for the unmounts.
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        socket.send_fds(sock, [b'{"mountns": true}'], [fd], socket.MSG_NOSIGNAL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_console(sock: socket.socket, size: tuple[int, int] | None, uid: int) -> tuple[int, int, int]:
    """A pseudo-terminal from the container's own /dev/pts (after pivot_root, so ``tty`` inside names
    it); the master goes to the caller over the run socket, the slave becomes stdio."""
    master, slave = os.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    os.fchown(slave, uid, -1)  # the console belongs to the container's user, as runc does
    try:
        socket.send_fds(sock, [b'{"pty": true}'], [master], socket.MSG_NOSIGNAL)
    finally:
        os.close(master)
    return slave, slave, slave


def _join_network(path: str) -> None:
    # Before /sys is mounted: sysfs shows the interfaces of the namespace it is mounted from.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        m.setns(fd, m.CLONE_NEWNET)
    finally:
        os.close(fd)


def _setup_and_exec(req: dict[str, Any], sock: socket.socket, stdio: tuple[int, int, int],
                    host_net: int, stage: str | None) -> NoReturn:
    _lend_mount_namespace(sock)
    spec = ProcessSpec.from_json(req["spec"])
    # Compiled (or taken from the zygote's cache) while libseccomp is still reachable, before pivot_root.
    try:
        seccomp_program = seccomp.program_for(spec.seccomp)
    except DockyardError as exc:
        raise start_error(exc.message) from None
    for cgroup in spec.cgroups:  # while the host's /sys/fs/cgroup is in view; "0" is the writer
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0")
    rundir = req["rundir"]
    root, scratch = os.path.join(rundir, "rootfs"), os.path.join(rundir, "scratch")
    # The staged /sys shows the network namespace the spare is in: the one prepare() made, else the
    # zygote's.
    staged_net: str = "none" if host_net >= 0 else "host"
    if spec.network == "none":
        if host_net < 0:  # else prepare() made it
            m.unshare(m.CLONE_NEWNET)
            m.loopback_up()
    elif spec.network == "host" and host_net >= 0:
        m.setns(host_net, m.CLONE_NEWNET)  # prepare() guessed wrong: back to the zygote's network
    if host_net >= 0:
        os.close(host_net)
    if spec.network == "private":
        _join_network(req["netns"])
    if stage is not None:
        scratch = stage  # a tmpfs of this mount namespace already (mode 700, nosuid, nodev)
    else:
        m.mount("tmpfs", scratch, "tmpfs", m.MS_NOSUID | m.MS_NODEV, "mode=700")
    mount_rootfs(req["rootfs"], root, scratch, mount_targets(spec), allow_chdir=True)
    if stage is not None:
        _move_kernel_trees(stage, root, fresh_sys=spec.network != staged_net)
        _setup_given_mounts(root, scratch, spec, req["resolv_conf"])
    else:
        _setup_mounts(root, scratch, spec, req["resolv_conf"])
    m.sethostname(spec.hostname)
    os.chdir(root)
    m.pivot_root(".", ".")
    m.umount2(".", m.MNT_DETACH)
    os.chdir("/")

    user = resolve_user("/", spec.user)
    env = _exec_env(spec, user.home)
    try:
        os.makedirs(spec.cwd, 0o755, exist_ok=True)
        os.chdir(spec.cwd)
    except OSError as exc:
        raise bad_cwd(spec.cwd, exc)

    if spec.tty:
        stdio = _open_console(sock, spec.console_size, user.uid)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    if spec.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: the pty becomes the controlling terminal
    os.setgroups(user.all_groups(spec.extra_groups, primary=spec.primary_group_in_groups))
    os.setgid(user.gid)
    os.setuid(user.uid)
    if user.uid == 0:
        m.capset(m.DEFAULT_CAP_MASK, m.DEFAULT_CAP_MASK, 0)
    m.prctl(m.PR_SET_NO_NEW_PRIVS, 1)
    m.prctl(m.PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which would clear it
    cloexec_above_stdio()
    program = lookup_path("/", spec.args[0], env["PATH"])
    if seccomp_program is not None:
        seccomp.install(seccomp_program)  # last: nothing of ours runs under the filter but execve
    try:
        os.execve(program, list(spec.args), env)
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        raise start_error(f'exec: "{spec.args[0]}": {(exc.strerror or "").lower()}', code)


def prepare(no_network: bool = False, stage: str | None = None) -> tuple[int, str | None]:
    """What does not depend on the request, done while the process waits as a spare: own session,
    new mount, uts and ipc namespaces, mounts private (nothing leaks to the host), the capability
    bounding set Docker's defaults (it limits only what the exec gains: the set-up keeps its own
    effective capabilities) and no ambient capabilities.

    With ``no_network`` (the request will likely be ``network=none``) also a new network namespace
    with ``lo`` up; then the zygote's network namespace is returned (a file descriptor) for a request
    that wants another network, else -1. With ``stage`` (an empty directory) the container's /proc,
    /dev and /sys are mounted there, ready to move into its root: ``stage``, else None, is returned
    with the file descriptor."""
    m.prctl(m.PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote died: so do we
    os.setsid()
    m.unshare(m.CLONE_NEWNS | m.CLONE_NEWUTS | m.CLONE_NEWIPC)
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    m.drop_bounding_set(m.DEFAULT_CAP_MASK)
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)  # ignored signals would survive exec
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    host_net = -1
    if no_network:
        host_net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            m.unshare(m.CLONE_NEWNET)
            m.loopback_up()
        except BaseException:
            os.close(host_net)
            raise
    return host_net, (stage if stage is not None and _stage_kernel_trees(stage) else None)


def report(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one JSON message on the run socket, ignoring a reader that went away."""
    try:
        sock.send(json.dumps(message).encode(), socket.MSG_NOSIGNAL)
    except OSError:
        pass


def container_main(req: dict[str, Any], sock: socket.socket, stdio: tuple[int, int, int],
                   host_net: int = -1, stage: str | None = None) -> NoReturn:
    """Set up and exec, in a process where :func:`prepare` ran (the bounding set is dropped there); on
    failure report ``{"error", "code"}`` and exit with that code. ``host_net`` and ``stage``: what
    :func:`prepare` returned."""
    code = 125
    try:
        _setup_and_exec(req, sock, stdio, host_net, stage)
    except ExecutionError as exc:
        code = exc.exit_code
        report(sock, {"error": exc.message, "code": code})
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        report(sock, {"error": f"container setup failed: {exc.strerror}{where}", "code": code})
    except BaseException as exc:
        report(sock, {"error": f"container setup failed: {type(exc).__name__}: {exc}", "code": code})
    os._exit(code)
