"""Starting the built-in executor's helper process (the zygote), possibly ahead of its first use.

The helper's start-up (an interpreter, its imports, the seccomp program) takes about 0.1 s. A caller
that knows runs will follow (``build --no-cache``) calls :func:`start_early` before it imports the
build engine, so the helper starts while the engine loads; the
:class:`~dockyard.executor.namespace.NamespaceExecutor` opened later on the same state directory
adopts it with :func:`take`. A helper nobody adopts ends when this process does (its control socket
closes). This module imports only the standard library: it is loaded before the rest.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import dockyard

_BOOTSTRAP = ("import sys; sys.path.insert(0, {path!r}); "
              "from dockyard.executor.zygote import main; main()")

_lock = threading.Lock()
_started: dict[str, tuple[subprocess.Popen[bytes], socket.socket]] = {}


def spawn(state_dir: Path | None = None) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A new helper process and our end of its control socket; with ``state_dir`` (the executor's),
    its spares prepare each container's /proc, /dev and /sys ahead in ``state_dir/stage``."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    try:
        # -I -S: no site, no user paths; the zygote needs the stdlib and this package only. It reports
        # every failure on the run socket, so its own stdio goes nowhere (the library never prints).
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOTSTRAP.format(path=src), str(theirs.fileno()),
             *([] if state_dir is None else [str(state_dir / "stage")])],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def start_early(state_dir: Path) -> None:
    """Start the helper of the executor that will be opened on ``state_dir`` (root only: the executor
    needs it; a failure to start is left for the executor to report)."""
    if os.geteuid() != 0:
        return
    key = str(state_dir)
    with _lock:
        if key in _started:
            return
        try:
            _started[key] = spawn(state_dir)
        except OSError:
            pass


def take(state_dir: Path) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
    """The helper started early for ``state_dir``, if there is one and it still runs."""
    with _lock:
        found = _started.pop(str(state_dir), None)
    if found is not None and found[0].poll() is not None:
        found[1].close()
        return None
    return found
