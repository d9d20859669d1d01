"""check_bases and Watcher against Debian's distribution registry on 127.0.0.1:5000.

Two stores play two machines: a publisher pushes base images to a tag, a consumer builds an app on
that tag and keeps it current.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.builder.options import BuildOptions
from dockyard.client import Client
from dockyard.progress import ProgressEvent, VertexCompleted, VertexStarted
from dockyard.registry.client import RegistryClient
from dockyard.tools.watch import Watcher, WatchEvent, check_bases
from tests.builder.conftest import busybox_tar
from tests.peers import require

pytestmark = pytest.mark.registry
REGISTRY = "127.0.0.1:5000"


def _store(tag: str) -> Client:
    return Client(Path("/dev/shm") / f"dy-watch-{tag}-{os.getpid()}-{os.urandom(4).hex()}", fsync=False)


def _drop(client: Client) -> None:
    client.close()
    subprocess.run(["umount", "-R", "-l", str(client.root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(client.root, ignore_errors=True)


@pytest.fixture(scope="module")
def registry() -> str:
    require("registry")
    return REGISTRY


@pytest.fixture()
def publisher() -> Iterator[Client]:
    client = _store("pub")
    with open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield client
    _drop(client)


@pytest.fixture()
def consumer() -> Iterator[Client]:
    client = _store("app")
    yield client
    _drop(client)


class Recorder:
    """Collects watch events and, per build, the build's progress events."""

    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.builds: list[list[ProgressEvent]] = []

    def __call__(self, event: WatchEvent) -> None:
        self.events.append(event)

    def sink(self) -> Recorder._Sink:
        self.builds.append([])
        return Recorder._Sink(self.builds[-1])

    class _Sink:
        def __init__(self, into: list[ProgressEvent]) -> None:
            self.into = into
            self.closed = False

        def __call__(self, event: ProgressEvent) -> None:
            self.into.append(event)

        def close(self) -> None:
            self.closed = True

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def step_statuses(self, build: int = -1) -> dict[str, str]:
        """Final status of each Dockerfile step (``[2/4] COPY a.txt /a.txt`` -> ``cached``/``done``)."""
        out: dict[str, str] = {}
        for ev in self.builds[build]:
            if (isinstance(ev, VertexCompleted) and ev.name.startswith("[")
                    and ev.outcome in ("done", "cached") and "/" in ev.name.split("]")[0]):
                out[ev.name.split("] ", 1)[1]] = ev.outcome
        return out


def _publish(publisher: Client, ref: str, version: int, tmp: Path) -> str:
    """Push a base image as ``ref``: busybox (1), or busybox plus a layer naming the version (>1)."""
    if version == 1:
        publisher.tag("busybox:local", ref)
    else:
        ctx = tmp / f"base-v{version}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox:local\nCOPY version /etc/base-version\n")
        (ctx / "version").write_text(f"{version}\n")
        publisher.build(BuildOptions(context_dir=str(ctx), tags=[ref]))
    return str(publisher.push(ref).digest)


def _app(tmp: Path, base: str) -> Path:
    ctx = tmp / "app"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
                                    "COPY c.txt /c.txt\n")
    (ctx / "a.txt").write_text("a\n")
    (ctx / "c.txt").write_text("c1\n")
    (ctx / ".dockerignore").write_text("*.log\n")
    return ctx


@pytest.mark.slow
def test_outdated_then_watch_pulls_and_rebuilds(registry: str, publisher: Client, consumer: Client,
                                                tmp_path: Path) -> None:
    base = f"{registry}/dytest/base-{uuid.uuid4().hex[:12]}:1"
    d1 = _publish(publisher, base, 1, tmp_path)
    ctx = _app(tmp_path, base)
    options = BuildOptions(context_dir=str(ctx), tags=["app:watch"])
    rec = Recorder()
    watcher = Watcher(consumer, options, interval=300, on_event=rec, debounce=0.2, progress=rec.sink)

    # Nothing here yet: the base is "not pulled"; the first step builds (the build pulls the base).
    [status] = check_bases(consumer, options)
    assert (status.status, status.remote_digest, status.local_digest) == ("not pulled", d1, "")
    first = watcher.step()
    assert first.built and rec.kinds() == ["initial-build", "built"], rec.events
    assert any(isinstance(e, VertexStarted) and e.name.startswith("[internal] load metadata for")
               for e in rec.builds[0])
    [status] = check_bases(consumer, options)
    assert (status.status, status.local_digest, status.remote_digest) == ("up to date", d1, d1)
    assert status.local_image_id == str(consumer.resolve(base))

    # Nothing moved: a step does nothing.
    rec.events.clear()
    assert not watcher.step().built and rec.events == []

    # The publisher moves the tag.
    d2 = _publish(publisher, base, 2, tmp_path)
    assert d2 != d1
    [status] = check_bases(consumer, options)
    assert (status.status, status.local_digest, status.remote_digest) == ("outdated", d1, d2)

    step = watcher.step()
    assert step.built and step.error == ""
    assert rec.kinds() == ["base-moved", "pulled", "built"]
    assert rec.events[0].message == (f"base {base} moved: sha256:{d1[7:19]} -> sha256:{d2[7:19]}; "
                                     "rebuilding")
    assert set(rec.step_statuses().values()) == {"done"}  # a new base: every step runs again
    v2 = publisher.image_record(base).diff_ids
    app = consumer.image_record("app:watch")
    assert app.diff_ids[:len(v2)] == v2 and len(app.diff_ids) == len(v2) + 3
    assert step.result is not None and step.result.image_id == str(app.id)
    [status] = check_bases(consumer, options)
    assert (status.status, status.local_digest) == ("up to date", d2)

    # A context edit rebuilds only from the first step that reads it; an ignored file changes nothing.
    rec.events.clear()
    (ctx / "debug.log").write_text("x")
    assert not watcher.step().built and rec.events == []
    (ctx / "c.txt").write_text("c2\n")
    step = watcher.step(bases=False)
    assert step.built and step.changed_paths == ["c.txt"]
    assert rec.events[0].message == "context changed: c.txt; rebuilding"
    assert rec.step_statuses() == {f"FROM {base}": "done", "COPY a.txt /a.txt": "cached",
                                   "RUN cat /a.txt > /b.txt": "cached", "COPY c.txt /c.txt": "done"}
    assert step.result is not None and step.result.cached == 2

    # The base was pulled by hand since the last build: a new watcher (say, from cron) notices.
    _publish(publisher, base, 3, tmp_path)
    consumer.pull(base)
    rec.events.clear()
    again = Watcher(consumer, options, on_event=rec, progress=rec.sink)
    assert again.step(bases=False).built
    assert rec.kinds() == ["base-newer", "built"]
    assert rec.events[0].message == f"app:watch is not built on the local {base}; rebuilding"
    v3 = publisher.image_record(base).diff_ids
    assert consumer.image_record("app:watch").diff_ids[:len(v3)] == v3
    rec.events.clear()
    assert not Watcher(consumer, options, on_event=rec).step().built and rec.events == []


@pytest.mark.slow
def test_unreachable_registry_and_failed_builds_keep_watching(consumer: Client, tmp_path: Path) -> None:
    # Nothing listens on port 1: a base from there is "unreachable" (pulled earlier) or "not pulled".
    gone = "127.0.0.1:1/dytest/gone:1"
    with open(busybox_tar(), "rb") as f:
        consumer.import_image(f, changes=['CMD ["sh"]'], names=[gone])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {gone}\nRUN false\nCOPY --from=127.0.0.1:1/dytest/other:2 / /\n")
    options = BuildOptions(context_dir=str(ctx), tags=["app:broken"])
    statuses = check_bases(consumer, options)  # with the session's retries: the host is tried once
    assert [(s.ref, s.status) for s in statuses] == [(gone, "unreachable"),
                                                    ("127.0.0.1:1/dytest/other:2", "not pulled")]
    for s in statuses:
        assert s.reason.startswith("cannot reach registry 127.0.0.1:1: ") and "\n" not in s.reason
    assert statuses[0].local_image_id == str(consumer.resolve(gone)) and statuses[0].remote_digest == ""

    rec = Recorder()
    # From here on, no back-off sleeps between retries (they are what takes the time above).
    impatient = RegistryClient(consumer.registry_client().options, sleep=lambda _s: None)
    watcher = Watcher(consumer, options, on_event=rec, debounce=0, registry=impatient)
    step = watcher.step()  # reports the registry once, builds (the image is missing), fails, goes on
    assert not step.built and step.error, step.error
    assert rec.kinds() == ["base-unreachable", "initial-build", "build-failed"]
    assert rec.events[0].message.startswith(f"base {gone} unreachable: cannot reach registry")
    assert rec.events[-1].message == (
        'build failed: process "/bin/sh -c false" did not complete successfully: exit code: 1')
    rec.events.clear()
    assert not watcher.step().built and rec.events == []  # the same unreachable registry: said once
    (ctx / "Dockerfile").write_text(f"FROM {gone}\nRUN true\n")
    step = watcher.step(bases=False)
    assert step.built and rec.kinds() == ["context-changed", "built"]
    impatient.close()


def test_run_until_stopped_debounces_edits(consumer: Client, tmp_path: Path) -> None:
    with open(busybox_tar(), "rb") as f:
        consumer.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:local\nCOPY . /src/\n")
    (ctx / "f").write_text("0")
    consumer.build(BuildOptions(context_dir=str(ctx), tags=["app:loop"]))
    rec = Recorder()
    built = threading.Event()

    def on_event(ev: WatchEvent) -> None:
        rec(ev)
        if ev.kind in ("built", "build-failed"):
            built.set()

    watcher = Watcher(consumer, BuildOptions(context_dir=str(ctx), tags=["app:loop"]), interval=3600,
                      on_event=on_event, debounce=0.4, poll=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.3)  # the first step: image present, bases are local-only (busybox:local -> not pulled)
        assert rec.events == [] or rec.kinds() == ["base-unreachable"], rec.events
        for i in range(4):  # a burst of saves: one build after it settles
            (ctx / "f").write_text(str(i + 1))
            time.sleep(0.1)
        assert built.wait(30)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    kinds = [k for k in rec.kinds() if k != "base-unreachable"]
    assert kinds == ["context-changed", "built", "stopped"], rec.events
    assert watcher.builds == 1
    assert consumer.image_record("app:loop").id == consumer.resolve("app:loop")


def test_index_tags_are_judged_by_this_platforms_manifest(registry: str, publisher: Client,
                                                         consumer: Client, tmp_path: Path) -> None:
    base = f"{registry}/dytest/multi-{uuid.uuid4().hex[:12]}:1"
    amd = str(publisher.resolve("busybox:local"))
    with open(busybox_tar(), "rb") as f:  # the same bytes labelled arm64: another image ID
        arm = str(publisher.import_image(f, platform="linux/arm64").id)
    index1 = str(publisher.push_index(base, [amd]).digest)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\n")
    options = BuildOptions(context_dir=str(ctx), platform="linux/amd64")
    [st] = check_bases(consumer, options)
    assert st.status == "not pulled" and st.remote_digest == index1
    amd_manifest = st.remote_manifest_digest
    assert amd_manifest not in ("", index1)
    consumer.pull(base, platform="linux/amd64")
    [st] = check_bases(consumer, options)
    assert (st.status, st.local_digest, st.remote_digest) == ("up to date", index1, index1)

    # The index gains an arm64 image: a new index digest, the same amd64 manifest -> still up to date
    index2 = str(publisher.push_index(base, [amd, arm]).digest)
    assert index2 != index1
    [st] = check_bases(consumer, options)
    assert (st.status, st.remote_digest, st.remote_manifest_digest) == ("up to date", index2, amd_manifest)
    # ... but for an arm64 build it is a different image, which this store does not have
    [st] = check_bases(consumer, BuildOptions(context_dir=str(ctx), platform="linux/arm64"))
    assert st.status == "not pulled" and st.reason == "the local image is linux/amd64"
    assert st.remote_manifest_digest not in (amd_manifest, index2)


def test_a_loaded_copy_of_the_same_image_is_up_to_date(registry: str, publisher: Client,
                                                          consumer: Client, tmp_path: Path) -> None:
    base = f"{registry}/dytest/imported-{uuid.uuid4().hex[:12]}:1"
    digest = _publish(publisher, base, 1, tmp_path)
    archive = tmp_path / "base.tar"  # docker save | docker load: no repo digest, the same image ID
    publisher.save([base], str(archive))
    with open(archive, "rb") as f:
        consumer.load(f)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\n")
    [st] = check_bases(consumer, BuildOptions(context_dir=str(ctx)))
    assert (st.status, st.local_digest, st.remote_digest) == ("up to date", "", digest)
    with open(busybox_tar(), "rb") as f:  # another config: not the same image
        consumer.import_image(f, changes=['CMD ["ls"]'], names=[base])
    [st] = check_bases(consumer, BuildOptions(context_dir=str(ctx)))
    assert st.status == "outdated"
