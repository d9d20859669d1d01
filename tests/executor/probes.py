"""Helpers for the sandbox tests: the static syscall probe, and the Docker engine to compare with."""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

PROBE_SOURCE = Path(__file__).with_name("seccomp_probe.c")
PEERS = Path(__file__).resolve().parents[2].parent / "shared" / "peers"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
DOCKER_ENV = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock"}

# The calls the issue lists, and what Docker's default profile answers for a container with Docker's
# default capabilities (1 = EPERM). ptrace of a sibling is allowed by the profile (kernel >= 4.8);
# the kernel's own rules decide it, so it is compared with Docker, not with a constant.
DEFAULT_VERDICTS = {
    "unshare-user": 1, "clone-newuser": 1, "mount": 1, "keyctl": 1, "add_key": 1, "bpf": 1,
    "perf_event_open": 1, "open_by_handle_at": 1, "kexec_load": 1, "reboot": 1, "swapon": 1,
    "personality-query": 0, "personality-addr-no-randomize": 1, "socket-unix": 0, "getppid": 0,
}
# What the profile alone refuses here: unconfined, each of these works (capabilities allow it).
REFUSED_BY_SECCOMP_ONLY = ("unshare-user", "clone-newuser", "keyctl", "add_key", "perf_event_open",
                           "personality-addr-no-randomize")
# Compared with `docker run`: the list, the argument rules, ptrace. Not socket-vsock: Docker
# 20.10's profile predates the AF_VSOCK rule of the current one (the peer allows it, we refuse it).
COMPARED = (*DEFAULT_VERDICTS, "ptrace-sibling")


@functools.cache
def probe_binary() -> Path:
    """The probe, built static once per session (skips without gcc's static libc)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tempfile.mkdtemp(prefix="dockyard-probe-", dir="/dev/shm")
    atexit.register(shutil.rmtree, work, True)
    out = Path(work) / "probe"
    result = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(PROBE_SOURCE)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static probe: {result.stderr.strip()[-200:]}")
    return out


def probe_tar() -> bytes:
    """A one-file image filesystem: /probe."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(probe_binary()), arcname="probe")
    return buf.getvalue()


def verdicts(output: str) -> dict[str, int]:
    """The probe's ``name errno`` lines (other lines, like build log prefixes, are skipped)."""
    out: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].lstrip("-").isdigit() and parts[-2] in (*COMPARED, "socket-vsock"):
            out[parts[-2]] = int(parts[-1])
    return out


def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKER, *args], env=DOCKER_ENV, input=stdin, capture_output=True, check=False,
                          timeout=120)


def require_docker() -> None:
    """Skip unless the Docker engine peer answers (starting it if its script is there)."""
    if not os.path.exists(DOCKER) or docker("version").returncode != 0:
        script = PEERS / "start-dockerd.sh"
        if not script.exists() or subprocess.run(["bash", str(script)], capture_output=True).returncode != 0:
            pytest.skip("the Docker engine is not available")


def docker_image(tar: bytes, name: str) -> str:
    """``docker import`` of a filesystem tar, tagged by its digest; the tag."""
    tag = f"dockyard-test-{name}:{hashlib.sha256(tar).hexdigest()[:12]}"
    if docker("image", "inspect", tag).returncode != 0:
        result = docker("import", "-", tag, stdin=tar)
        assert result.returncode == 0, result.stderr.decode()
    return tag


@functools.cache
def docker_probe(*security_opt: str) -> dict[str, int]:
    """The probe's verdicts under ``docker run --network=none`` (with ``--security-opt`` values)."""
    require_docker()
    tag = docker_image(probe_tar(), "probe")
    args = [a for opt in security_opt for a in ("--security-opt", opt)]
    result = docker("run", "--rm", "--network=none", *args, tag, "/probe")
    assert result.returncode == 0, result.stderr.decode()
    return verdicts(result.stdout.decode())
