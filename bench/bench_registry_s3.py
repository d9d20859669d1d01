"""Benchmark ``dockyard registry serve`` against distribution 2.8 on the filesystem and on S3 (SeaweedFS).

Same load generator, same run, loopback only. For each storage, both registries are started here on
free ports (distribution from Debian's /usr/bin/docker-registry with its own S3 driver, pointed at the
same SeaweedFS, its redirects off like ours), and measured interleaved:
  - blob push: 8 concurrent pushes of distinct 32 MB blobs (POST, one PATCH, PUT) -> MB/s; each push on
    a thread of its own (``http.client``), the blobs hashed before the clock starts (``blob_pushes``),
  - blob pull: 8 concurrent pulls of one 64 MB blob -> MB/s, twice: "cold", a blob pushed just before
    through the first replica and never pulled, and "warm", a blob every replica has served twice before
    (dockyard on S3 runs with ``--blob-cache``, so a warm pull comes from the replica's disk; the replica
    that received a push keeps it there too, and with ``peer=`` the others relay a cold blob from it
    rather than read the bucket, and keep it from its second pull; distribution keeps no such copy and
    reads the bucket for every pull).
    The pulls run on plain sockets in threads, each body read into a 4 MiB buffer and dropped
    (``bench_registry_server.get_discarding``): an aiohttp client capped both registries at ~1.5 GB/s
    on loopback (measured: 8 x 64 MB from the filesystem, aiohttp 1.6 vs plain sockets 2.8-3.6 GB/s for
    dockyard, 1.5 vs 1.6-1.8 GB/s for distribution), so the fs rows measured the client,
  - manifest GET by tag (32 connections) and PUT of distinct manifests (16) -> requests/s.
On S3, dockyard runs once with 1 replica and once with 3 replicas on one bucket (the client spreads
requests round-robin, as a load balancer would). Prints each number and the ratio to distribution, and
for the cold pulls the CPU seconds per round (medians) of the target's registry processes and of
SeaweedFS (``/proc/PID/stat``; SeaweedFS found by its ``-s3.port``), and the same per 1,000 manifest PUTs:
on a shared 2-core machine the rates follow the total CPU a request costs, so these say where a row's
time goes (and compare two trees under load better than the rates do: see ``--before``).
After each cold round the bench writes 64 MiB into a new file and prints what that cost ("new memory",
``new_memory_ms``): on a VM that hands freed memory back to its host, new page-cache memory costs ~10x
more at some moments than at others, and a replica filling its cache pays it where distribution (which
keeps nothing) does not. The cold row is printed again over the runs where that memory was cheap, and
over those where it was dear (the same runs for every target).

    .venv/bin/python bench/bench_registry_s3.py [--seconds 3] [--runs 1] [--only fs|s3] [--before SRC]
                                                [--before-peer] [--no-blob-cache] [--distribution-x3]

"dockyard" runs from this bench's own tree (``src/`` next to ``bench/``), whatever the interpreter would
import. ``--before SRC`` also runs dockyard from another source tree (say a checkout of main's ``src``) as
"before" targets in the same interleaved rounds (on S3 with ``--blob-cache`` as the others, unless
``--no-blob-cache``: a tree older than the cache needs it), so a change is measured against the code it
replaces under the same load. The load average is printed with each table (the
machine may be shared).

dockyard's replicas run with ``--blob-cache DIR,peer=URL`` (each its own URL): a replica pulling a blob
another one received asks that one's cache before the bucket (``--no-peer``: the bucket only). The
``--before`` targets get no ``peer=`` (older trees refuse it) unless ``--before-peer``: without it,
"before x3" fetches a cold blob from the bucket, another path than "dockyard x3" takes.

``--distribution-x3`` also runs three distribution processes on the bucket ("distribution x3", ratios
still to one distribution): on one machine, three replicas share its cores with each other, the store
and the load generator, so an x3 row measures what replication costs, not what it adds; distribution's
own x3 row shows that cost for a registry that keeps no per-replica state.

Needs SeaweedFS up (scripts/peers/start-seaweedfs.sh) and boto3 (pip install -e '.[s3]').
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

# The same request-rate loop and blob-pull client, run against each target.
from bench_registry_server import pull_rate, rate, timed_threads

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPO = f"bench/r{os.getpid()}"
S3 = os.environ.get("SEAWEEDFS_S3", "http://127.0.0.1:18333")
KEYS = {"AWS_ENDPOINT_URL": S3, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret"}
PUSH_SIZE, PULL_SIZE, PARALLEL = 32 << 20, 64 << 20, 8


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PIDS: dict[str, int] = {}  # registry URL -> its process (for CPU accounting)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes (all their threads) have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def store_pids() -> list[int]:
    """The SeaweedFS server serving ``S3`` (its ``-s3.port``), if it runs on this machine."""
    port = urlsplit(S3).port
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
                if argv and argv[0].endswith(b"weed") and f"-s3.port={port}".encode() in argv:
                    found.append(int(entry))
    return found


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"registry on :{port} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def processes(cmds: list[Callable[[int], list[str]]], tmp: Path, env: dict[str, str]) -> Iterator[list[str]]:
    """Start each command (a registry on the port it is given), yield their URLs, stop them."""
    procs = []
    urls = []
    logs = []
    try:
        for cmd in cmds:
            port = free_port()
            log = tmp / f"{uuid.uuid4().hex}.log"
            argv = cmd(port)
            with open(log, "wb") as f:
                proc = subprocess.Popen(argv, stdout=f, stderr=f, env={**os.environ, **env})
            procs.append(proc)
            logs.append(log)
            wait_port(port, proc, log)
            urls.append(f"http://127.0.0.1:{port}")
            PIDS[urls[-1]] = proc.pid  # "env" execs the registry: the same process
        yield urls
    finally:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:  # it died while measured: say why
                print(f"{' '.join(proc.args[-6:])} exited {proc.returncode}:\n{log.read_text()[-3000:]}",
                      file=sys.stderr)
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


HERE_SRC = str(Path(__file__).resolve().parent.parent / "src")  # the tree this bench belongs to


def dockyard(storage: str, src: str | None = None, cache: Path | None = None,
             peer: bool = False) -> Callable[[int], list[str]]:
    # The sources of this bench's own tree unless told otherwise: ``python -m dockyard`` alone imports
    # whatever the interpreter finds (an editable install points at the main checkout, so a bench run
    # from a worktree measured main's code as "dockyard").
    env = ["env", f"PYTHONPATH={src or HERE_SRC}"]
    # Each replica its own cache directory, as on separate machines; with ``peer``, the URL other
    # replicas ask it at for blobs it received (what a deployment gives as ``peer=``).
    def extra(port: int) -> list[str]:
        if cache is None:
            return []
        return ["--blob-cache", f"{cache}/{port}" + (f",peer=http://127.0.0.1:{port}" if peer else "")]

    return lambda port: [*env, sys.executable, "-m", "dockyard", "registry", "serve",
                         "--addr", f"127.0.0.1:{port}", "--storage", storage, "--no-access-log", *extra(port)]


def distribution(tmp: Path, storage_yaml: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        cfg = tmp / f"dist-{port}.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n{storage_yaml}"
                       "  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n"
                       "  redirect:\n    disable: true\n"
                       # Its upload purger walks the bucket in the background (not what is measured) and
                       # has crashed the process mid-run on SeaweedFS (a panic in the S3 driver's Walk).
                       "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                       f"http:\n  addr: \"127.0.0.1:{port}\"\n  secret: bench\n")
        # No REGISTRY_* from our environment (distribution reads them as config overrides), and no AWS_*
        # (its SDK would take, say, an AWS_CA_BUNDLE meant for HTTPS endpoints and refuse to start).
        return ["env", *[f"--unset={k}" for k in os.environ if k.startswith(("REGISTRY_", "AWS_"))],
                "/usr/bin/docker-registry", "serve", str(cfg)]

    return argv


def s3_client():  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=S3, region_name="us-east-1",
                        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"])


def ensure_bucket(bucket: str) -> None:
    client = s3_client()
    exists = (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists)
    with contextlib.suppress(*exists):
        client.create_bucket(Bucket=bucket)


def drop_bucket(bucket: str) -> None:
    """Delete a bench bucket and what is in it: SeaweedFS keeps volumes per bucket, and a bucket
    left behind by every run fills the peer until no bucket can be written."""
    client = s3_client()
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)


class RoundRobin:
    def __init__(self, urls: list[str]) -> None:
        self._next = itertools.cycle(urls)

    def __call__(self) -> str:
        return next(self._next)


async def push_blob(s: aiohttp.ClientSession, base: str, data: bytes) -> str:
    digest = sha(data)
    async with s.post(f"{base}/v2/{REPO}/blobs/uploads/") as r:
        assert r.status == 202, await r.text()
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    async with s.patch(loc, data=data, headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 202, await r.text()
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    async with s.put(f"{loc}{sep}digest={digest}") as r:
        assert r.status == 201, await r.text()
    return digest


def manifest(config: str, layer: str, n: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                                   "size": PULL_SIZE}],
                       "annotations": {"n": str(n)}}).encode()


async def setup(urls: list[str], big: bytes) -> tuple[str, str]:
    base = urls[0]
    async with aiohttp.ClientSession() as s:
        config = await push_blob(s, base, b"{}")
        layer = await push_blob(s, base, big)
        async with s.put(f"{base}/v2/{REPO}/manifests/latest", data=manifest(config, layer, -1),
                         headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 201, await r.text()
        # Served twice by every replica, what "warm" pulls read: a replica keeps a blob another one
        # received from its second pull (the first is relayed from that one).
        for url in urls:
            for _ in range(2):
                async with s.get(f"{url}/v2/{REPO}/blobs/{layer}") as r:
                    assert r.status == 200 and len(await r.read()) == len(big)
        await asyncio.sleep(0.5)  # a cache entry is published just after its last byte went out
    return config, layer


async def fresh_blob(base: str) -> str:
    """A blob pushed now and never pulled: what "cold" pulls read."""
    async with aiohttp.ClientSession() as s:
        return await push_blob(s, base, os.urandom(PULL_SIZE))


def push_blob_plain(base: str, data: bytes, digest: str) -> None:
    """POST, one PATCH with the whole blob, PUT: on one ``http.client`` connection (``sendall`` of the
    body releases the GIL, so 8 threads push at what the server takes)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        def call(method: str, url: str, body: bytes | None, want: int) -> str:
            target = url[len(base):] if url.startswith(base) else url
            headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            text = r.read()
            assert r.status == want, (method, r.status, text[:500])
            return r.getheader("Location") or ""

        loc = call("POST", f"/v2/{REPO}/blobs/uploads/", None, 202)
        loc = call("PATCH", loc, data, 202)
        sep = "&" if "?" in loc else "?"
        call("PUT", f"{loc}{sep}digest={digest}", b"", 201)
    finally:
        conn.close()


def blob_pushes(pick: Callable[[], str]) -> float:
    blobs = [os.urandom(PUSH_SIZE) for _ in range(PARALLEL)]
    # Digests computed before the clock starts, and each push on a thread of its own over plain
    # http.client: an aiohttp client hashing and sending 8 x 32 MB on one thread spent ~0.25 s hashing
    # alone, a quarter of dockyard's whole push time, and took CPU from the servers on two cores.
    digests = [sha(b) for b in blobs]
    bases = [pick() for _ in blobs]
    elapsed = timed_threads(lambda i: push_blob_plain(bases[i], blobs[i], digests[i]), PARALLEL)
    return PUSH_SIZE * PARALLEL / elapsed / 1e6


def blob_pulls(pick: Callable[[], str], layer: str) -> float:
    return pull_rate([f"{pick()}/v2/{REPO}/blobs/{layer}" for _ in range(PARALLEL)], PULL_SIZE)


async def manifest_gets(pick: Callable[[], str], seconds: float) -> float:
    async def get(s: aiohttp.ClientSession, _n: int) -> None:
        async with s.get(f"{pick()}/v2/{REPO}/manifests/latest", headers={"Accept": OCI_MANIFEST}) as r:
            assert r.status == 200
            await r.read()

    return await rate(seconds, 32, get)


async def manifest_puts(pick: Callable[[], str], seconds: float, config: str, layer: str,
                        done: list[int] | None = None) -> float:
    async def put(s: aiohttp.ClientSession, n: int) -> None:
        async with s.put(f"{pick()}/v2/{REPO}/manifests/t{n}", data=manifest(config, layer, n),
                         headers={"Content-Type": OCI_MANIFEST}) as r:
            assert r.status == 201, await r.text()
        if done is not None:
            done[0] += 1

    return await rate(seconds, 16, put)


CPU = ("cold_cpu", "cold_store_cpu",  # CPU seconds of a cold round: the registries, SeaweedFS
       "put_cpu", "put_store_cpu",  # and per 1,000 manifest PUTs
       "cold_mem")  # ms to write 64 MiB into new memory just after the cold round (``new_memory_ms``)
ROWS = [("blob push (8 x 32 MB)", "push", "MB/s"), ("pull cold (8 x 64 MB)", "cold", "MB/s"),
        ("pull warm (8 x 64 MB)", "pull", "MB/s"),
        ("manifest GET", "get", "req/s"), ("manifest PUT", "put", "req/s")]


PROBE_PIECE = memoryview(bytearray(os.urandom(1 << 20)))


def new_memory_ms(where: Path) -> float:
    """CPU milliseconds this process takes to write 64 MiB into a new file under ``where`` (then removed).

    What a cache fill costs a replica depends on the machine's memory as much as on the code: on this
    kind of VM, memory the guest has handed back to the host (virtio-balloon free page reporting) costs
    a host fault per page when it is touched again, so the same write takes ~13 ms at one moment and
    ~110-170 ms at the next (measured, same process, same file system). Taken right after each cold
    round, it says which of the two the round ran in."""
    path = where / f"probe-{uuid.uuid4().hex}"
    started = time.thread_time()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        for _ in range(64):
            os.write(fd, PROBE_PIECE)
    finally:
        os.close(fd)
        elapsed = (time.thread_time() - started) * 1000
        path.unlink()
    return elapsed


def split_by_memory(samples: dict[str, dict[str, list[float]]]) -> None:
    """Add "cold_cheap" and "cold_dear" (medians of the cold rate over the runs where new memory was
    cheap for every target, or dear for one: a probe within 3x the smallest of the whole run, or
    not) and their counts."""
    floor = min(p for rows in samples.values() for p in rows["cold_mem"])
    probes = [max(rows["cold_mem"][r] for rows in samples.values())
              for r in range(len(next(iter(samples.values()))["cold_mem"]))]
    cheap = [p <= 3 * floor for p in probes]
    for rows in samples.values():
        for key, want in (("cold_cheap", True), ("cold_dear", False)):
            picked = [rate for rate, c in zip(rows["cold"], cheap, strict=True) if c == want]
            rows[key] = [statistics.median(picked) if picked else float("nan")]
            rows[key + "_n"] = [float(len(picked))]


def measure(targets: dict[str, list[str]], seconds: float, runs: int,
            scratch: Path) -> dict[str, dict[str, float]]:
    big = os.urandom(PULL_SIZE)
    setups = {name: asyncio.run(setup(urls, big)) for name, urls in targets.items()}
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in [*(k for _, k, _ in ROWS), *CPU]}
                                                  for n in targets}
    store = store_pids()
    for _ in range(runs):  # interleaved, so drift hits every target alike
        for name, urls in targets.items():
            pick = RoundRobin(urls)
            config, layer = setups[name]
            samples[name]["push"].append(blob_pushes(pick))
            cold = asyncio.run(fresh_blob(urls[0]))
            servers = [PIDS[u] for u in urls]
            before = cpu_seconds(servers), cpu_seconds(store)
            samples[name]["cold"].append(blob_pulls(pick, cold))
            samples[name]["cold_cpu"].append(cpu_seconds(servers) - before[0])
            samples[name]["cold_store_cpu"].append(cpu_seconds(store) - before[1])
            samples[name]["cold_mem"].append(new_memory_ms(scratch))
            samples[name]["pull"].append(blob_pulls(pick, layer))
            samples[name]["get"].append(asyncio.run(manifest_gets(pick, seconds)))
            before, done = (cpu_seconds(servers), cpu_seconds(store)), [0]
            samples[name]["put"].append(asyncio.run(manifest_puts(pick, seconds, config, layer, done)))
            samples[name]["put_cpu"].append((cpu_seconds(servers) - before[0]) * 1000 / max(done[0], 1))
            samples[name]["put_store_cpu"].append((cpu_seconds(store) - before[1]) * 1000 / max(done[0], 1))
    split_by_memory(samples)
    return {n: {k: statistics.median(v) for k, v in rows.items()} for n, rows in samples.items()}


def report(title: str, results: dict[str, dict[str, float]], baseline: str) -> None:
    names = [n for n in results if n != baseline]
    print(f"\n{title}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'scenario':24}" + "".join(f"{n:>22}" for n in [*names, baseline]))
    for label, key, unit in ROWS:
        cells = [f"{results[n][key]:>9.0f} {unit:5} {results[n][key] / results[baseline][key]:>5.2f}x"
                 for n in names]
        print(f"{label:24}" + "".join(f"{c:>22}" for c in cells) + f"{results[baseline][key]:>16.0f} {unit}")
    cells = [f"{results[n]['cold_cpu']:.2f} + {results[n]['cold_store_cpu']:.2f} s"
             for n in [*names, baseline]]
    print(f"{'cold CPU: server+store':24}" + "".join(f"{c:>22}" for c in cells))
    cells = [f"{results[n]['put_cpu']:.2f} + {results[n]['put_store_cpu']:.2f} s"
             for n in [*names, baseline]]
    print(f"{'PUT CPU/1000: srv+store':24}" + "".join(f"{c:>22}" for c in cells))
    cells = [f"{results[n]['cold_mem']:.0f} ms" for n in [*names, baseline]]
    print(f"{'new memory, 64 MiB':24}" + "".join(f"{c:>22}" for c in cells))
    for label, key in (("pull cold, memory cheap", "cold_cheap"), ("pull cold, memory dear", "cold_dear")):
        base = results[baseline][key]
        cells = [f"{results[n][key]:>9.0f} MB/s  {results[n][key] / base:>5.2f}x" for n in names]
        print(f"{label:24}" + "".join(f"{c:>22}" for c in cells)
              + f"{base:>16.0f} MB/s  ({results[baseline][key + '_n']:.0f} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", choices=["fs", "s3"])
    parser.add_argument("--before", metavar="SRC", help="also run dockyard from this source tree")
    parser.add_argument("--before-peer", action="store_true",
                        help="the --before replicas ask each other's caches too (peer=; a tree that has it)")
    parser.add_argument("--no-blob-cache", action="store_true",
                        help="run dockyard on S3 without --blob-cache")
    parser.add_argument("--no-peer", action="store_true",
                        help="dockyard replicas do not ask each other's blob caches (no peer=)")
    parser.add_argument("--distribution-x3", action="store_true",
                        help="also run three distribution replicas on the bucket")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-s3-", dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        if args.only != "s3":
            fs_yaml = f"  filesystem:\n    rootdirectory: \"{tmp}/dist-fs\"\n"
            with contextlib.ExitStack() as stack:
                fs_targets = {}
                if args.before:
                    fs_targets["before"] = stack.enter_context(
                        processes([dockyard(str(tmp / "before-fs"), args.before)], tmp, {}))
                fs_targets["dockyard"] = stack.enter_context(
                    processes([dockyard(str(tmp / "ours-fs"))], tmp, {}))
                fs_targets["distribution"] = stack.enter_context(
                    processes([distribution(tmp, fs_yaml)], tmp, {}))
                fs = measure(fs_targets, args.seconds, args.runs, tmp)
            report("filesystem (one process each)", fs, "distribution")
        if args.only != "fs":
            run = uuid.uuid4().hex[:8]
            # A bucket per target, as distribution has its own: targets sharing one would share its volumes
            # (SeaweedFS grows a bucket's volumes as they fill, which stalls that bucket's writes a moment).
            ours = {label: f"dy-bench-{label}-{run}" for label in ("b1", "b3", "one", "three")}
            theirs = {label: f"dy-bench-{label}-{run}" for label in ("dist", "dist3")}

            def s3_yaml(bucket: str) -> str:
                ensure_bucket(bucket)
                return ("  s3:\n    region: us-east-1\n    regionendpoint: \"" + S3 + "\"\n"
                        f"    bucket: {bucket}\n    accesskey: bench\n    secretkey: bench-secret\n"
                        f"    secure: false\n    v4auth: true\n    rootdirectory: /r{run}\n")

            with contextlib.ExitStack() as stack:
                for bucket in (*theirs.values(), *ours.values()):  # runs last: after the registries stop
                    stack.callback(drop_bucket, bucket)
                targets = {}
                cache = None if args.no_blob_cache else tmp / "blob-cache"
                peer = not args.no_peer
                if args.before:
                    bp = peer and args.before_peer
                    targets["before x1"] = stack.enter_context(processes(
                        [dockyard(f"s3://{ours['b1']}/b1-{run}", args.before, cache, bp)], tmp, KEYS))
                    targets["before x3"] = stack.enter_context(processes(
                        [dockyard(f"s3://{ours['b3']}/b3-{run}", args.before, cache, bp)] * 3, tmp, KEYS))
                targets["dockyard x1"] = stack.enter_context(processes(
                    [dockyard(f"s3://{ours['one']}/one-{run}", cache=cache, peer=peer)], tmp, KEYS))
                targets["dockyard x3"] = stack.enter_context(processes(
                    [dockyard(f"s3://{ours['three']}/three-{run}", cache=cache, peer=peer)] * 3, tmp, KEYS))
                if args.distribution_x3:
                    targets["distribution x3"] = stack.enter_context(
                        processes([distribution(tmp, s3_yaml(theirs["dist3"]))] * 3, tmp, {}))
                targets["distribution"] = stack.enter_context(
                    processes([distribution(tmp, s3_yaml(theirs["dist"]))], tmp, {}))
                s3 = measure(targets, args.seconds, args.runs, tmp)
            report(f"S3 on SeaweedFS ({S3})", s3, "distribution")
    return 0


if __name__ == "__main__":
    sys.exit(main())
