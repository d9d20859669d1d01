"""``exec``: another process in a running container, through :mod:`dockyard.executor.enter`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import dockyard
from dockyard.containers import cgroups
from dockyard.containers.process import apply_ulimits
from dockyard.containers.store import ContainerStore, monitor_alive
from dockyard.errors import Conflict, ExecutionError
from dockyard.executor.enter import BOOTSTRAP
from dockyard.executor.spec import ProcessSpec
from dockyard.executor.user import start_error


def exec_in(root: Path, ref: str, args: Sequence[str], *, env: Sequence[str] = (), user: str | None = None,
            workdir: str = "", tty: bool = False, interactive: bool = False,
            stdin: int = 0, stdout: int = 1, stderr: int = 2, timeout: float | None = None) -> int:
    """Run ``args`` in container ``ref`` with its environment (plus ``env``), user and working directory
    unless given; the program's exit status. Raises :class:`Conflict` when the container is not running,
    :class:`ExecutionError` (125/126/127) when the program cannot start, ``TimeoutError`` when it ran
    longer than ``timeout`` seconds (it is killed: the helper's death kills it)."""
    if not args:
        raise ExecutionError("No command specified")
    rec = ContainerStore(root).find(ref)
    st = rec.state["State"]
    if not st["Running"] or not monitor_alive(rec.state):
        raise Conflict(f"Container {rec.id} is not running")
    if st["Paused"]:
        raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
    spec = ProcessSpec.from_json(rec.config["Spec"])
    req = {"pid": int(st["Pid"]), "args": list(args), "env": [*spec.env, *env],
           "user": spec.user if user is None else user, "cwd": workdir or spec.cwd, "tty": tty,
           "interactive": interactive, "seccomp": spec.seccomp, "cgroups": cgroups.existing(rec.id)}
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    req["errfd"] = err_w  # the helper reports a failure to start there
    try:
        ulimits = rec.config["HostConfig"].get("Ulimits") or []
        # The container's --ulimit values hold for what is exec'd in it too, as under Docker.
        proc = subprocess.Popen([sys.executable, "-I", "-c", BOOTSTRAP.format(path=src), json.dumps(req)],
                                stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(err_w,), close_fds=True,
                                preexec_fn=(lambda: apply_ulimits(ulimits)) if ulimits else None)
    except OSError as exc:
        os.close(err_r)
        os.close(err_w)
        raise ExecutionError(f"exec failed: {exc.strerror}") from None
    os.close(err_w)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        os.close(err_r)
        raise TimeoutError(f"exec ran longer than {timeout} s") from None
    with os.fdopen(err_r, "rb") as f:
        message = f.read().decode("utf-8", "replace").strip()
    if message:
        raise start_error(message, code if code in (125, 126, 127) else 125)
    return code
