"""The private network: its own namespace with outbound access through pasta, published ports, and the
host's loopback services and abstract unix sockets out of reach (both backends)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError, InvalidArgument
from dockyard.executor import Mount, ProcessSpec, RootfsSpec, cleanup_stale
from dockyard.executor.base import Executor, open_executor
from dockyard.executor.network import (
    DNS,
    PrivateNetwork,
    container_resolv_lines,
    parse_publish,
    resolve_ports,
)
from dockyard.executor.spec import PortMapping
from tests.netprobe import build_probe, host_services, need_pasta, primary_ipv4, probe_script

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_pasta()
    return build_probe(tmp_path_factory.mktemp("probe"))


def sh(ex: Executor, rootfs: RootfsSpec, script: str, **kw: object) -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    spec = ProcessSpec(args=["/bin/sh", "-c", script], **kw)  # type: ignore[arg-type]
    code = ex.run(spec, rootfs, stdout=out.append, stderr=err.append, timeout=60)
    return code, b"".join(out).decode(), b"".join(err).decode()


def test_private_network_reaches_out_but_not_the_hosts_loopback(executor: Executor, overlay: RootfsSpec,
                                                                probe: Path) -> None:
    mounts = [Mount("/probe", source=str(probe), readonly=True)]
    with host_services() as services:
        script = probe_script(services)
        code, out, err = sh(executor, overlay, script, network="private", mounts=mounts)
        assert code == 0, err
        loopback, abstract, outside = out.splitlines()
        assert loopback.startswith("failed") and abstract.startswith("failed")
        assert outside == "connected"
        # The same probes on the host's network reach all three.
        _, out, _ = sh(executor, overlay, script, network="host", mounts=mounts)
        assert out.splitlines() == ["connected"] * 3


def test_private_network_interfaces(executor: Executor, overlay: RootfsSpec, probe: Path) -> None:
    code, out, err = sh(executor, overlay, "ls /sys/class/net; ip -4 -o addr show scope global; ip route",
                        network="private")
    assert code == 0, err
    assert "lo" in out.split() and "10.0.2.100/24" in out and "default via 10.0.2.2" in out


def test_runs_of_one_executor_share_one_namespace(executor: Executor, overlay: RootfsSpec,
                                                  probe: Path) -> None:
    inodes = {sh(executor, overlay, "stat -L -c %i /proc/self/ns/net", network="private")[1]
              for _ in range(3)}
    assert len(inodes) == 1


def test_published_port_reaches_a_server_in_the_container(executor: Executor, overlay: RootfsSpec,
                                                          probe: Path) -> None:
    (port,) = (p.host_port for p in resolve_ports([parse_publish("127.0.0.1::8080")]))
    result: list[tuple[int, str, str]] = []
    runner = threading.Thread(target=lambda: result.append(sh(
        executor, overlay, "echo hello-from-container | nc -l -p 8080", network="private",
        publish=[PortMapping("127.0.0.1", port, 8080)])))
    runner.start()
    got = b""
    for _ in range(200):  # until the server listens (pasta resets connections before that)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                got = conn.recv(100)
            if got:
                break
        except OSError:
            pass
        time.sleep(0.1)
    runner.join(60)
    assert got == b"hello-from-container\n"
    assert result and result[0][0] == 0


@pytest.mark.parametrize(("value", "expected"), [
    ("8080:80", PortMapping("", 8080, 80, "tcp")),
    ("80", PortMapping("", 0, 80, "tcp")),
    ("53/udp", PortMapping("", 0, 53, "udp")),
    ("127.0.0.1:8080:80/tcp", PortMapping("127.0.0.1", 8080, 80, "tcp")),
    ("127.0.0.1::80", PortMapping("127.0.0.1", 0, 80, "tcp")),
    ("[::1]:8080:80", PortMapping("::1", 8080, 80, "tcp")),
])
def test_parse_publish(value: str, expected: PortMapping) -> None:
    assert parse_publish(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("", "invalid port mapping"),
    ("8080:", "invalid port mapping"),
    ("abc", "invalid container port 'abc'"),
    ("70000:80", "invalid host port '70000'"),
    ("1.2.3:80:80", "invalid IP address '1.2.3'"),
    ("80/sctp", "unsupported protocol 'sctp'"),
    ("8000-8010:80-90", "port ranges are not supported"),
    ("a:b:c:d", "invalid port mapping"),
])
def test_parse_publish_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_publish(value)


def test_random_host_ports_are_free_ports() -> None:
    (pm,) = resolve_ports([PortMapping("127.0.0.1", 0, 80)])
    assert pm.host_port > 0
    with socket.create_server(("127.0.0.1", pm.host_port)):
        pass


def test_publish_needs_a_private_network() -> None:
    with pytest.raises(InvalidArgument, match="cannot be published with network mode 'host'"):
        ProcessSpec(args=["x"], network="host", publish=[PortMapping("", 80, 80)])


def test_loopback_name_servers_are_replaced_by_the_forwarder() -> None:
    text = "search example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n"
    assert container_resolv_lines(text) == (f"search example\nnameserver {DNS}\nnameserver 192.0.2.53\n"
                                            "options edns0\n")


def test_spec_with_published_ports_round_trips() -> None:
    spec = ProcessSpec(args=["x"], network="private",
                       publish=(PortMapping("", 8080, 80), PortMapping("::1", 53, 53, "udp")))
    again = ProcessSpec.from_json(spec.to_json())
    assert again.publish == spec.publish and again.to_json() == spec.to_json()


@pytest.mark.parametrize("how", ["cleanup_stale", "open_executor"])
def test_cleanup_stops_the_pasta_of_a_killed_owner(tmp_path: Path, probe: Path, how: str) -> None:
    # A process holding a private network dies by SIGKILL: its pasta would serve the namespace forever.
    # The next executor opened on the same state directory (the next build or run) stops it.
    code = ("import sys; from pathlib import Path; from dockyard.executor.network import PrivateNetwork;"
            f" net = PrivateNetwork(Path({str(tmp_path)!r})); print('up', flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert owner.stdout is not None and owner.stdout.readline() == "up\n"
    (pid_file,) = (tmp_path / "net").glob("*/pasta.pid")
    pasta = os.pidfd_open(int(pid_file.read_text()))
    try:
        assert cleanup_stale(tmp_path) == 0  # the owner lives: nothing to do
        owner.kill()
        owner.wait()
        if how == "cleanup_stale":
            assert cleanup_stale(tmp_path) == 1
        else:
            open_executor(tmp_path).close()
        assert select.select([pasta], [], [], 30)[0] == [pasta]  # readable once pasta has exited
    finally:
        os.close(pasta)


def test_cleanup_stops_a_pasta_whose_owner_died_before_it_wrote_its_pid_file(tmp_path: Path) -> None:
    # An owner killed while its pasta was starting (a build killed in its first second) leaves a
    # network directory without a pid file, or one pasta writes after the cleanup looked: the
    # cleanup also finds pasta by the pid file its --pid names. (A stand-in process with pasta's
    # argv: the real one would need the dead owner's namespace.)
    netdir = tmp_path / "net" / "1.1.dead"  # an owner that never ran: pid 1's start time is not 1
    netdir.mkdir(parents=True)
    stand_in = subprocess.Popen(["pasta", "-c", "sleep 60; true", "--pid", str(netdir / "pasta.pid")],
                                executable="/bin/sh", start_new_session=True)
    try:
        deadline = time.monotonic() + 10  # its argv shows once its exec is through
        while b"--pid" not in Path(f"/proc/{stand_in.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert cleanup_stale(tmp_path) == 1
        assert stand_in.wait(10) == -signal.SIGKILL
        assert not netdir.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stand_in.pid, signal.SIGKILL)
        stand_in.wait()


def test_close_stops_pasta_and_frees_published_ports(tmp_path: Path, probe: Path) -> None:
    (pm,) = resolve_ports([PortMapping("127.0.0.1", 0, 80)])
    net = PrivateNetwork(tmp_path, [pm])
    (pid_file,) = (tmp_path / "net").glob("*/pasta.pid")
    pasta = os.pidfd_open(int(pid_file.read_text()))
    try:
        with pytest.raises(OSError):  # pasta holds the published port
            socket.create_server(("127.0.0.1", pm.host_port)).close()
        net.close()
        assert select.select([pasta], [], [], 30)[0] == [pasta]
        socket.create_server(("127.0.0.1", pm.host_port)).close()
        assert not list((tmp_path / "net").iterdir())
    finally:
        os.close(pasta)


def test_published_udp_port(executor: Executor, overlay: RootfsSpec, probe: Path) -> None:
    # Sent to the host's own address: this pasta (Debian 12's) drops UDP replies to a client on the
    # host's loopback unless loopback forwarding is on, which would open the host's loopback to the
    # container.
    (pm,) = resolve_ports([parse_publish("5353/udp")])
    target = (primary_ipv4(), pm.host_port)
    result: list[tuple[int, str, str]] = []
    runner = threading.Thread(target=lambda: result.append(sh(
        executor, overlay, "/probe udp-echo 5353", network="private", publish=[pm],
        mounts=[Mount("/probe", source=str(probe), readonly=True)])))
    runner.start()
    got = b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        for _ in range(300):  # datagrams before the echo server binds are lost: send until answered
            s.sendto(b"ping", target)
            try:
                got = s.recv(100)
                break
            except OSError:
                if not runner.is_alive():
                    break
        while runner.is_alive():  # and until it has taken the word
            s.sendto(b"quit", target)
            runner.join(0.2)
    runner.join(60)
    assert got == b"ping", result
    assert result and result[0][0] == 0, result


def test_pasta_stops_when_its_owner_exits_without_close(tmp_path: Path, probe: Path) -> None:
    code = ("import os; from pathlib import Path; from dockyard.executor.network import PrivateNetwork;"
            f" net = PrivateNetwork(Path({str(tmp_path)!r}));"
            f" print(next(Path({str(tmp_path)!r}).glob('net/*/pasta.pid')).read_text())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    try:
        pasta = os.pidfd_open(int(done.stdout))
    except ProcessLookupError:
        return  # gone already
    try:
        assert select.select([pasta], [], [], 30)[0] == [pasta]
    finally:
        os.close(pasta)


def test_missing_pasta_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutionError, match=r"^the private network needs pasta \(Debian package passt: "
                                             r"apt-get install passt\), or use --network host$"):
        PrivateNetwork(tmp_path)
