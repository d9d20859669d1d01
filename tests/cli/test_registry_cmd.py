"""``dockyard registry serve`` and ``dockyard registry gc`` as a user runs them (subprocesses)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

DOCKYARD = [sys.executable, "-m", "dockyard"]


def start_serve(storage: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*DOCKYARD, "registry", "serve", "--addr", "127.0.0.1:0", "--storage",
                             str(storage), *extra], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"registry did not start: {proc.stderr.read()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start_serve(tmp_path / "storage")
    yield proc, url
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight(serve: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = serve
    assert httpx.get(f"{url}/v2/").status_code == 200
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /v2/cli/r/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:1000])
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None, "exited before the request in flight was done"
        sock.sendall(data[1000:])
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 201"), response[:200]
    assert proc.wait(15) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/")


@pytest.mark.slow
def test_access_log_on_stderr(serve: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = serve
    httpx.get(f"{url}/v2/nope/tags/list", headers={"User-Agent": "cli-test"})
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert '"GET /v2/nope/tags/list HTTP/1.1" 404' in log and "cli-test" in log


@pytest.mark.slow
def test_gc_command(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    proc, url = start_serve(storage)
    try:
        data = b"unreferenced"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{url}/v2/g/r/blobs/uploads/", params={"digest": digest},
                          content=data).status_code == 201
        dry = subprocess.run([*DOCKYARD, "registry", "gc", "--storage", str(storage), "--dry-run",
                              "--grace", "0"], capture_output=True, text=True, timeout=30)
        assert dry.returncode == 0 and f"would delete blob {digest}" in dry.stdout
        assert httpx.head(f"{url}/v2/g/r/blobs/{digest}").status_code == 200
        young = subprocess.run([*DOCKYARD, "registry", "gc", "--storage", str(storage)],
                               capture_output=True, text=True, timeout=30)
        assert "0 blobs deleted" in young.stdout and "1 unreferenced but younger" in young.stdout
        real = subprocess.run([*DOCKYARD, "registry", "gc", "--storage", str(storage), "--grace", "0"],
                              capture_output=True, text=True, timeout=30)
        assert real.returncode == 0 and f"deleted blob {digest}" in real.stdout
        assert httpx.head(f"{url}/v2/g/r/blobs/{digest}").status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["--addr", "nonsense"], "Error: invalid listen address 'nonsense': expected HOST:PORT"),
    (["--tls-cert", "/nonexistent.pem"], "Error: --tls-cert and --tls-key must be given together"),
    (["--proxy-remote", "ftp://x"], "Error: --proxy-remote 'ftp://x': expected an http:// or https:// URL"),
    (["--htpasswd", "/nonexistent"], "Error: htpasswd file /nonexistent: No such file or directory"),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run([*DOCKYARD, "registry", "serve", "--storage", str(tmp_path), "--addr",
                           "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == message, proc.stderr
