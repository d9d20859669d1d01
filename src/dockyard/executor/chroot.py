"""The chroot executor (``--isolation chroot``): for where namespaces and mounts are refused.

Inside an unprivileged container (Docker's default seccomp profile and capabilities) a RUN step cannot
have namespaces or an overlay mount; it can have a chroot (CAP_SYS_CHROOT is a default capability).
The layers are copied into the run directory by the copying snapshotter, the process runs chrooted
there as the image's user with Docker's capability bounding set and no_new_privs, and what it changed
is written into the upper directory in overlay form. What the namespace executor mounts is copied or
written in instead: /etc/hosts, /etc/resolv.conf, /etc/hostname, device nodes (where mknod is allowed),
secrets, tmpfs and bind mounts (a writable bind, such as a cache mount, is copied back after the run).
None of it reaches the layer. There is no /proc and no private pid or network namespace: processes the
step leaves behind in its process group are killed at its end, and ``network=none`` is not enforced.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from dockyard.errors import ExecutionError
from dockyard.executor.base import (
    Deadline,
    OnStart,
    Output,
    close_all,
    new_run_dir,
    output_fds,
    pump,
    read_ready,
)
from dockyard.executor.rootfs import host_resolv_conf, write_files
from dockyard.executor.spec import (
    DEFAULT_PATH,
    Mount,
    ProcessSpec,
    Rootfs,
    RootfsSpec,
    check_rootfs,
    env_dict,
)
from dockyard.executor.user import secure_join, start_error
from dockyard.snapshot.copying import CopiedTree

_BOOTSTRAP = ("import sys; sys.path.insert(0, {path!r}); "
              "from dockyard.executor.chroot_child import main; main()")
_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
            ("tty", 5, 0))


class ChrootExecutor:
    """Runs each process chrooted in a copy of its layers; see :class:`~dockyard.executor.base.Executor`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)

    def __enter__(self) -> ChrootExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def run(self, spec: ProcessSpec, rootfs: Rootfs, *, stdout: Output = None, stderr: Output = None,
            stdin: int | None = None, timeout: float | None = None,
            cancel: threading.Event | None = None, on_start: OnStart | None = None) -> int:
        """Run ``spec`` on a copy of ``rootfs``; its changes land in the upper directory."""
        if spec.tty:
            raise ExecutionError("a TTY is not supported with --isolation chroot")
        if not isinstance(rootfs, RootfsSpec):
            raise ExecutionError("--isolation chroot runs on image layers, not on a plain directory")
        check_rootfs(rootfs)
        rundir = new_run_dir(self.state_dir)
        root = str(rundir / "rootfs")
        try:
            tree = CopiedTree(root)
            tree.materialize([str(p) for p in reversed(rootfs.lowerdirs)])
            ignore = _populate(root, str(rundir / "scratch"), spec)
            tree.record()
            code = self._spawn(spec, root, stdout, stderr, stdin, Deadline(timeout, cancel), on_start)
            _copy_back(root, spec.mounts)
            tree.write_changes(rootfs.upperdir, ignore)
            return code
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise ExecutionError(f"container setup failed: {exc.strerror}{where}")
        finally:
            shutil.rmtree(rundir, ignore_errors=True)

    def _spawn(self, spec: ProcessSpec, root: str, stdout: Output, stderr: Output, stdin: int | None,
               deadline: Deadline, on_start: OnStart | None) -> int:
        env = env_dict(spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        req = {"root": root, "spec": spec.to_json(), "env": env}
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        child_out, readers, to_close = output_fds(stdout, stderr)
        still_open = {*readers, report_r}
        src = str(Path(__file__).resolve().parents[2])
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOTSTRAP.format(path=src), json.dumps(req),
                 str(report_w)], pass_fds=[report_w],
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=child_out[0], stderr=child_out[1], start_new_session=True)
        finally:
            os.close(report_w)
            for fd in to_close:
                os.close(fd)
        report: list[bytes] = []
        if on_start is not None:
            on_start(_Handle(proc))
        sel = selectors.DefaultSelector()
        pump({**readers, report_r: report.append}, sel)
        failure: BaseException | None = None
        try:
            while sel.get_map() or proc.poll() is None:
                for key, _ in sel.select(deadline.poll_interval() if sel.get_map() else 0.02):
                    read_ready(key.fd, key.data, sel, still_open)
                if failure is None:
                    failure = deadline.expired()
                    if failure is not None:
                        _kill_group(proc.pid)
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            sel.close()
            close_all(still_open)
            code = proc.wait()
            _kill_group(proc.pid)  # what the step left running in its session
        if failure is not None:
            raise failure
        if report:
            msg = json.loads(b"".join(report))
            raise start_error(str(msg["error"]), int(msg["code"]))
        return code


class _Handle:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(sig)

    def resize(self, rows: int, cols: int) -> None:
        pass


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stub(root: str, target: str, is_dir: bool) -> str:
    path = secure_join(root, target)
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    return os.path.relpath(path, root)


def _populate(root: str, scratch: str, spec: ProcessSpec) -> list[str]:
    """Put in what the namespace executor would mount; return the paths the layer must not see."""
    ignore = [_stub(root, "/proc", True), _stub(root, "/sys", True)]
    dev = secure_join(root, "/dev")
    ignore.append(_stub(root, "/dev", True))
    for name, major, minor in _DEVICES:
        with contextlib.suppress(OSError):  # no CAP_MKNOD: the step runs without that node
            if not os.path.lexists(os.path.join(dev, name)):
                os.mknod(os.path.join(dev, name), 0o666 | 0o020000, os.makedev(major, minor))
                os.chmod(os.path.join(dev, name), 0o666)
    for target, source in write_files(scratch, spec, host_resolv_conf()).items():
        ignore.append(_stub(root, target, False))
        shutil.copyfile(source, secure_join(root, target))
    for mnt in spec.mounts:
        ignore.append(_place(root, scratch, mnt))
    return ignore


def _place(root: str, scratch: str, mnt: Mount) -> str:
    if mnt.type == "tmpfs":
        return _stub(root, mnt.target, True)
    if mnt.type == "secret":
        rel = _stub(root, mnt.target, False)
        data = mnt.data
        if data is None:
            with open(mnt.source, "rb") as f:
                data = f.read()
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, mnt.uid, mnt.gid)
        os.chmod(path, mnt.mode)
        return rel
    if not os.path.exists(mnt.source):
        raise start_error(f"bind source path does not exist: {mnt.source}")
    if os.path.isdir(mnt.source):
        rel = _stub(root, mnt.target, True)
        shutil.copytree(mnt.source, os.path.join(root, rel), symlinks=True, dirs_exist_ok=True)
    else:
        rel = _stub(root, mnt.target, False)
        shutil.copy2(mnt.source, os.path.join(root, rel))
    return rel


def _copy_back(root: str, mounts: Sequence[Mount]) -> None:
    """Writable binds (cache mounts) get the run's changes, as a shared mount would have."""
    for mnt in mounts:
        if mnt.type != "bind" or mnt.readonly or mnt.discard_writes or not os.path.isdir(mnt.source):
            continue
        inside = secure_join(root, mnt.target)
        for name in os.listdir(mnt.source):
            path = os.path.join(mnt.source, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        shutil.copytree(inside, mnt.source, symlinks=True, dirs_exist_ok=True)

