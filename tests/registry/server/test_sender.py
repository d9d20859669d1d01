"""Whole blobs sent from local files on threads of their own (``sender``): off the event loop, every
descriptor closed, a stalled client given up, and the event loop's sendfile beyond the threads."""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dockyard.registry.server import RegistryServer, sender

sys.path.insert(0, str(Path(__file__).parent))
from regkit import count_loop_sendfile, push_blob


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_whole_blob_is_sent_while_the_event_loop_is_busy(server: RegistryServer,
                                                             client: httpx.Client) -> None:
    """The loop's own sendfile stops with the loop once the sockets' buffers are full; a send thread
    does not."""
    data = os.urandom(96 << 20)
    digest = push_blob(client, "send/r", data)
    loop = server._loop
    assert loop is not None
    with client.stream("GET", f"/v2/send/r/blobs/{digest}") as r:
        assert r.status_code == 200 and r.headers["Content-Length"] == str(len(data))
        assert r.headers["Docker-Content-Digest"] == digest and "Last-Modified" in r.headers
        pieces = r.iter_raw(1 << 20)
        got = [next(pieces)]
        loop.call_soon_threadsafe(time.sleep, 2.0)  # the event loop does nothing else meanwhile
        time.sleep(0.2)
        started, during = time.monotonic(), 0
        for piece in pieces:
            got.append(piece)
            during += len(piece)
            if time.monotonic() - started > 1.2:
                break
        assert during >= 32 << 20, during  # far more than the sockets hold
        got.extend(pieces)
    assert b"".join(got) == data


def test_a_client_gone_mid_send_leaves_no_descriptor_open(server: RegistryServer,
                                                          client: httpx.Client) -> None:
    data = os.urandom(64 << 20)
    digest = push_blob(client, "send/r", data)
    assert client.get(f"/v2/send/r/blobs/{digest}").content == data  # the pool's threads exist now
    before = open_descriptors()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as s:
            s.sendall(f"GET /v2/send/r/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.recv(1 << 16)  # the send is under way; the client goes away with most of it unsent
    deadline = time.monotonic() + 10
    while open_descriptors() > before:
        assert time.monotonic() < deadline, (before, open_descriptors())
        time.sleep(0.05)
    assert client.get(f"/v2/send/r/blobs/{digest}").content == data


def test_a_client_that_takes_nothing_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender, "STALL", 1.0)
    monkeypatch.setattr(sender, "_SLICE_MS", 100)
    with RegistryServer(storage=tmp_path / "storage") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        data = os.urandom(64 << 20)
        digest = push_blob(c, "send/r", data)
        before = open_descriptors()
        with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1]))) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            s.sendall(f"GET /v2/send/r/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(3.0)  # reads nothing
            registry = srv.registry
            assert registry is not None and registry.sender._busy == 0  # the thread is free again
            assert open_descriptors() <= before + 2  # only this connection's two ends
            received = 0
            s.settimeout(10)
            while chunk := s.recv(1 << 20):
                received += len(chunk)
        assert received < len(data)  # the send was cut, not finished
        assert c.get(f"/v2/send/r/blobs/{digest}").content == data


def test_sends_beyond_the_threads_go_through_the_event_loop(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_loop_sendfile(monkeypatch)
    monkeypatch.setattr(sender, "THREADS", 1)
    with RegistryServer(storage=tmp_path / "storage") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        data = os.urandom(24 << 20)
        digest = push_blob(c, "send/r", data)
        url = f"{srv.url}/v2/send/r/blobs/{digest}"
        assert c.get(url).content == data and calls == []  # one at a time: on the thread
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: httpx.get(url, timeout=30), range(4)))
        assert [(r.status_code, r.content == data) for r in bodies] == [(200, True)] * 4
        assert calls, "no send went through the event loop"


def test_ranges_and_conditional_gets_are_answered_as_before(client: httpx.Client) -> None:
    data = os.urandom(3 << 20)
    digest = push_blob(client, "send/r", data)
    url = f"/v2/send/r/blobs/{digest}"
    part = client.get(url, headers={"range": "bytes=100-199"})  # any case: header names are not
    assert part.status_code == 206 and part.content == data[100:200]
    etag = client.get(url).headers["ETag"]
    conditional = client.get(url, headers={"If-None-Match": etag})  # FileResponse answers it, as before
    assert conditional.status_code == 200 and conditional.content == data
    assert client.head(url).headers["Content-Length"] == str(len(data))


def test_a_blob_over_tls_is_sent_encrypted(tmp_path: Path) -> None:
    """sendfile would write the file's plain bytes past TLS: a TLS connection takes the loop's path."""
    from tests.registry.tlskit import self_signed

    cert, key = self_signed(tmp_path, ca=True)
    with RegistryServer(storage=tmp_path / "storage", tls_cert=str(cert), tls_key=str(key)) as srv, \
            httpx.Client(base_url=f"https://{srv.address}", timeout=30,
                         verify=ssl.create_default_context(cafile=str(cert))) as c:
        data = os.urandom(8 << 20)
        digest = push_blob(c, "send/r", data)
        got = c.get(f"/v2/send/r/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
