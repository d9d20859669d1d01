"""Benchmark ``dockyard registry serve`` against Debian's docker-registry (distribution 2.8).

Same load generator, same run, loopback only:
  - 8 concurrent pulls of one 100 MB blob (MB/s, all bytes read and counted; the client reads on plain
    sockets into a 4 MiB buffer, see ``get_discarding``, so it measures the server, not aiohttp),
  - manifest GET by tag (requests/s, 32 connections),
  - manifest PUT of distinct manifests (requests/s, 16 connections).

    .venv/bin/python bench/bench_registry_server.py [--distribution 127.0.0.1:5000] [--seconds 5] [--runs 3]

Starts our registry as a subprocess on a free port (storage on disk, like distribution's); expects
distribution to be up (scripts/peers/start-registry.sh). Prints both numbers and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPO = f"bench/r{os.getpid()}"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_blob(s: aiohttp.ClientSession, base: str, data: bytes) -> str:
    digest = sha(data)
    async with s.post(f"{base}/v2/{REPO}/blobs/uploads/") as r:
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    async with s.put(f"{loc}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 201, await r.text()
    return digest


def manifest(config: str, layer: str, n: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                                   "size": 100 << 20}],
                       "annotations": {"n": str(n)}}).encode()


async def setup(base: str, big: bytes) -> tuple[str, str]:
    async with aiohttp.ClientSession() as s:
        config = await push_blob(s, base, b"{}")
        layer = await push_blob(s, base, big)
        async with s.put(f"{base}/v2/{REPO}/manifests/latest", data=manifest(config, layer, -1),
                         headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 201, await r.text()
    return config, layer


def get_discarding(url: str, buffer: int = 4 << 20) -> int:
    """GET ``url`` on a plain socket and count the body's bytes, read into one large buffer and dropped.

    The pull rows measure the server, so the client must cost less than any server: an aiohttp client
    (1 MiB chunks, a Python object per socket read) capped both registries at the same ~1.5 GB/s on
    this loopback, which made the fs pull rows read ~1.1-1.2x whatever the servers did. ``recv_into``
    a 4 MiB buffer releases the GIL for each read, so 8 threads pull at what the servers send.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(65536)
            if not got:
                raise AssertionError(f"{url}: connection closed in the response head")
            head += got
        head, _, body = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split()[1] == "200", f"{url}: {lines[0]}"
        fields = dict(line.split(":", 1) for line in lines[1:])
        lengths = [v for k, v in fields.items() if k.strip().lower() == "content-length"]
        assert lengths, f"{url}: no Content-Length (chunked bodies are not counted here)"
        length = int(lengths[0])
        total = len(body)
        view = memoryview(bytearray(buffer))
        while total < length:
            n = sock.recv_into(view)
            if not n:
                break
            total += n
        return total


def timed_threads(work: Callable[[int], object], count: int) -> float:
    """Run ``work(0..count-1)`` at once, a thread each; the seconds until all ended (the first
    error raised again here, in the main thread)."""
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def pull_rate(urls: list[str], size: int) -> float:
    """Pull every URL at once (a thread each), check each body is ``size`` bytes, return MB/s of all."""
    sizes: list[int] = [0] * len(urls)

    def one(i: int) -> None:
        sizes[i] = get_discarding(urls[i])

    elapsed = timed_threads(one, len(urls))
    assert all(n == size for n in sizes), sizes
    return sum(sizes) / elapsed / 1e6


async def blob_pulls(base: str, layer: str, parallel: int = 8) -> float:
    return pull_rate([f"{base}/v2/{REPO}/blobs/{layer}"] * parallel, 100 << 20)


async def rate(seconds: float, workers: int,
               request: Callable[[aiohttp.ClientSession, int], Awaitable[None]]) -> float:
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker(s: aiohttp.ClientSession, w: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            await request(s, w * 1_000_000 + i)
            i += 1
            count += 1

    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as s:
        started = time.perf_counter()
        await asyncio.gather(*(worker(s, w) for w in range(workers)))
        elapsed = time.perf_counter() - started
    return count / elapsed


async def manifest_gets(base: str, seconds: float) -> float:
    async def get(s: aiohttp.ClientSession, _n: int) -> None:
        async with s.get(f"{base}/v2/{REPO}/manifests/latest", headers={"Accept": OCI_MANIFEST}) as r:
            assert r.status == 200
            await r.read()

    return await rate(seconds, 32, get)


async def manifest_puts(base: str, seconds: float, config: str, layer: str) -> float:
    async def put(s: aiohttp.ClientSession, n: int) -> None:
        async with s.put(f"{base}/v2/{REPO}/manifests/t{n}", data=manifest(config, layer, n),
                         headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 201, await r.text()

    return await rate(seconds, 16, put)


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU time of a process (0 when it cannot be read)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def distribution_pid() -> int | None:
    peers = os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers")
    try:
        return int(open(f"{peers}/run/registry.pid").read().strip())
    except (OSError, ValueError):
        return None


def start_ours(storage: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr", "127.0.0.1:0",
                             "--storage", storage, "--no-access-log"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.search(r"listening on (http://\S+)", line)
    if not m:
        raise SystemExit(f"dockyard registry did not start: {line}")
    return proc, m.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distribution", default="127.0.0.1:5000")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    big = os.urandom(100 << 20)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-", dir="/var/tmp") as storage:
        proc, ours = start_ours(storage)
        try:
            targets = {"dockyard": ours, "distribution": f"http://{args.distribution}"}
            pids = {"dockyard": proc.pid, "distribution": distribution_pid()}
            setups = {name: asyncio.run(setup(base, big)) for name, base in targets.items()}
            results: dict[str, dict[str, list[float]]] = {
                n: {k: [] for k in ("blob", "get", "put", "blob_cpu", "get_cpu", "put_cpu")} for n in targets}
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                for name, base in targets.items():
                    config, layer = setups[name]
                    runs: dict[str, Awaitable[float]] = {
                        "blob": blob_pulls(base, layer),
                        "get": manifest_gets(base, args.seconds),
                        "put": manifest_puts(base, args.seconds, config, layer),
                    }
                    for key, coro in runs.items():
                        before = cpu_seconds(pids[name])
                        results[name][key].append(asyncio.run(coro))  # type: ignore[arg-type]
                        results[name][key + "_cpu"].append(cpu_seconds(pids[name]) - before)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    rows = [("8 x 100 MB blob pulls", "blob", "MB/s"), ("manifest GET", "get", "req/s"),
            ("manifest PUT", "put", "req/s")]
    print(f"{'scenario':24} {'dockyard':>14} {'distribution':>14} {'ratio':>7}   "
          f"server CPU s: dockyard / distribution   (median of {args.runs})")
    for label, key, unit in rows:
        ours_v = statistics.median(results["dockyard"][key])
        theirs = statistics.median(results["distribution"][key])
        cpu_ours = statistics.median(results["dockyard"][key + "_cpu"])
        cpu_theirs = statistics.median(results["distribution"][key + "_cpu"])
        print(f"{label:24} {ours_v:>8.0f} {unit:5} {theirs:>8.0f} {unit:5} {ours_v / theirs:>6.2f}x   "
              f"{cpu_ours:>6.2f} / {cpu_theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
