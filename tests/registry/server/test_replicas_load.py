"""16 pushers and 8 pullers spread round-robin over three ``registry serve`` replicas on one bucket;
one replica is SIGKILLed midway and restarted. Nothing pushed is lost, no pull sees a digest mismatch."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.registry import s3kit

PUSHERS, IMAGES, PULLERS = 16, 4, 8
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TIMEOUT = aiohttp.ClientTimeout(total=60)
RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Replica:
    """One ``dockyard registry serve`` process on a fixed port, so a restart comes back at the same URL."""

    def __init__(self, storage: str, port: int, log: Path) -> None:
        self.storage, self.port, self.log = storage, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dockyard", "registry", "serve", "--addr", f"127.0.0.1:{self.port}",
                 "--storage", self.storage, "--no-access-log"], stderr=log, env={**os.environ, **s3kit.ENV})
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()[-2000:]
                assert time.monotonic() < deadline, "replica did not come up"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Fleet:
    """Round-robin over the replicas; an operation that hits a dead or dying replica moves on."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.turn = 0
        self.retries = 0

    async def attempt(self, op, what: str):  # type: ignore[no-untyped-def]
        for _ in range(40):
            self.turn += 1
            url = self.replicas[self.turn % len(self.replicas)].url
            try:
                return await op(url)
            except RETRYABLE:
                self.retries += 1
                await asyncio.sleep(0.1)
        raise AssertionError(f"{what}: no replica answered in 40 tries")


async def push_blob(c: aiohttp.ClientSession, url: str, repo: str, data: bytes) -> str:
    digest = sha(data)
    if len(data) < 200_000:
        async with c.post(f"{url}/v2/{repo}/blobs/uploads/?digest={digest}", data=data) as r:
            assert r.status == 201, await r.text()
        return digest
    async with c.post(f"{url}/v2/{repo}/blobs/uploads/") as r:
        assert r.status == 202, await r.text()
        loc = r.headers["Location"]
    half = len(data) // 2
    async with c.patch(url + loc, data=data[:half], headers={"Content-Range": f"0-{half - 1}"}) as r:
        assert r.status == 202, await r.text()
        loc = r.headers["Location"]
    async with c.put(f"{url}{loc}?digest={digest}", data=data[half:],
                     headers={"Content-Range": f"{half}-{len(data) - 1}"}) as r:
        assert r.status == 201, await r.text()
    return digest


async def pull(c: aiohttp.ClientSession, url: str, repo: str, tag: str, mismatches: list[str]) -> str:
    async with c.get(f"{url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}) as r:
        assert r.status == 200, (url, repo, tag, r.status, await r.text())
        body = await r.read()
        if r.headers["Docker-Content-Digest"] != sha(body):
            mismatches.append(f"{repo}:{tag} manifest")
    manifest = json.loads(body)
    for desc in [manifest["config"], *manifest["layers"]]:
        async with c.get(f"{url}/v2/{repo}/blobs/{desc['digest']}") as blob:
            assert blob.status == 200, (url, repo, desc, blob.status)
            if sha(await blob.read()) != desc["digest"]:
                mismatches.append(f"{repo}:{tag} {desc['digest']}")
    return sha(body)


@pytest.mark.slow
@pytest.mark.seaweedfs
def test_three_replicas_one_killed_midway_lose_nothing(tmp_path: Path) -> None:
    storage = s3kit.s3_url("load")
    replicas = [Replica(storage, free_port(), tmp_path / f"replica{i}.log") for i in range(3)]
    fleet = Fleet(replicas)
    pushed: dict[tuple[str, str], str] = {}
    mismatches: list[str] = []
    pulls = 0

    async def pusher(c: aiohttp.ClientSession, n: int) -> None:
        rng = random.Random(n)
        shared = b"base layer shared by every image " * 4000  # pushed by all: mounts and races
        for i in range(IMAGES):
            repo, tag = f"load/p{n}", f"v{i}"
            config = json.dumps({"pusher": n, "image": i}).encode()
            layers = [shared, rng.randbytes(rng.choice([30_000, 300_000, 900_000]))]
            for data in [config, *layers]:
                await fleet.attempt(lambda url, d=data, r=repo: push_blob(c, url, r, d), f"blob {repo}")
            descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(d), "size": len(d)}
                     for d in layers]
            manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                "size": len(config)}, "layers": descs}).encode()

            async def put(url: str, m: bytes = manifest, r: str = repo, t: str = tag) -> None:
                async with c.put(f"{url}/v2/{r}/manifests/{t}", data=m,
                                 headers={"Content-Type": OCI_MANIFEST}) as resp:
                    assert resp.status == 201, await resp.text()

            await fleet.attempt(put, f"manifest {repo}:{tag}")
            pushed[(repo, tag)] = sha(manifest)

    async def puller(c: aiohttp.ClientSession, n: int, done: asyncio.Event) -> None:
        nonlocal pulls
        rng = random.Random(1000 + n)
        while not done.is_set():
            if not pushed:
                await asyncio.sleep(0.05)
                continue
            (repo, tag), digest = rng.choice(sorted(pushed.items()))
            got = await fleet.attempt(lambda url, r=repo, t=tag: pull(c, url, r, t, mismatches),
                                      f"pull {repo}:{tag}")
            if got != digest:
                mismatches.append(f"{repo}:{tag} is {got}, pushed {digest}")
            pulls += 1

    async def chaos() -> None:
        while len(pushed) < PUSHERS * IMAGES // 3:
            await asyncio.sleep(0.05)
        replicas[1].kill()  # mid-push: some requests on it are cut off
        await asyncio.sleep(1)
        await asyncio.to_thread(replicas[1].start)

    async def main() -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as c:
            done = asyncio.Event()
            readers = [asyncio.create_task(puller(c, n, done)) for n in range(PULLERS)]
            killer = asyncio.create_task(chaos())
            await asyncio.gather(*(pusher(c, n) for n in range(PUSHERS)))
            await killer
            done.set()
            await asyncio.gather(*readers)
            # Afterwards every image is whole on every replica, the restarted one included.
            for replica in replicas:
                for (repo, tag), digest in sorted(pushed.items()):
                    assert await pull(c, replica.url, repo, tag, mismatches) == digest

    try:
        for replica in replicas:
            replica.start()
        began = time.monotonic()
        asyncio.run(asyncio.wait_for(main(), 400))
        took = time.monotonic() - began
    finally:
        for replica in replicas:
            replica.stop()
    assert not mismatches, mismatches[:10]
    assert len(pushed) == PUSHERS * IMAGES
    assert pulls > 0
    print(f"\n{len(pushed)} images pushed, {pulls} pulls during the push, {fleet.retries} requests moved to "
          f"another replica after the kill, {took:.1f} s")
