"""``dockyard run``'s networks: private by default (outbound access; the host's loopback services and
abstract unix sockets out of reach), ``--network host|none``, and ``-p`` port publishing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_run_cmd import dy, root  # noqa: F401  (the fixture)
from tests.netprobe import build_probe, host_services, need_pasta, probe_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_pasta()
    return build_probe(tmp_path_factory.mktemp("probe"))


def test_default_network_is_private(root: Path, probe: Path) -> None:  # noqa: F811
    with host_services() as services:
        script = probe_script(services)
        for network in ((), ("--network", "bridge"), ("--network", "private")):
            r = dy(root, *network, "-v", f"{probe}:/probe:ro", "busybox:local", "sh", "-c", script)
            assert r.stdout.splitlines() == ["failed: Connection refused", "failed: Connection refused",
                                             "connected"], (network, r.stderr)
        r = dy(root, "--network", "host", "-v", f"{probe}:/probe:ro", "busybox:local", "sh", "-c", script)
        assert r.stdout.splitlines() == ["connected"] * 3, r.stderr
    assert dy(root, "--network", "none", "busybox:local", "ls", "/sys/class/net").stdout.split() == ["lo"]


def _serve(root: Path, *publish: str) -> subprocess.Popen[str]:  # noqa: F811
    return subprocess.Popen(
        [sys.executable, "-m", "dockyard", "run", *publish, "busybox:local", "sh", "-c",
         "echo hello-from-container | nc -l -p 8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "DOCKYARD_ROOT": str(root)})


def _fetch(port: int, proc: subprocess.Popen[str]) -> bytes:
    got = b""
    for _ in range(300):  # until the container's server listens (pasta resets connections before that)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                got = conn.recv(100)
            if got:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    return got


@pytest.fixture()
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_publish_host_port(root: Path, probe: Path, free_port: int) -> None:  # noqa: F811
    for value in (f"{free_port}:8080", f"127.0.0.1:{free_port}:8080/tcp"):
        proc = _serve(root, "-p", value)
        try:
            assert _fetch(free_port, proc) == b"hello-from-container\n"
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        finally:
            proc.kill()
            proc.wait()


def test_publish_random_host_port_is_reported(root: Path, probe: Path) -> None:  # noqa: F811
    proc = _serve(root, "-p", "127.0.0.1::8080")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.fullmatch(r"dockyard: publishing 127\.0\.0\.1:(\d+)->8080/tcp\n", line)
        assert found, line
        assert _fetch(int(found.group(1)), proc) == b"hello-from-container\n"
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("args", "message"), [
    (("-p", "80/sctp"), "unsupported protocol 'sctp' in port mapping '80/sctp' (use tcp or udp)"),
    (("-p", "x:80"), "invalid host port 'x' in port mapping 'x:80'"),
    (("--network", "host", "-p", "8080:80"), "ports cannot be published with --network host"),
])
def test_bad_publish_is_a_one_line_error(root: Path, args: tuple[str, ...], message: str) -> None:  # noqa: F811
    r = dy(root, *args, "busybox:local", "true")
    assert r.returncode == 125
    assert r.stderr == f"dockyard: Error: {message}\n"


def test_missing_pasta_is_a_one_line_error(root: Path, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "DOCKYARD_ROOT": str(root), "PATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "dockyard", "run", "busybox:local", "true"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 125
    assert r.stderr == ("dockyard: Error: the private network needs pasta (Debian package passt: apt-get"
                        " install passt), or use --network host\n")
