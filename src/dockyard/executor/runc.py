"""The runc backend: the same container as the built-in executor, as an OCI bundle run by ``runc run``.

The rootfs and helper mounts are made on the host under the run directory and removed afterwards (or
by :func:`~dockyard.executor.cleanup.cleanup_stale` if this process dies first).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.errors import ExecutionError
from dockyard.executor import mount as m
from dockyard.executor import seccomp
from dockyard.executor.base import (
    Deadline,
    OnStart,
    Output,
    close_all,
    new_run_dir,
    output_fds,
    pump,
    read_ready,
    require_root,
)
from dockyard.executor.network import Networks, resolv_conf
from dockyard.executor.rootfs import (
    READONLY_PATHS,
    discard_overlay,
    masked_paths,
    mount_rootfs,
    mount_targets,
    secret_file,
    write_files,
)
from dockyard.executor.spec import DEFAULT_PATH, ProcessSpec, Rootfs, check_rootfs, env_dict, rootfs_to_json
from dockyard.executor.user import bad_cwd, lookup_path, resolve_user, secure_join, start_error

_NOEXEC = ["nosuid", "noexec", "nodev"]
_STANDARD_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": _NOEXEC},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": [*_NOEXEC, "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": _NOEXEC},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOEXEC, "ro"]},
]


class RuncExecutor:
    """Runs each process with ``runc run`` (state under ``state_dir/runc``); see :class:`Executor`."""

    def __init__(self, state_dir: Path, runc: str = "runc") -> None:
        self.state_dir = Path(state_dir)
        found = shutil.which(runc)
        if found is None:
            raise ExecutionError(f"runtime {runc!r} not found in PATH")
        self.runc = found
        self._networks = Networks(self.state_dir)

    def __enter__(self) -> RuncExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the shared private network; every run is its own runc process."""
        self._networks.close()

    def _config(self, spec: ProcessSpec, root: str, scratch: str, netns: str | None) -> dict[str, Any]:
        user = resolve_user(root, spec.user)
        env = env_dict(spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", user.home)
        cwd = secure_join(root, spec.cwd)
        try:
            os.makedirs(cwd, 0o755, exist_ok=True)
        except OSError as exc:
            raise bad_cwd(spec.cwd, exc)
        if not os.path.isdir(cwd):
            raise start_error(f'cannot change to working directory "{spec.cwd}": not a directory', 126)
        lookup_path(root, spec.args[0], env["PATH"])
        mounts = list(_STANDARD_MOUNTS)
        for target, source in write_files(scratch, spec, resolv_conf(spec)).items():
            mounts.append({"destination": target, "type": "bind", "source": source, "options": ["rbind"]})
        for index, mnt in enumerate(spec.mounts):
            if mnt.type == "tmpfs":
                options = ["nosuid", "nodev", "mode=1777"] + ([f"size={mnt.size}"] if mnt.size else [])
                mounts.append({"destination": mnt.target, "type": "tmpfs", "source": "tmpfs",
                               "options": options})
                continue
            readonly = mnt.readonly
            if mnt.type == "secret":
                source, readonly = secret_file(scratch, index, mnt), True
            elif mnt.discard_writes and os.path.isdir(mnt.source):
                source = discard_overlay(scratch, index, mnt.source)
            elif mnt.discard_writes:
                source = os.path.join(scratch, f"discard{index}")
                shutil.copy2(mnt.source, source)
            else:
                if not os.path.exists(mnt.source):
                    raise start_error(f"bind source path does not exist: {mnt.source}")
                source = mnt.source
            mounts.append({"destination": mnt.target, "type": "bind", "source": source,
                           "options": ["rbind", "ro" if readonly else "rw"]})
        caps = sorted(m.DEFAULT_CAPS)
        oci_filter = seccomp.oci_seccomp(spec.seccomp, caps)
        seccomp_config = {} if oci_filter is None else {"seccomp": oci_filter}
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        if spec.network == "none":
            namespaces.append({"type": "network"})
        elif netns is not None:
            namespaces.append({"type": "network", "path": netns})
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": user.uid, "gid": user.gid,
                         "additionalGids": user.all_groups(spec.extra_groups,
                                                           primary=spec.primary_group_in_groups)},
                "args": list(spec.args),
                "env": [f"{k}={v}" for k, v in env.items()],
                "cwd": spec.cwd,
                "capabilities": {"bounding": caps, "effective": caps if user.uid == 0 else [],
                                 "permitted": caps if user.uid == 0 else []},
                "noNewPrivileges": True,
            },
            "root": {"path": root, "readonly": False},
            "hostname": spec.hostname,
            "mounts": mounts,
            "linux": {"namespaces": namespaces, "maskedPaths": masked_paths(),
                      "readonlyPaths": list(READONLY_PATHS), **seccomp_config},
        }

    def run(self, spec: ProcessSpec, rootfs: Rootfs, *, stdout: Output = None, stderr: Output = None,
            stdin: int | None = None, timeout: float | None = None,
            cancel: threading.Event | None = None, on_start: OnStart | None = None) -> int:
        """Run ``spec`` on ``rootfs`` with runc; see :class:`~dockyard.executor.base.Executor`."""
        if spec.tty:
            raise ExecutionError("a TTY is not supported with the runc runtime; use the built-in one")
        require_root("the runc executor")
        check_rootfs(rootfs)
        rundir = new_run_dir(self.state_dir)
        root, scratch = str(rundir / "rootfs"), str(rundir / "scratch")
        runc_root = str(self.state_dir / "runc")
        mounted: list[str] = []
        still_open: set[int] = set()
        proc: subprocess.Popen[bytes] | None = None
        network = contextlib.ExitStack()
        try:
            netns = network.enter_context(self._networks.namespace(spec))
            m.mount("tmpfs", scratch, "tmpfs", m.MS_NOSUID | m.MS_NODEV, "mode=700")
            mounted.append(scratch)
            mount_rootfs(rootfs_to_json(rootfs), root, scratch, mount_targets(spec), allow_chdir=False)
            mounted.append(root)
            (rundir / "config.json").write_text(json.dumps(self._config(spec, root, scratch, netns)))
            child_out, readers, to_close = output_fds(stdout, stderr)
            still_open.update(readers)
            try:
                proc = subprocess.Popen(
                    [self.runc, "--root", runc_root, "run", "--bundle", str(rundir), rundir.name],
                    stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=child_out[0],
                    stderr=child_out[1], start_new_session=True)
            finally:
                for fd in to_close:
                    os.close(fd)
            if on_start is not None:
                on_start(_Handle(self, runc_root, rundir.name))
            return self._wait(proc, rundir.name, runc_root, readers, still_open, Deadline(timeout, cancel))
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise ExecutionError(f"container setup failed: {exc.strerror}{where}")
        finally:
            close_all(still_open)
            if proc is not None and proc.poll() is None:
                self._kill(runc_root, rundir.name)
                proc.wait()
            if (Path(runc_root) / rundir.name).exists():
                subprocess.run([self.runc, "--root", runc_root, "delete", "--force", rundir.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            for point in reversed(mounted):
                m.umount2(point, m.MNT_DETACH)
            shutil.rmtree(rundir, ignore_errors=True)

    def _kill(self, runc_root: str, name: str, sig: int = 9) -> None:
        subprocess.run([self.runc, "--root", runc_root, "kill", name, str(sig)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def _wait(self, proc: subprocess.Popen[bytes], name: str, runc_root: str, readers: dict[int, Any],
              still_open: set[int], deadline: Deadline) -> int:
        sel = selectors.DefaultSelector()
        pump(readers, sel)
        failure: BaseException | None = None
        last_kill = 0.0
        try:
            while True:
                for key, _ in sel.select(deadline.poll_interval() if sel.get_map() else 0.02):
                    read_ready(key.fd, key.data, sel, still_open)
                if failure is None:
                    failure = deadline.expired()
                if failure is not None and proc.poll() is None and time.monotonic() - last_kill > 0.25:
                    # Again and again: a kill before runc has created the container finds nothing.
                    self._kill(runc_root, name)
                    last_kill = time.monotonic()
                if not sel.get_map() and proc.poll() is not None:
                    break
        finally:
            sel.close()
            close_all(still_open)
        code = proc.wait()
        if failure is not None:
            raise failure
        return code


class _Handle:
    def __init__(self, executor: RuncExecutor, runc_root: str, name: str) -> None:
        self._args = (executor, runc_root, name)

    def signal(self, sig: int) -> None:
        executor, runc_root, name = self._args
        executor._kill(runc_root, name, sig)

    def resize(self, rows: int, cols: int) -> None:
        pass  # runc runs have no terminal here
