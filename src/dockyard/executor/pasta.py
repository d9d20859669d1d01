"""Starting ``pasta`` (Debian package ``passt``) for a network namespace: its command line and its start.

Shared by the private network of a root process (:mod:`dockyard.executor.network`) and by the helper
that stays outside the user namespace in rootless mode (:mod:`dockyard.executor.outside`), which starts
it on that namespace's behalf: pasta needs CAP_NET_ADMIN over the namespace, which it gets by joining
the user namespace that owns it from outside (``--userns``), as Podman starts it for rootless
containers. Started inside that user namespace, it sandboxes itself into a new one and loses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from dockyard.errors import ExecutionError
from dockyard.executor.spec import PortMapping

ADDRESS, PREFIX, GATEWAY, DNS = "10.0.2.100", 24, "10.0.2.2", "10.0.2.3"
TUN = "/dev/net/tun"
_START_TIMEOUT = 30.0


def find() -> str:
    """The pasta on PATH; an error naming the package when there is none."""
    pasta = shutil.which("pasta")
    if pasta is None:
        raise ExecutionError("the private network needs pasta (Debian package passt: apt-get install "
                             "passt), or use --network host")
    return pasta


def check_tun() -> None:
    """Raise unless this user may open the tun device pasta makes its interface with (in rootless mode
    pasta runs as the user; root may anyway)."""
    if not os.access(TUN, os.R_OK | os.W_OK):
        raise ExecutionError(f"the private network needs {TUN} readable and writable by this user "
                             f"(fix: sudo chmod 0666 {TUN}, the mode udev gives it), or use --network host")


def _forward_args(flag: str, mappings: Sequence[PortMapping]) -> list[str]:
    if not mappings:
        return [flag, "none"]
    out = []
    for pm in mappings:
        bound = f"{pm.host_ip}/" if pm.host_ip and pm.host_ip not in ("0.0.0.0", "::") else ""
        out += [flag, f"{bound}{pm.host_port}:{pm.container_port}"]
    return out


def arguments(publish: Sequence[PortMapping], netns_fd: int, userns_fd: int | None,
              pid_file: Path) -> list[str]:
    """pasta's options for the namespace open as ``netns_fd`` (owned by ``userns_fd``'s namespace, if
    given), forwarding ``publish`` from the host: loopback forwarding (``-T``/``-U``) and the
    gateway-to-host mapping off, so the host's loopback stays out of reach."""
    # --runas 0: as root, pasta would become nobody and could not join a namespace of the host's.
    runas = ["--runas", "0"] if os.geteuid() == 0 else []
    userns = ["--userns", f"/proc/self/fd/{userns_fd}"] if userns_fd is not None else []
    return [*runas, "--quiet", "--config-net", "--address", ADDRESS, "--netmask", str(PREFIX),
            "--gateway", GATEWAY, "--dns-forward", DNS, "--no-map-gw", "--tcp-ns", "none", "--udp-ns", "none",
            *_forward_args("--tcp-ports", [p for p in publish if p.proto == "tcp"]),
            *_forward_args("--udp-ports", [p for p in publish if p.proto == "udp"]),
            "--pid", str(pid_file), *userns, "--netns", f"/proc/self/fd/{netns_fd}"]


def start(publish: Sequence[PortMapping], netns_fd: int, userns_fd: int | None, pid_file: Path,
          log_fd: int) -> int:
    """Start pasta for the namespace open as ``netns_fd``; its pid once it has configured the namespace
    and bound ``publish`` (it forks into the background then). Its output goes to ``log_fd``."""
    pasta = find()
    # pasta joins the namespaces by path, after dropping what it needs not: /proc/self/fd is its own.
    args = [pasta, *arguments(publish, netns_fd, userns_fd, pid_file)]
    fds = [netns_fd] if userns_fd is None else [netns_fd, userns_fd]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, pass_fds=fds,
                              timeout=_START_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ExecutionError("pasta did not start within 30 s") from None
    if done.returncode != 0:
        text = os.pread(log_fd, 65536, 0).decode(errors="replace")
        why = [line for line in text.splitlines() if "syslog" not in line]
        raise ExecutionError(f"pasta failed to set up the private network: {'; '.join(why)[-300:]}"
                             + (" (a published port in use?)" if publish else ""))
    return int(pid_file.read_text())
