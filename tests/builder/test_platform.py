"""Builds for a foreign platform: RUN goes through qemu's binfmt handler, the image says arm64."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import BuildError, DockyardError
from tests.builder.conftest import Builds
from tests.peers import require


@pytest.fixture()
def arm64_base(builds: Builds) -> str:
    require("binfmt")
    try:
        builds.client.bootstrap("busybox", names=["busybox:arm64"], platform="linux/arm64")
    except DockyardError as exc:
        pytest.skip(f"no arm64 busybox-static package here: {exc}")
    return "busybox:arm64"


@pytest.mark.binfmt
@pytest.mark.slow
def test_foreign_platform_build(builds: Builds, arm64_base: str) -> None:
    ctx = builds.context(f"FROM {arm64_base}\nARG TARGETARCH\n"
                         "RUN uname -m > /arch && echo $TARGETARCH >> /arch\n")
    builds.build(ctx, tags=["arm:1"], platform="linux/arm64")
    assert (builds.rootfs("arm:1") / "arch").read_text().split() == ["aarch64", "arm64"]
    assert builds.client.image_config("arm:1").architecture == "arm64"


def test_platform_mismatch_is_an_error_without_registry(builds: Builds) -> None:
    ctx = builds.context("FROM busybox:local\nRUN true\n")
    with pytest.raises(BuildError, match="does not match the specified platform: wanted linux/arm64"):
        builds.build(ctx, platform="linux/arm64")


def test_scratch_stage_takes_the_target_platform(builds: Builds) -> None:
    ctx = builds.context("FROM busybox:local AS src\nRUN echo x > /x\nFROM scratch\nCOPY --from=src /x /x\n")
    builds.build(ctx, tags=["scr:1"])
    config = builds.client.image_config("scr:1")
    assert (config.os, config.architecture) == ("linux", "amd64")
    assert (builds.rootfs("scr:1") / "x").read_text() == "x\n"


@pytest.mark.binfmt
@pytest.mark.skopeo
@pytest.mark.slow
def test_multi_platform_build_makes_one_index(builds: Builds, arm64_base: str, tmp_path: Path) -> None:
    import json
    import subprocess

    from dockyard.builder.multiplatform import MultiPlatformResult
    from dockyard.builder.options import Output

    builds.client.tag("busybox:local", "busybox:amd64")
    ctx = builds.context("ARG TARGETARCH\nFROM busybox:${TARGETARCH}\nRUN uname -m > /arch\n")
    out = tmp_path / "multi.tar"
    result = builds.build(ctx, tags=["multi:1"], platform="linux/amd64,linux/arm64",
                          outputs=[Output("oci", str(out))])
    assert isinstance(result, MultiPlatformResult)
    assert set(result.images) == {"linux/amd64", "linux/arm64"}
    index = json.loads(builds.client.store.content.read(result.index_digest))
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    assert builds.client.image_config("multi:1").architecture == "amd64"  # the host's platform is named
    for platform, arch in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        builds.client.tag(result.images[platform], f"multi:{arch}")
        assert (builds.rootfs(f"multi:{arch}") / "arch").read_text().strip() == arch
    inspected = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{out}"], capture_output=True,
                               text=True, check=True)
    assert json.loads(inspected.stdout)["manifests"] == index["manifests"]


@pytest.mark.registry
@pytest.mark.binfmt
@pytest.mark.slow
def test_multi_platform_push_then_pull_each(builds: Builds, arm64_base: str) -> None:
    import os
    import shutil
    import subprocess
    import uuid

    from dockyard.builder.options import BuildOptions
    from dockyard.client import Client

    builds.client.tag("busybox:local", "busybox:amd64")
    ref = f"127.0.0.1:5000/dytest/multi-{uuid.uuid4().hex[:8]}:1"
    ctx = builds.context("ARG TARGETARCH\nFROM busybox:${TARGETARCH}\nRUN uname -m > /arch\n")
    result = builds.client.build(BuildOptions(context_dir=str(ctx), tags=[ref], push=True,
                                              platform="linux/amd64,linux/arm64"))
    images = result.images  # type: ignore[attr-defined]
    other = Path("/dev/shm") / f"dy-pullmulti-{os.getpid()}"
    try:
        with Client(other) as puller:
            for platform in ("linux/arm64", "linux/amd64"):
                pulled = puller.pull(ref, platform=platform)
                assert str(pulled.image_id) == images[platform]
    finally:
        subprocess.run(["umount", "-R", "-l", str(other)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(other, ignore_errors=True)


@pytest.fixture()
def multi_base(builds: Builds, arm64_base: str) -> str:
    """``busybox:multi``: amd64 (imported) and arm64 (bootstrapped) under one tag."""
    from tests.builder.conftest import busybox_tar

    with open(busybox_tar(), "rb") as f:
        builds.client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:multi"], platform="linux/amd64")
    builds.client.bootstrap("busybox", names=["busybox:multi"], platform="linux/arm64")
    return "busybox:multi"


@pytest.mark.binfmt
@pytest.mark.slow
def test_multi_platform_base_serves_each_platform_locally(builds: Builds, multi_base: str) -> None:
    """No puller (no registry): both platforms come from the local index; titles carry the platform."""
    ctx = builds.context(f"FROM {multi_base}\nARG TARGETARCH\n"
                         "RUN uname -m > /arch && echo $TARGETARCH >> /arch\n")
    builds.build(ctx, tags=["app:multi"], platform="linux/amd64,linux/arm64")
    titles = [name for name, _ in builds.timeline()]
    assert "[linux/arm64 2/2] RUN uname -m > /arch && echo $TARGETARCH >> /arch" in titles
    assert "[linux/amd64 2/2] RUN uname -m > /arch && echo $TARGETARCH >> /arch" in titles
    held = builds.client.store.meta.tag_platforms("docker.io/library/app:multi")
    assert [m.platform for m in held] == ["linux/amd64", "linux/arm64"]
    for m in held:
        builds.client.tag(m.image_id, f"app:{m.platform.split('/')[1]}")
    assert (builds.rootfs("app:arm64") / "arch").read_text().split() == ["aarch64", "arm64"]
    assert (builds.rootfs("app:amd64") / "arch").read_text().split() == ["x86_64", "amd64"]
    # Without --platform the host's platform is taken from the multi-platform base.
    builds.build(ctx, tags=["app:host"])
    assert builds.client.image_config("app:host").architecture == "amd64"
    with pytest.raises(BuildError, match="busybox:multi has no linux/s390x variant locally"):
        builds.build(ctx, platform="linux/s390x")


@pytest.mark.binfmt
@pytest.mark.slow
def test_build_platform_stage_cross_builds_for_each_target(builds: Builds, multi_base: str) -> None:
    """``FROM --platform=$BUILDPLATFORM``: that stage runs natively for every target, with TARGET* set."""
    ctx = builds.context(f"FROM --platform=$BUILDPLATFORM {multi_base} AS build\n"
                         "ARG TARGETPLATFORM BUILDPLATFORM TARGETOS TARGETARCH\n"
                         'RUN echo "$BUILDPLATFORM $TARGETPLATFORM $TARGETOS $TARGETARCH $(uname -m)" > /p\n'
                         f"FROM {multi_base}\nCOPY --from=build /p /p\nRUN uname -m >> /p\n")
    builds.build(ctx, tags=["cross:1"], platform="linux/amd64,linux/arm64")
    builds.client.tag("cross:1", "cross:2")  # a tag of a multi-platform tag takes every platform
    held = builds.client.store.meta.tag_platforms("docker.io/library/cross:2")
    assert [m.platform for m in held] == ["linux/amd64", "linux/arm64"]
    for m in held:
        builds.client.tag(m.image_id, f"cross:{m.platform.split('/')[1]}")
    assert (builds.rootfs("cross:arm64") / "p").read_text().split() == [
        "linux/amd64", "linux/arm64", "linux", "arm64", "x86_64", "aarch64"]
    assert (builds.rootfs("cross:amd64") / "p").read_text().split() == [
        "linux/amd64", "linux/amd64", "linux", "amd64", "x86_64", "x86_64"]


def test_cross_built_stage_titles_as_buildx(builds: Builds) -> None:
    """A stage run as the build platform that declares TARGET* args names both, as buildx does
    (``[linux/amd64->arm64 gen 1/2]``); other stages carry the target's platform alone."""
    ctx = builds.context("FROM --platform=$BUILDPLATFORM scratch AS gen\nARG TARGETARCH\n"
                         "COPY a.txt /a\nWORKDIR /out/$TARGETARCH\n"
                         "FROM --platform=$BUILDPLATFORM scratch AS plain\nCOPY a.txt /b\n"
                         "FROM scratch\nCOPY --from=gen /out /out\nCOPY --from=plain /b /b\n",
                         files={"a.txt": "a\n"})
    builds.build(ctx, tags=["cross:titles"], platform="linux/amd64,linux/arm64")
    titles = {name for name, _ in builds.timeline()}
    assert {"[linux/amd64->arm64 gen 1/2] COPY a.txt /a",
            "[linux/amd64->arm64 gen 2/2] WORKDIR /out/$TARGETARCH",
            "[linux/amd64 gen 1/2] COPY a.txt /a",
            "[linux/amd64 plain 1/1] COPY a.txt /b",
            "[linux/arm64 stage-2 1/2] COPY --from=gen /out /out",
            "[linux/amd64 stage-2 2/2] COPY --from=plain /b /b"} <= titles, sorted(titles)
    assert not [t for t in titles if "->amd64" in t]
    # One platform alone: no platform in the titles (BuildKit prefixes them only for several).
    builds.build(ctx, tags=["cross:one"], platform="linux/arm64")
    assert "[gen 1/2] COPY a.txt /a" in {name for name, _ in builds.timeline()}


def test_title_platform_forms() -> None:
    from dockyard.builder.multiplatform import title_platform

    assert title_platform("linux/amd64", {"TARGETARCH": "arm64"}) == "linux/amd64->arm64"
    assert title_platform("linux/amd64", {"TARGETPLATFORM": "linux/arm/v7"}) == "linux/amd64->arm/v7"
    assert title_platform("linux/amd64", {"TARGETPLATFORM": "linux/arm64/v8"}) == "linux/amd64->arm64"
    assert title_platform("linux/amd64", {"TARGETOS": "windows"}) == "linux/amd64->windows/amd64"
    assert title_platform("linux/amd64", {"TARGETARCH": "amd64"}) == "linux/amd64"
    assert title_platform("linux/arm64", {"PATH": "/bin"}) == "linux/arm64"
