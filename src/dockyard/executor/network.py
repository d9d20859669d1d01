"""Private networks: a network namespace of its own with outbound access through ``pasta``, and ``-p``.

``pasta`` (Debian package ``passt``) gives the namespace a tap interface and carries its TCP, UDP and
ICMP traffic through ordinary sockets of the host, so the container reaches what the host reaches by
its routes, while the host's loopback services and abstract unix sockets (both scoped to the host's
namespace) stay out of reach: loopback forwarding (``-T``/``-U``) and the gateway-to-host mapping are
off. The namespace has the address 10.0.2.100/24, gateway 10.0.2.2 and a DNS forwarder at 10.0.2.3
(slirp4netns's plan). Published ports are pasta's ``-t``/``-u`` forwards from the host into it (Debian
12's pasta drops the replies of a published UDP port to a client on the host's own loopback; clients
on the host's other addresses and other machines get them).

One namespace (one pasta) serves all runs of an executor that publish nothing, e.g. the RUN steps of
a build, so a RUN pays only a ``setns``; a run with published ports gets one of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.executor import mount as m
from dockyard.executor import outside, pasta
from dockyard.executor.base import new_owned_dir
from dockyard.executor.pasta import DNS
from dockyard.executor.rootfs import host_resolv_conf
from dockyard.executor.spec import PortMapping, ProcessSpec
from dockyard.userns import in_user_namespace

NET_DIR, PID_FILE = "net", "pasta.pid"  # state_dir/net/<owner>/pasta.pid
def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid {what} {text!r} in port mapping {spec!r}")
    return int(text)


def parse_publish(spec: str) -> PortMapping:
    """One ``-p`` value as Docker takes it: ``[IP:][HOST:]CONTAINER[/tcp|udp]`` (``IP`` may be ``[v6]``;
    an empty or missing ``HOST`` is 0, a free port picked by :func:`resolve_ports`)."""
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"unsupported protocol {proto!r} in port mapping {spec!r} (use tcp or udp)")
    host_ip = ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0 or rest[end + 1:end + 2] != ":":
            raise InvalidArgument(f"invalid IP address in port mapping {spec!r}")
        host_ip, rest = rest[1:end], rest[end + 2:]
        parts = rest.split(":")
        if len(parts) == 1:
            parts = ["", *parts]
    else:
        parts = rest.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
    if len(parts) > 2 or not parts[-1]:
        raise InvalidArgument(f"invalid port mapping {spec!r} (use [IP:][HOST:]CONTAINER[/tcp|udp])")
    if any("-" in p for p in parts):
        raise InvalidArgument(f"port ranges are not supported: {spec!r}")
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address {host_ip!r} in port mapping {spec!r}") from None
    container = _port(parts[-1], "container port", spec)
    host = _port(parts[0], "host port", spec) if len(parts) == 2 and parts[0] else 0
    return PortMapping(host_ip, host, container, "udp" if proto == "udp" else "tcp")


def resolve_ports(mappings: Sequence[PortMapping]) -> list[PortMapping]:
    """``mappings`` with each host port 0 replaced by a port free on the host (as Docker's ``-p 80``)."""
    out = []
    for pm in mappings:
        if pm.host_port == 0:
            family = socket.AF_INET6 if ":" in pm.host_ip else socket.AF_INET
            kind = socket.SOCK_DGRAM if pm.proto == "udp" else socket.SOCK_STREAM
            with socket.socket(family, kind) as s:
                s.bind((pm.host_ip, 0))
                pm = PortMapping(pm.host_ip, s.getsockname()[1], pm.container_port, pm.proto)
        out.append(pm)
    return out


def resolv_conf(spec: ProcessSpec) -> str:
    """The container's /etc/resolv.conf: the host's; for a private network with loopback name servers
    (systemd-resolved's 127.0.0.53, a local dnsmasq), which the namespace cannot reach, pasta's
    forwarder in their place."""
    text = host_resolv_conf()
    return container_resolv_lines(text) if spec.network == "private" else text


def container_resolv_lines(text: str) -> str:
    """``text`` (a resolv.conf) with each loopback name server replaced by pasta's forwarder."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                if ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    line = f"nameserver {DNS}"
            except ValueError:
                pass
        lines.append(line)
    return "\n".join(lines) + "\n"


def _new_namespace() -> int:
    """A file descriptor of a new network namespace (made on a short-lived thread: a namespace is a
    per-thread property, so this process's own network stays as it is)."""
    result: list[int | BaseException] = []

    def make() -> None:
        try:
            m.unshare(m.CLONE_NEWNET)
            result.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=make, name="dockyard-netns")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise ExecutionError(f"cannot make a network namespace: {result[0]}")
    return result[0]


class PrivateNetwork:
    """A network namespace with a pasta process serving it, ``publish`` forwarded from the host.

    :attr:`path` names the namespace for a container to join (``setns``) while this is open. pasta's
    pid is kept in a directory under ``state_dir/net`` named after this process, so that
    :func:`~dockyard.executor.cleanup.cleanup_stale` stops it if this process is killed before
    :meth:`close` (or its exit, or garbage collection) has stopped it.
    """

    def __init__(self, state_dir: Path, publish: Sequence[PortMapping] = ()) -> None:
        rootless = in_user_namespace()
        pasta.find()
        if rootless:
            pasta.check_tun()
        self._fd = _new_namespace()
        self._rundir = new_owned_dir(state_dir / NET_DIR)
        self._held = {"netns": self._fd}
        # Also at interpreter exit: pasta holds the namespace itself and would outlive this process.
        self._release = weakref.finalize(self, _release, self._held, self._rundir)
        try:
            pid_file = self._rundir / PID_FILE
            with open(self._rundir / "pasta.log", "w+b") as log:
                if rootless:
                    # Started from outside our user namespace, joining it (see executor.pasta).
                    pid = outside.start_pasta(publish, self._fd, log.fileno())
                    pid_file.write_text(str(pid))
                else:
                    pid = pasta.start(publish, self._fd, None, pid_file, log.fileno())
            self._held["pasta"] = os.pidfd_open(pid)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """A path that opens the namespace (valid while this process holds it)."""
        return f"/proc/{os.getpid()}/fd/{self._fd}"

    def close(self) -> None:
        """Stop pasta (the published ports close with it) and let the namespace go."""
        self._release()


def _release(held: dict[str, int], rundir: Path) -> None:
    pasta = held.pop("pasta", None)
    if pasta is not None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pasta, signal.SIGKILL)  # it ignores SIGTERM
        os.close(pasta)
    netns = held.pop("netns", None)
    if netns is not None:
        os.close(netns)
    shutil.rmtree(rundir, ignore_errors=True)


class Networks:
    """An executor's private networks: one shared by the runs that publish no port, started on first
    use, and one per run that does."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._shared: PrivateNetwork | None = None

    @contextlib.contextmanager
    def namespace(self, spec: ProcessSpec) -> Iterator[str | None]:
        """The path of the network namespace ``spec`` joins, or ``None`` (host, or a new one for none)."""
        if spec.network != "private":
            yield None
        elif spec.publish:
            own = PrivateNetwork(self.state_dir, spec.publish)
            try:
                yield own.path
            finally:
                own.close()
        else:
            yield self.start_shared().path

    def start_shared(self) -> PrivateNetwork:
        """The shared network, started if it is not yet (a second caller waits for the first)."""
        with self._lock:
            if self._shared is None:
                self._shared = PrivateNetwork(self.state_dir)
            return self._shared

    def close(self) -> None:
        """Stop the shared network, if one was started."""
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None

