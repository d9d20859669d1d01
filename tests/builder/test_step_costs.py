"""What a RUN step costs outside the executor (issue 19 item 4): empty layers stored once and not
stacked, one metadata transaction per step, no directory sync of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import dockyard.archive.diff
import dockyard.content
from dockyard.builder import workspace
from dockyard.image import chain_ids
from dockyard.imageops.layers import stored_forms
from dockyard.metadata import MetadataStore
from tests.builder.conftest import Builds

BASE = "FROM busybox:local\n"
EMPTY_TAR = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"  # 1024 zero bytes


def test_empty_layers_are_kept_in_the_image_but_not_mounted(builds: Builds,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    stacks: list[int] = []
    real = workspace.Workspace.lowers

    def lowers(self: workspace.Workspace, top_first: Sequence[Path]) -> list[str]:
        stacks.append(len(top_first))
        return real(self, top_first)

    monkeypatch.setattr(workspace.Workspace, "lowers", lowers)
    ctx = builds.context(BASE + "RUN true\nRUN true\nRUN touch /f\nRUN true\nRUN test -f /f\n")
    builds.build(ctx, tags=["empty:1"])
    config = builds.client.image_config("empty:1")
    base = len(builds.client.image_config("busybox:local").diff_ids)
    # Docker keeps a RUN that changed nothing as an empty tar layer: so do we, in the image.
    assert [str(d) == EMPTY_TAR for d in config.diff_ids[base:]] == [True, True, False, True, True]
    # ... but an overlay gains nothing from an empty lower directory.
    assert stacks == [base, base, base, base + 1, base + 1]
    assert (builds.rootfs("empty:1") / "f").is_file()


def test_an_empty_layer_has_no_snapshot_and_stacks_as_nothing(builds: Builds) -> None:
    # A snapshot of an empty layer would be an empty directory made and renamed (1-2 ms a step):
    # neither the build that commits it nor the unpacking of an image that has it makes one.
    store = builds.client.store
    builds.build(builds.context(BASE + "RUN true\nRUN touch /f\nRUN true\n"), tags=["empty:2"])
    config = builds.client.image_config("empty:2")
    chains = chain_ids(config.diff_ids)
    assert [store.snapshots.exists(c) for c in chains] == [str(d) != EMPTY_TAR for d in config.diff_ids]
    for diff_id, chain in zip(config.diff_ids, chains, strict=True):
        # made again from the blobs: the stored image as a build's base (a layer the build kept
        # only as its snapshot stays: that snapshot is the layer)
        if store.snapshots.exists(chain) and store.meta.layer_blobs(diff_id):
            shutil.rmtree(store.snapshots.path(chain).parent)
    builds.build(builds.context("FROM empty:2\nRUN test -f /f\n"), tags=["empty:3"])
    assert [store.snapshots.exists(c) for c in chains] == [str(d) != EMPTY_TAR for d in config.diff_ids]
    graph = builds.client.inspect("empty:2")["GraphDriver"]["Data"]
    lowers = graph["LowerDir"].split(":") if "LowerDir" in graph else []
    assert len(lowers) + 1 == sum(str(d) != EMPTY_TAR for d in config.diff_ids)


def _count_steps(builds: Builds, monkeypatch: pytest.MonkeyPatch, steps: int) -> dict[str, int]:
    """Outer metadata transactions, blob directory syncs and layer tars written by a build of
    ``steps`` trivial RUN steps (``--no-cache``)."""
    counts = {"transactions": 0, "dir_syncs": 0, "tars": 0, "file_syncs": 0}
    real_transaction = MetadataStore.transaction
    real_sync = dockyard.content._fsync_dir
    real_diff = dockyard.archive.diff.write_overlay_diff
    real_fsync = os.fsync

    @contextlib.contextmanager
    def transaction(self: MetadataStore) -> Iterator[object]:
        if not self._depth:
            counts["transactions"] += 1
        with real_transaction(self) as conn:
            yield conn

    def sync(path: Path) -> None:
        counts["dir_syncs"] += 1
        real_sync(path)

    def fsync(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            counts["file_syncs"] += 1
        real_fsync(fd)

    def diff(*args: object, **kwargs: object) -> object:
        counts["tars"] += 1
        return real_diff(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(MetadataStore, "transaction", transaction)
        m.setattr(dockyard.content, "_fsync_dir", sync)
        m.setattr(dockyard.archive.diff, "write_overlay_diff", diff)  # what the workspace imports
        m.setattr(os, "fsync", fsync)
        ctx = builds.context(BASE + "RUN true\n" * steps, name=f"ctx{steps}")
        builds.build(ctx, tags=[f"steps:{steps}"], no_cache=True)
    return counts


def test_one_transaction_per_step_and_no_directory_sync(builds: Builds,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _count_steps(builds, monkeypatch, 1)  # the first build creates what every build shares
    two = _count_steps(builds, monkeypatch, 2)
    six = _count_steps(builds, monkeypatch, 6)
    assert six["transactions"] - two["transactions"] == 4
    assert six["dir_syncs"] == two["dir_syncs"]
    # A step's config is not synced either (a torn one is a cache miss): only the image's config is.
    assert six["file_syncs"] == two["file_syncs"]
    # The empty layer's tar is written once per build, whatever the number of empty steps.
    assert six["tars"] == two["tars"] == 1


def test_layer_size_counted_while_writing_equals_a_walk_of_the_snapshot(builds: Builds) -> None:
    from dockyard.image import chain_ids
    from dockyard.snapshot import tree_size

    ctx = builds.context(BASE + "RUN mkdir -p /d && echo hello > /d/a && ln /d/a /d/hard && "
                                "ln -s /d/a /d/sym && head -c 5000 /dev/zero > /d/big && rm /bin/vi\n")
    builds.build(ctx, tags=["sized:1"])
    store = builds.client.store
    config = builds.client.image_config("sized:1")
    chain = chain_ids(config.diff_ids)[-1]
    assert store.snapshots.size(chain) == tree_size(store.snapshots.path(chain)) == 6 + 5000 + len("/d/a")
    assert any(f.content_size == 5010 for f in stored_forms(store, config.diff_ids[-1]))


def test_a_step_config_torn_by_a_crash_is_a_cache_miss(builds: Builds) -> None:
    # Step configs are stored without fsync: after a machine crash one may hold garbage. The build
    # then runs that step again instead of failing.
    ctx = builds.context(BASE + "RUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n")
    builds.build(ctx, tags=["torn:1"])
    store = builds.client.store
    configs = {r.ref for r in store.meta.cache_records()}
    image_config = str(builds.client.image_record("torn:1").id)
    torn = sorted(configs - {image_config})
    assert torn
    for ref in torn:
        store.content.path(ref).write_bytes(b"\0" * 64)
    result = builds.build(ctx, tags=["torn:2"])
    assert result.cached < result.steps
    assert (builds.rootfs("torn:2") / "three").read_text() == "three\n"


def test_no_cache_build_starts_the_executor_helper_before_the_engine(builds: Builds,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # With --no-cache every RUN runs: the helper's start-up (~0.1 s) overlaps the loading of the build
    # engine instead of delaying the first RUN step.
    from dockyard.builder import engine
    from dockyard.builder.options import BuildOptions

    order: list[str] = []
    real_popen = subprocess.Popen
    real_init = engine.Builder.__init__

    def popen(args: list[str], *rest: Any, **kwargs: Any) -> Any:
        if any("dockyard.executor.zygote" in str(arg) for arg in args):
            order.append("helper")
        return real_popen(args, *rest, **kwargs)

    def init(self: engine.Builder, *args: Any, **kwargs: Any) -> None:
        order.append("builder")
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(engine.Builder, "__init__", init)
    ctx = builds.context(BASE + "RUN true\n", name="early")
    result = builds.client.build(BuildOptions(context_dir=str(ctx), tags=["early:1"], no_cache=True))
    assert result.steps == 1
    assert order == ["helper", "builder"]


def test_a_missed_step_starts_the_executor_and_its_network_beside_it(builds: Builds,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A missed step in a stage with RUN steps means those RUN steps will run: the executor's helper and
    # the private network's pasta start on a thread of their own while the steps before the first RUN
    # run, instead of inside the first RUN step.
    import threading

    from dockyard.executor.namespace import NamespaceExecutor

    calls: list[tuple[str, str]] = []
    real_start, real_prepare = NamespaceExecutor.start, NamespaceExecutor.prepare_network

    def start(self: NamespaceExecutor) -> None:
        calls.append(("start", threading.current_thread().name))
        real_start(self)

    def prepare(self: NamespaceExecutor) -> None:
        calls.append(("network", threading.current_thread().name))
        real_prepare(self)

    monkeypatch.setattr(NamespaceExecutor, "start", start)
    monkeypatch.setattr(NamespaceExecutor, "prepare_network", prepare)
    ctx = builds.context(BASE + "COPY a /a\nRUN cat /a\n", files={"a": "one\n"}, name="ahead")
    result = builds.build(ctx, tags=["ahead:1"])
    assert result.steps == 2 and result.cached == 0
    assert calls == [("start", "executor-start"), ("network", "executor-start")]
    calls.clear()
    builds.build(ctx, tags=["ahead:2"])  # every step cached: nothing starts
    assert calls == []


def test_steps_that_change_nothing_reuse_two_upper_directories(builds: Builds,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Making and removing a step's upper and work directories is five directory writes on disk: the
    # steps that change nothing hand theirs on, so a build of such steps makes two pairs in all.
    made: list[str] = []
    real = workspace.Workspace.new_dir

    def new_dir(self: workspace.Workspace, prefix: str) -> Path:
        made.append(prefix)
        return real(self, prefix)

    monkeypatch.setattr(workspace.Workspace, "new_dir", new_dir)
    builds.build(builds.context(BASE + "RUN true\n" * 6 + "RUN touch /f\nRUN true\nRUN test -f /f\n"),
                 tags=["reuse:1"], no_cache=True)
    # two pairs, then one more for the step after the one whose upper became its layer
    assert made.count("upper") == made.count("work") == 3
    assert (builds.rootfs("reuse:1") / "f").is_file()


def test_a_change_to_the_root_directory_alone_does_not_reach_a_later_step(builds: Builds) -> None:
    # ``chmod /`` or an extended attribute on / lands on the upper directory's root, in no layer: that
    # upper must not become a later step's.
    reference = builds.context(BASE + "RUN stat -c %a:%u / > /mode\n", name="reference")
    builds.build(reference, tags=["root:0"], no_cache=True)
    expected = (builds.rootfs("root:0") / "mode").read_text()
    check = f"RUN test \"$(stat -c %a:%u /)\" = {expected.strip()}\n"
    changes = "RUN true\nRUN true\nRUN chmod 700 / && chown 1:1 /\n"
    ctx = builds.context(BASE + changes + check * 4, name="chmod")
    builds.build(ctx, tags=["root:1"], no_cache=True)  # a check that fails fails the build


def test_an_upper_directory_is_reused_only_as_it_was_made(builds: Builds) -> None:
    store = builds.client.store
    with store.lease() as lease:
        ws = workspace.Workspace(store, lease)
        first, second = ws.new_upper(), ws.new_upper()
        ws.reuse_upper(*first)
        assert ws.new_upper() not in (first, second)  # the only one given back: its run may still close
        ws.reuse_upper(*second)
        assert ws.new_upper() == first  # the older of two
        for change in ("entry", "mode", "xattr"):
            pair = ws.new_upper()
            upper = pair[0]
            if change == "entry":
                (upper / "f").touch()
            elif change == "mode":
                upper.chmod(0o700)
            else:
                os.setxattr(upper, "user.note", b"x")
            ws.reuse_upper(*pair)
            ws.reuse_upper(*ws.new_upper())
            assert pair not in ws._unused, change
        ws.close()


def test_the_empty_layer_is_leased_once_per_build(builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    # Storing the empty layer names it in the build's lease (a GC keeps it from then on): the later
    # steps that change nothing only check that it is there, with no metadata write of their own.
    from dockyard.imageops import Lease

    leased: list[str] = []
    real = Lease.add_blob

    def add_blob(self: Lease, digest: str) -> None:
        leased.append(str(digest))
        real(self, digest)

    monkeypatch.setattr(Lease, "add_blob", add_blob)
    builds.build(builds.context(BASE + "RUN true\n" * 5), tags=["lease:1"], no_cache=True)
    assert leased.count(EMPTY_TAR) == 1
