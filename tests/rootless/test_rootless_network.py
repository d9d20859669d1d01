"""Rootless private network: pasta started from outside the user namespace (by the helper that maps
the ids) gives RUN steps and ``run`` outbound access, keeps the host's loopback and abstract unix
sockets out of reach, and publishes ``-p`` ports, as for root."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netprobe import build_probe, host_services, need_pasta, probe_script

from .conftest import Runner
from .test_rootless import BUSYBOX_TAR

pytestmark = [pytest.mark.xdist_group("rootless"), pytest.mark.slow, pytest.mark.busybox]
PRIVATE = ["failed: Connection refused", "failed: Connection refused", "connected"]


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def shared() -> Iterator[Path]:
    """A directory the test user can read, holding the probe (built here, as root)."""
    need_pasta()
    path = Path(tempfile.mkdtemp(prefix="dockyard-rootless-net-", dir="/var/tmp"))
    path.chmod(0o755)
    build_probe(path).chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def base(rootless: Runner) -> str:
    _ok(rootless("import", str(BUSYBOX_TAR), "netbase:local"))
    return "netbase:local"


def test_rootless_run_step_network_is_private(rootless: Runner, shared: Path, base: str) -> None:
    context = shared / "ctx"
    context.mkdir()
    shutil.copy(shared / "probe", context / "probe")
    for p in (context, context / "probe"):
        p.chmod(0o755)
    with host_services() as services:
        script = probe_script(services)
        (context / "Dockerfile").write_text(f"FROM {base}\nCOPY probe /probe\nRUN ({script}) > /verdicts\n"
                                            f"RUN --network=host ({script}) > /verdicts-host\n")
        (context / "Dockerfile").chmod(0o644)
        _ok(rootless("build", "-q", "-t", "net:rootless", ".", cwd=context))
    assert _ok(rootless("run", "--rm", "net:rootless", "cat", "/verdicts")).splitlines() == PRIVATE
    host = _ok(rootless("run", "--rm", "--network", "host", "net:rootless", "cat", "/verdicts-host"))
    assert host.splitlines() == ["connected"] * 3


def test_rootless_run_network_is_private(rootless: Runner, shared: Path, base: str) -> None:
    with host_services() as services:
        script = probe_script(services)
        volume = f"{shared / 'probe'}:/probe:ro"
        out = _ok(rootless("run", "--rm", "-v", volume, base, "sh", "-c", f"{script}; ip -4 -o addr"))
        assert out.splitlines()[:3] == PRIVATE and "10.0.2.100/24" in out
        out = _ok(rootless("run", "--rm", "--network", "host", "-v", volume, base, "sh", "-c", script))
        assert out.splitlines() == ["connected"] * 3


def test_rootless_publish_reaches_a_server_in_the_container(rootless_argv: Callable[..., list[str]],
                                                            base: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(rootless_argv("run", "--rm", "-p", f"{port}:8080", base, "sh", "-c",
                                          "echo hello-rootless | nc -l -p 8080"),
                            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = b""
    try:
        for _ in range(300):  # until the container's server listens
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
        _, err = proc.communicate(timeout=60)
        assert got == b"hello-rootless\n", err
        assert proc.returncode == 0, err
    finally:
        proc.kill()
        proc.wait()


def _pastas() -> set[str]:
    out = subprocess.run(["pgrep", "-u", "dyrootless", "-f", "^[^ ]*pasta "], capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_no_pasta_leaks_after_rootless_runs(rootless: Runner, base: str) -> None:
    """The helper's pasta goes with the run that asked for it (the run stops it through a pidfd)."""
    before = _pastas()
    _ok(rootless("run", "--rm", base, "true"))
    assert _pastas() <= before


def test_killed_rootless_run_leaves_no_pasta(rootless_argv: Callable[..., list[str]], base: str) -> None:
    """A killed dockyard cannot stop its pasta; the helper outside does, once nobody holds its socket."""
    before = _pastas()
    marker = f"sleep 3{os.getpid() % 1000}"
    proc = subprocess.Popen(rootless_argv("run", "--rm", base, "sh", "-c", marker), cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if _pastas() - before and _pids(marker):
                break
            time.sleep(0.1)
        ours = _pastas() - before
        assert ours, "no pasta started"
        # The dockyard process itself (in its user namespace), not the helper it forked (outside).
        for pid in _pids(f"dockyard run --rm {base} sh -c {marker}"):
            if Path(f"/proc/{pid}/uid_map").read_text().split() != ["0", "0", "4294967295"]:
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):
            if not _pastas() & ours:
                break
            time.sleep(0.1)
        assert not _pastas() & ours
    finally:
        proc.kill()
        proc.wait()


def _pids(pattern: str) -> list[str]:
    return subprocess.run(["pgrep", "-u", "dyrootless", "-f", pattern], capture_output=True,
                          text=True).stdout.split()


def test_tun_device_out_of_reach_is_one_clear_line(rootless: Runner, base: str) -> None:
    tun = Path("/dev/net/tun")
    mode = tun.stat().st_mode & 0o777
    tun.chmod(0o600)
    try:
        done = rootless("run", "--rm", base, "true")
        host = rootless("run", "--rm", "--network", "host", base, "true")
    finally:
        tun.chmod(mode)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "/dev/net/tun readable and writable by this user (fix: sudo chmod 0666" in done.stderr
    assert host.returncode == 0, host.stderr
