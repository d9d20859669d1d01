"""Remove what runs of killed processes left behind: host mounts, runc containers, pasta processes,
run directories."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from dockyard.executor import mount as m
from dockyard.executor.base import run_dir_owner_alive
from dockyard.executor.network import NET_DIR, PID_FILE


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_under(prefix: Path) -> list[str]:
    """Mount points in this mount namespace at or below ``prefix``, deepest first."""
    base = os.path.realpath(prefix)
    found: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def _stop_pasta(netdir: Path) -> None:
    """Stop the pasta of a private network whose owner died (it would serve the namespace forever):
    the one its pid file names, and any whose ``--pid`` is that file (an owner killed while pasta was
    starting leaves one that has not written it yet, or writes it after this looked)."""
    pid_file = str(netdir / PID_FILE).encode()
    named = -1
    with contextlib.suppress(OSError, ValueError):
        named = int((netdir / PID_FILE).read_text())
    pids = {named}
    with contextlib.suppress(OSError):
        pids.update(int(name) for name in os.listdir("/proc") if name.isdigit())
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        # Its name (comm) is passt.avx2 after it re-executes itself; its argv[0] is kept.
        if os.path.basename(argv[0]) == b"pasta" and (pid == named or pid_file in argv):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def cleanup_stale(state_dir: Path, runc: str = "runc") -> int:
    """Unmount and delete run directories under ``state_dir/runs`` whose owning process is gone, and
    stop the pasta processes of private networks (``state_dir/net``) such processes left; delete
    the stub layers (``state_dir/stubs``) they made.

    What live processes own is left alone, so it is safe while another dockyard works on the same
    store. Returns how many run and network directories were removed.
    """
    removed = 0
    for entry in _stale(Path(state_dir) / NET_DIR):
        _stop_pasta(entry)
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    for entry in _stale(Path(state_dir) / "stubs"):  # executors' stub layers (namespace.py): not counted
        shutil.rmtree(entry, ignore_errors=True)
    for entry in _stale(Path(state_dir) / "runs"):
        runc_root = Path(state_dir) / "runc"
        if (runc_root / entry.name).exists() and shutil.which(runc):
            subprocess.run([runc, "--root", str(runc_root), "delete", "--force", entry.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        for point in mounts_under(entry):
            try:
                m.umount2(point, m.MNT_DETACH)
            except OSError:
                pass
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _stale(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return [entry for entry in sorted(parent.iterdir()) if not run_dir_owner_alive(entry.name)]
