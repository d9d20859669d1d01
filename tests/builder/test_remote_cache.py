"""Two runners sharing a build cache (``--cache-to`` / ``--cache-from``), as CI fleets do.

Each runner is a fresh store; the base image and the cache travel through a registry: Debian's
distribution 2.8 (the peers' 127.0.0.1:5000) and dockyard's own registry, served in the test.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import pytest

from dockyard.archive import open_decompressed
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.builder.remotecache.spec import CacheSpec, parse_cache_spec
from dockyard.client import Client
from dockyard.errors import InvalidArgument
from dockyard.progress import Event, ProgressEvent, VertexCompleted
from dockyard.registry.server import RegistryServer
from tests.builder.conftest import Builds, busybox_tar
from tests.conftest import PEERS
from tests.peers import require

DISTRIBUTION = "127.0.0.1:5000"
# Each test builds with two or three fresh stores: seconds each.
pytestmark = [pytest.mark.busybox, pytest.mark.slow]


@dataclass
class Registry:
    address: str
    prefix: str                                   # a repository namespace of this test's own
    storage: Path | None = None                   # dockyard's registry: its files
    log: list[str] = field(default_factory=list)  # dockyard's registry: its access log

    def ref(self, name: str) -> str:
        return f"{self.address}/{self.prefix}/{name}"

    def blob_gets(self, since: int = 0) -> list[str]:
        """Digests of the blobs served whole (GET 200) since log line ``since``."""
        out = []
        for line in self.log[since:]:
            m = re.search(r'"GET /v2/\S+/blobs/(sha256:[0-9a-f]{64}) HTTP/[\d.]+" 200', line)
            if m:
                out.append(m.group(1))
        return out


class _Keep(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(params=["dockyard", "distribution"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    prefix = f"cachetest-{os.urandom(4).hex()}"
    if request.param == "distribution":
        require("registry")
        yield Registry(DISTRIBUTION, prefix)
        return
    reg = Registry("", prefix, storage=tmp_path / "registry")
    logger = logging.getLogger("dockyard.registry.access")
    handler = _Keep(reg.log)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        with RegistryServer(storage=reg.storage, access_log=True) as server:
            reg.address = server.address
            yield reg
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


class Runner:
    """A CI runner: an empty store of its own; what it builds and what its builds said."""

    def __init__(self, name: str) -> None:
        self.root = Path("/dev/shm") / f"dy-runner-{name}-{os.getpid()}-{os.urandom(3).hex()}"
        self.events: list[object] = []
        self.client = Client(self.root, progress=self.events.append)

    def build(self, ctx: Path, **kwargs: object) -> BuildResult:
        self.events.clear()
        steps: list[ProgressEvent] = []
        opts = BuildOptions(context_dir=str(ctx), progress=steps.append, **kwargs)  # type: ignore[arg-type]
        result = self.client.build(opts)
        self.events.extend(steps)
        return result

    def statuses(self) -> dict[str, str]:
        return {e.name: e.outcome for e in self.events if isinstance(e, VertexCompleted)}

    def steps(self) -> dict[str, str]:
        """Title -> outcome of the Dockerfile steps that have a cache (RUN, COPY, WORKDIR...)."""
        return {k: v for k, v in self.statuses().items()
                if k.startswith("[") and not k.startswith("[internal]") and "] FROM " not in k}

    def close(self) -> None:
        self.client.close()
        subprocess.run(["umount", "-R", "-l", str(self.root)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture()
def runners() -> Iterator[list[Runner]]:
    made = [Runner(n) for n in "abc"]
    yield made
    for r in made:
        r.close()


@pytest.fixture()
def base(registry: Registry) -> str:
    """busybox pushed to the registry: every runner pulls the same base (the same image ID)."""
    seed = Runner("seed")
    try:
        with open(busybox_tar(), "rb") as f:
            seed.client.import_image(f, changes=['CMD ["sh"]'], names=[registry.ref("busybox:1")])
        seed.client.push(registry.ref("busybox:1"))
    finally:
        seed.close()
    return registry.ref("busybox:1")


def _reg(ref: str, **attrs: str) -> list[CacheSpec]:
    text = ",".join([f"type=registry,ref={ref}", *(f"{k}={v}" for k, v in attrs.items())])
    return [parse_cache_spec(text, "--cache-to")]


def _from(text: str) -> list[CacheSpec]:
    return [parse_cache_spec(text, "--cache-from")]


def _ref_context(tmp: Path) -> Path:
    ctx = tmp / "ref"
    subprocess.run([sys.executable, str(PEERS / "ref" / "gen-context.py"), str(ctx)], check=True,
                   stdout=subprocess.DEVNULL)
    return ctx


def _layer_blobs(client: Client, image: str) -> set[str]:
    return {str(f.digest) for d in client.image_config(image).diff_ids
            for f in client.store.meta.layer_blobs(d)}


def test_second_runner_reports_every_step_cached(registry: Registry, base: str, runners: list[Runner],
                                                 tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = _ref_context(tmp_path)
    cache = registry.ref("cache:ref")
    args = {"BASE": base}
    first = a.build(ctx, build_args=args, tags=["app:1"], cache_to=_reg(cache, mode="max"))
    builder_only = set(a.client.image_config("app:1").diff_ids)  # what the builder stage made is not here
    builder_stage = [e for e in a.events if isinstance(e, VertexCompleted) and e.name.startswith("[builder")]
    assert builder_stage

    mark = len(registry.log)
    second = b.build(ctx, build_args=args, tags=["app:1"], cache_from=_from(f"type=registry,ref={cache}"))
    steps = b.steps()
    assert steps and set(steps.values()) == {"cached"}, steps
    assert second.cached == second.steps
    assert second.image_id == first.image_id  # the same image, bit for bit

    # Nothing the build did not need was downloaded: the builder stage's layers stayed in the registry.
    a_layers = {str(d) for d in a.client.store.meta.all_layer_blobs() for d in [d.diff_id]}
    builder_layers = a_layers - {str(d) for d in builder_only}
    assert builder_layers
    for diff_id in builder_layers:
        assert not b.client.store.meta.layer_blobs(diff_id), f"runner B fetched {diff_id}"
    if registry.storage is not None:
        fetched = set(registry.blob_gets(mark))
        image_blobs = _layer_blobs(b.client, "app:1")
        layer_gets = {d for d in fetched if b.client.store.meta.layer_by_blob(d) is not None}
        assert layer_gets <= image_blobs


def test_second_runner_asks_the_store_for_each_layer_a_few_times_not_per_step(
        registry: Registry, base: str, runners: list[Runner], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each step's lookup names every layer below it: asking the local store (a query and a stat) for
    # each, step after step, was ~115 queries for the reference build, contended by the fetches.
    from dockyard.metadata import MetadataStore

    a, b, _ = runners
    ctx = _ref_context(tmp_path)
    cache = registry.ref("cache:asks")
    a.build(ctx, build_args={"BASE": base}, tags=["app:1"], cache_to=_reg(cache, mode="max"))
    asked: list[str] = []
    real = MetadataStore.layer_blobs

    def layer_blobs(self: MetadataStore, diff_id: str) -> list[object]:
        asked.append(str(diff_id))
        return real(self, diff_id)  # type: ignore[return-value]

    monkeypatch.setattr(MetadataStore, "layer_blobs", layer_blobs)
    second = b.build(ctx, build_args={"BASE": base}, tags=["app:1"],
                     cache_from=_from(f"type=registry,ref={cache}"))
    assert second.cached == second.steps
    layers = {str(f.diff_id) for f in a.client.store.meta.all_layer_blobs()}  # every layer either stage made
    assert len(asked) <= 3 * len(layers), (len(asked), len(layers))


def test_second_runner_fetches_the_image_s_layers_while_it_builds(
        registry: Registry, base: str, runners: list[Runner], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.builder.remotecache.remote import RemoteCache

    a, b, _ = runners
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base} AS builder\nCOPY one.txt /one.txt\nRUN cat /one.txt > /one.out\n"
        f"FROM {base}\nCOPY --from=builder /one.out /one.out\nRUN cp /one.out /two.out\n"
        "RUN cp /two.out /three.out\n")
    (ctx / "one.txt").write_text("one\n")
    cache = registry.ref("cache:prefetch")
    a.build(ctx, tags=["app:1"], cache_to=_reg(cache, mode="max"))
    calls: list[tuple[str, list[str]]] = []
    real = RemoteCache.prefetch

    def spy(self: RemoteCache, diff_ids: list[str], lease: object) -> None:
        calls.append((threading.current_thread().name, [str(d) for d in diff_ids]))
        real(self, diff_ids, lease)  # type: ignore[arg-type]

    monkeypatch.setattr(RemoteCache, "prefetch", spy)
    b.build(ctx, tags=["app:1"], cache_from=_from(cache))
    assert set(b.steps().values()) == {"cached"}
    image = [str(d) for d in b.client.image_config("app:1").diff_ids]
    base_layers = len(b.client.image_config(base).diff_ids)
    # Each restored step of the exported stage asked for its layers at once, from its stage's thread
    # (the fetches overlap the rest of the build); the builder stage's layers were never asked for.
    from_stages = [ids for thread, ids in calls if thread.startswith("stage")]
    assert [ids[base_layers:] for ids in from_stages] == [image[base_layers:i] for i in (base_layers + 1,
                                                                                        base_layers + 2,
                                                                                        base_layers + 3)]
    builder_only = {str(d) for d in a.client.store.meta.all_layer_blobs() for d in [d.diff_id]} - set(image)
    assert builder_only and not builder_only & {d for _, ids in calls for d in ids}


def test_one_file_change_runs_only_affected_steps(registry: Registry, base: str, runners: list[Runner],
                                                  tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base} AS one\nCOPY one.txt /one.txt\nRUN cat /one.txt > /one.out\n"
        f"FROM {base} AS two\nCOPY two.txt /two.txt\nRUN cat /two.txt > /two.out\n"
        f"FROM {base}\nCOPY --from=one /one.out /one.out\nCOPY --from=two /two.out /two.out\n"
        "RUN cat /one.out /two.out > /all\n")
    (ctx / "one.txt").write_text("one\n")
    (ctx / "two.txt").write_text("two\n")
    cache = registry.ref("cache:change")
    a.build(ctx, tags=["app:1"], cache_to=_reg(cache, mode="max"))
    (ctx / "two.txt").write_text("two, changed\n")
    result = b.build(ctx, tags=["app:1"], cache_from=_from(cache))
    steps = b.steps()
    # Runner B says why, from the inputs runner A's records carry.
    why = {label: reason for label, outcome, reason in result.explanations if outcome == "ran"}
    assert why["[two 2/3] COPY two.txt /two.txt"] == "source files changed: two.txt (1 changed)"
    ran = {k for k, v in steps.items() if v == "done"}
    cached = {k for k, v in steps.items() if v == "cached"}
    assert {k for k in ran if k.startswith("[one ")} == set()
    assert any("COPY one.txt" in k for k in cached) and any("/one.out" in k and "RUN" in k for k in cached)
    assert any("COPY two.txt" in k for k in ran)
    assert any("COPY --from=one" in k for k in cached)
    assert any("COPY --from=two" in k for k in ran)
    assert any("> /all" in k for k in ran)


def _small(tmp: Path, base: str) -> Path:
    ctx = tmp / "small"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY a.txt /a.txt\n"
                                    "RUN cp /a.txt /b.txt && echo x >> /b.txt\nRUN cat /b.txt > /c.txt\n")
    (ctx / "a.txt").write_text("a\n")
    return ctx


def test_corrupt_registry_blob_makes_step_run(registry: Registry, base: str, runners: list[Runner],
                                              tmp_path: Path) -> None:
    if registry.storage is None:
        pytest.skip("the distribution peer's storage is not ours to damage")
    a, b, _ = runners
    ctx = _small(tmp_path, base)
    cache = registry.ref("cache:corrupt")
    a.build(ctx, tags=["app:1"], cache_to=_reg(cache))
    top = a.client.image_config("app:1").diff_ids[-1]
    blob = next(f for f in a.client.store.meta.layer_blobs(top) if f.media_type.endswith("gzip"))
    damaged = 0
    for path in registry.storage.rglob(blob.digest.removeprefix("sha256:")):
        if path.is_file() and path.stat().st_size == blob.size:
            path.write_bytes(b"\0" * blob.size)
            damaged += 1
    assert damaged
    result = b.build(ctx, tags=["app:1"], cache_from=_from(cache))
    assert any("unusable" in w for w in result.warnings), result.warnings
    assert any(k.startswith("[") and "cat /b.txt" in k and v == "done" for k, v in b.statuses().items())
    assert b.client.image_config("app:1").diff_ids[:-1] == a.client.image_config("app:1").diff_ids[:-1]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_broken_local_cache_blob_makes_step_run(damage: str, registry: Registry, base: str,
                                                runners: list[Runner], tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = _small(tmp_path, base)
    layout = tmp_path / "cachedir"
    a.build(ctx, tags=["app:1"], cache_to=[parse_cache_spec(f"type=local,dest={layout}", "--cache-to")])
    top = a.client.image_config("app:1").diff_ids[-1]
    blob = next(f for f in a.client.store.meta.layer_blobs(top) if f.media_type.endswith("gzip"))
    path = layout / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"\0" * blob.size)
    result = b.build(ctx, tags=["app:1"], cache_from=_from(f"type=local,src={layout}"))
    assert any("unusable" in w for w in result.warnings), result.warnings
    steps = b.steps()
    assert steps["[3/4] RUN cp /a.txt /b.txt && echo x >> /b.txt"] == "cached"
    assert steps["[4/4] RUN cat /b.txt > /c.txt"] == "done"


def test_concurrent_exports_leave_a_readable_cache(registry: Registry, base: str, runners: list[Runner],
                                                   tmp_path: Path) -> None:
    a, b, c = runners
    cache = registry.ref("cache:race")
    contexts = []
    for name in ("x", "y"):
        ctx = tmp_path / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY f /f\nRUN cat /f > /g\n")
        (ctx / "f").write_text(f"{name}\n")
        contexts.append(ctx)
    errors: list[BaseException] = []

    def run(runner: Runner, ctx: Path) -> None:
        try:
            runner.build(ctx, tags=["app:1"], cache_to=_reg(cache, mode="max"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r, x)) for r, x in zip((a, b), contexts, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    hits = 0
    for ctx in contexts:
        result = c.build(ctx, tags=["app:1"], cache_from=_from(cache))
        assert not [w for w in result.warnings if "cache" in w], result.warnings
        hits += result.cached == result.steps
    assert hits >= 1  # the last export won and is whole


def test_inline_cache_needs_nothing_else(registry: Registry, base: str, runners: list[Runner],
                                         tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = _small(tmp_path, base)
    image = registry.ref("app:inline")
    a.build(ctx, tags=[image], push=True, cache_to=[parse_cache_spec("type=inline", "--cache-to")])
    b.build(ctx, tags=["app:2"], cache_from=_from(image))
    assert set(b.steps().values()) == {"cached"}, b.steps()
    assert b.client.image_config("app:2").diff_ids == a.client.image_config(image).diff_ids


def test_cached_build_pushes_by_mount(registry: Registry, base: str, runners: list[Runner],
                                      tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = _small(tmp_path, base)
    cache = registry.ref("cache:push")
    a.build(ctx, tags=["app:1"], cache_to=_reg(cache))
    mark = len(registry.log)
    result = b.build(ctx, tags=[registry.ref("pushed:1")], push=True, cache_from=_from(cache))
    pushed = [e for e in b.events if isinstance(e, Event) and e.id
              and (e.name in ("Pushed", "Layer already exists") or e.name.startswith("Mounted"))]
    assert pushed
    assert not [e for e in pushed if isinstance(e, Event) and e.name == "Pushed"], pushed
    if registry.storage is not None:
        # Only the image config goes up (the layers are mounted from the cache repository).
        config = result.image_id.replace(":", "%3A")
        uploads = [line for line in registry.log[mark:]
                   if re.search(r'"(PUT|PATCH) /v2/\S+/blobs/uploads/', line) and config not in line]
        assert not uploads, uploads
        assert any("mount=" in line and '" 201 ' in line for line in registry.log[mark:])


def test_unknown_cache_version_is_a_warning(base: str, runners: list[Runner], tmp_path: Path) -> None:
    from dockyard.builder.remotecache.backends import LayoutBackend
    from dockyard.oci import mediatypes as mt
    from dockyard.oci.descriptor import Descriptor
    from dockyard.oci.digest import Digest
    from dockyard.oci.manifest import Manifest

    a, _, _ = runners
    layout = tmp_path / "future"
    body = b'{"schema": "dockyard.buildcache", "version": 9}'
    backend = LayoutBackend(str(layout))
    config = Descriptor("application/vnd.dockyard.buildcache.v9+json", Digest.from_bytes(body), len(body))
    backend.put_blob(config, lambda: __import__("io").BytesIO(body))
    backend.put_manifest(Manifest(config, (), media_type=mt.OCI_MANIFEST).to_json(), mt.OCI_MANIFEST)
    ctx = _small(tmp_path, base)
    result = a.build(ctx, tags=["app:1"], cache_from=_from(f"type=local,src={layout}"))
    assert any("newer" in w and str(layout) in w for w in result.warnings), result.warnings
    assert result.cached == 0


@pytest.mark.parametrize(("text", "flag", "message"), [
    ("type=s3,ref=x", "--cache-to", "unknown cache type 's3'"),
    ("type=registry", "--cache-to", "ref= is required"),
    ("type=registry,ref=r/x,mode=all", "--cache-to", "mode must be min or max"),
    ("type=local", "--cache-from", "src= is required"),
    ("type=registry,ref", "--cache-from", "is not key=value"),
])
def test_bad_cache_flags_are_one_line_errors(text: str, flag: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_cache_spec(text, flag)


def test_cache_flag_defaults() -> None:
    assert parse_cache_spec("reg/x:1", "--cache-from") == CacheSpec("registry", "reg/x:1")
    spec = parse_cache_spec("type=registry,ref=r/x,mode=max,compression=zstd", "--cache-to")
    assert (spec.mode, spec.compression) == ("max", "zstd")
    assert parse_cache_spec("type=local,dest=/d", "--cache-to").location == "/d"


def test_cache_mount_filled_by_a_is_seen_by_b(registry: Registry, base: str, runners: list[Runner],
                                              tmp_path: Path) -> None:
    a, b, _ = runners
    ctx = tmp_path / "mounts"
    ctx.mkdir()
    (ctx / "v").write_text("1\n")
    # The RUN records what the cache held before it, then adds to it: B must find A's files there.
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nCOPY v /v\n"
        "RUN --mount=type=cache,id=pkgs,target=/cache ls /cache > /seen; "
        "head -c 3000000 /dev/urandom > /cache/big-$(cat /v); echo $(cat /v) > /cache/small-$(cat /v); "
        "mkdir -p /cache/d && ln -sf ../small-1 /cache/d/link\n")
    cache = registry.ref("cache:mounts")
    to = _reg(cache, mode="max", mounts="true")
    a.build(ctx, tags=["app:1"], cache_to=to)
    (ctx / "v").write_text("2\n")  # the RUN must run on B
    mark = len(registry.log)
    result = b.build(ctx, tags=["app:1"], cache_from=_from(cache), cache_to=to)
    assert not result.warnings, result.warnings
    top = b.client.image_config("app:1").diff_ids[-1]
    blob = b.client.store.meta.layer_blobs(top)[0]
    with b.client.store.content.open(blob.digest) as f:
        raw, _ = open_decompressed(f)
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            listing = next(tar.extractfile(m).read() for m in tar if m.name == "seen")  # type: ignore[union-attr]
    assert listing.split() == [b"big-1", b"d", b"small-1"]
    mount = next(p for p in (b.root / "cache-mounts").iterdir() if p.is_dir())
    assert (mount / "big-1").stat().st_size == 3000000
    assert os.readlink(mount / "d" / "link") == "../small-1"
    assert (mount / "big-2").exists()
    if registry.storage is not None:
        # B's export sent only what is new: the chunks of big-2 and the packs that changed.
        sent = [line for line in registry.log[mark:] if re.search(r'"PUT /v2/\S+/blobs/uploads/', line)]
        big1 = (mount / "big-1").read_bytes()
        old_chunk = "sha256%3A" + sha256(big1[:4 << 20]).hexdigest()
        assert not [line for line in sent if old_chunk in line]
        # Exporting the unchanged cache again uploads no chunk at all.
        mark = len(registry.log)
        b.build(ctx, tags=["app:1"], cache_to=to)
        sent = [line for line in registry.log[mark:] if re.search(r'"PUT /v2/\S+/blobs/uploads/', line)]
        assert len(sent) <= 2, sent  # the cache document and, when it changed, the mount index


def test_missing_or_unreadable_cache_source_is_a_warning(builds: Builds, tmp_path: Path) -> None:
    ctx = builds.context("FROM busybox:local\nRUN echo hi > /hi\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (bad / "index.json").write_text("{not json")
    sources = [parse_cache_spec(f"type=local,src={tmp_path / 'none'}", "--cache-from"),
               parse_cache_spec(f"type=local,src={bad}", "--cache-from")]
    result = builds.build(ctx, cache_from=sources)
    assert any("not found" in w and "none" in w for w in result.warnings), result.warnings
    assert any(w.startswith(f"WARNING: ignoring cache {bad}") for w in result.warnings), result.warnings
    assert builds.statuses()["[2/2] RUN echo hi > /hi"] == "done"


def _layout_mounts(layout: Path) -> dict[str, object]:
    from dockyard.builder.remotecache.backends import LayoutBackend
    from dockyard.builder.remotecache.document import parse_document
    from dockyard.oci.manifest import parse_manifest

    backend = LayoutBackend(str(layout))
    found = backend.manifest()
    assert found is not None
    manifest = parse_manifest(found[0])
    return dict(parse_document(backend.blob_bytes(manifest.config), "test").mounts)


def test_cache_mounts_by_id_and_size_cap(builds: Builds, tmp_path: Path) -> None:
    ctx = builds.context(
        "FROM busybox:local\n"
        "RUN --mount=type=cache,id=small,target=/s --mount=type=cache,id=large,target=/l "
        "echo x > /s/f && head -c 5000 /dev/zero > /l/f\n")
    only = tmp_path / "only-small"
    builds.build(ctx, cache_to=[parse_cache_spec(f"type=local,dest={only},mounts=small", "--cache-to")])
    assert len(_layout_mounts(only)) == 1
    capped = tmp_path / "capped"
    result = builds.build(ctx, no_cache=True, cache_to=[
        parse_cache_spec(f"type=local,dest={capped},mounts=true,mount-max-size=4k", "--cache-to")])
    assert len(_layout_mounts(capped)) == 1  # the 5000-byte one is left out, with a warning
    assert any("not exported" in w and "over mount-max-size 4096" in w for w in result.warnings), \
        result.warnings
    everything = tmp_path / "all"
    builds.build(ctx, no_cache=True, cache_to=[parse_cache_spec(f"type=local,dest={everything},mounts=true",
                                                                "--cache-to")])
    assert len(_layout_mounts(everything)) == 2
    with pytest.raises(InvalidArgument, match="mount-max-size 'lots' is not a size"):
        parse_cache_spec("type=local,dest=/x,mount-max-size=lots", "--cache-to")


TWO = "linux/amd64,linux/arm64"


def _two_platforms(tmp: Path) -> Path:
    """Two platforms without a base image or qemu: every step's key differs by platform (scratch's)."""
    ctx = tmp / "two"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM scratch AS gen\nARG TARGETARCH\nCOPY a.txt /gen/a.txt\n"
                                    "WORKDIR /gen/$TARGETARCH\n"
                                    "FROM scratch\nCOPY --from=gen /gen /gen\nCOPY b.txt /b.txt\n")
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    return ctx


def _platform_steps(runner: Runner) -> dict[str, str]:
    """Title -> outcome of the per-platform Dockerfile steps (``[linux/arm64 gen 2/3] COPY ...``)."""
    return {k: v for k, v in runner.statuses().items()
            if k.startswith("[linux/") and "internal]" not in k and "] FROM " not in k}


def test_two_platform_cache_export_holds_both(registry: Registry, runners: list[Runner],
                                              tmp_path: Path) -> None:
    a, b, c = runners
    ctx = _two_platforms(tmp_path)
    cache = registry.ref("cache:two")
    first = a.build(ctx, platform=TWO, tags=["app:two"], cache_to=_reg(cache, mode="max"))
    # One export line for the build, not one per platform.
    assert [k for k in a.statuses() if k.startswith("exporting cache")] == [f"exporting cache to {cache}"]
    second = b.build(ctx, platform=TWO, tags=["app:two"], cache_from=_from(f"type=registry,ref={cache}"))
    steps = _platform_steps(b)
    for platform in TWO.split(","):
        mine = {k: v for k, v in steps.items() if k.startswith(f"[{platform} ")}
        assert len(mine) == 4 and set(mine.values()) == {"cached"}, steps
    assert second.cached == second.steps
    assert second.images == first.images  # type: ignore[attr-defined]
    # One platform alone, from the same cache, hits too.
    c.build(ctx, platform="linux/arm64", tags=["app:arm"], cache_from=_from(f"type=registry,ref={cache}"))
    assert c.steps() and set(c.steps().values()) == {"cached"}, c.steps()


def test_inline_cache_from_a_multi_platform_index(registry: Registry, runners: list[Runner],
                                                  tmp_path: Path) -> None:
    a, b, c = runners
    ctx = _two_platforms(tmp_path)
    image = registry.ref("app:inline-two")
    first = a.build(ctx, platform=TWO, tags=[image], push=True,
                    cache_to=[parse_cache_spec("type=inline", "--cache-to")])
    second = b.build(ctx, platform=TWO, tags=["app:two"], cache_from=_from(image))
    assert not [w for w in second.warnings if "cache" in w], second.warnings
    steps = _platform_steps(b)
    for platform in TWO.split(","):
        # The final stage's steps come from that platform's inline records (an inline cache holds
        # only the exported image's stages, so the gen stage runs).
        mine = {k: v for k, v in steps.items() if k.startswith(f"[{platform} stage-1 ")}
        assert len(mine) == 2 and set(mine.values()) == {"cached"}, steps
    for platform, image_id in first.images.items():  # type: ignore[attr-defined]
        # The same layers (the configs differ: the first holds its inline cache).
        theirs = b.client.image_config(second.images[platform]).diff_ids  # type: ignore[attr-defined]
        assert theirs == a.client.image_config(image_id).diff_ids
    third = c.build(ctx, platform="linux/arm64", tags=["app:arm"], cache_from=_from(image))
    mine = {k: v for k, v in c.steps().items() if k.startswith("[stage-1 ")}
    assert len(mine) == 2 and set(mine.values()) == {"cached"}, c.steps()
    arm = first.images["linux/arm64"]  # type: ignore[attr-defined]
    assert c.client.image_config(third.image_id).diff_ids == a.client.image_config(arm).diff_ids
