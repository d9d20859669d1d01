"""Which images a build reads (no registry needed), and the context picture's change detection."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dockyard.builder.options import BuildOptions
from dockyard.errors import BuildError, DockerfileError
from dockyard.tools.watch import base_refs, changed, snapshot

DOCKERFILE = """\
ARG BASE=127.0.0.1:5000/team/base:1
FROM ${BASE} AS build
COPY --from=127.0.0.1:5000/tools/compiler:2 /bin/cc /bin/cc
RUN --mount=type=bind,from=helper:3,target=/h true
FROM scratch AS empty
FROM build AS test
COPY --from=build /x /x
COPY --from=0 /y /y
FROM --platform=linux/arm64 busybox AS other
FROM build
COPY --from=empty / /
COPY --from=build /bin/cc /cc
"""


def refs(text: str, **kw: object) -> list[tuple[str, str, str, tuple[str, ...]]]:
    opts = BuildOptions(context_dir="/nonexistent", dockerfile_text=text, **kw)  # type: ignore[arg-type]
    return [(b.ref, str(b.reference), b.platform, b.used_by) for b in base_refs(opts)]


def test_external_images_of_the_target_only() -> None:
    host = f"linux/{os.uname().machine.replace('x86_64', 'amd64').replace('aarch64', 'arm64')}"
    got = refs(DOCKERFILE)
    assert got == [
        ("127.0.0.1:5000/team/base:1", "127.0.0.1:5000/team/base:1", host, ("FROM (stage build)",)),
        ("127.0.0.1:5000/tools/compiler:2", "127.0.0.1:5000/tools/compiler:2", host,
         ("COPY --from (stage build)",)),
        ("helper:3", "docker.io/library/helper:3", host, ("RUN --mount from= (stage build)",)),
    ]
    # another target: its own stage's base (with its FROM --platform), not the unrelated ones
    assert refs(DOCKERFILE, target="other") == [
        ("busybox", "docker.io/library/busybox:latest", "linux/arm64", ("FROM (stage other)",))]
    assert refs(DOCKERFILE, target="empty") == []


def test_build_args_platforms_and_named_contexts() -> None:
    got = refs(DOCKERFILE, build_args={"BASE": "debian:12"}, platform="linux/amd64,linux/arm64")
    assert [(r, p) for r, _, p, _ in got] == [
        ("debian:12", "linux/amd64"), ("127.0.0.1:5000/tools/compiler:2", "linux/amd64"),
        ("helper:3", "linux/amd64"), ("debian:12", "linux/arm64"),
        ("127.0.0.1:5000/tools/compiler:2", "linux/arm64"), ("helper:3", "linux/arm64")]
    ctx = {"helper:3": "/some/dir", "127.0.0.1:5000/tools/compiler:2": "docker-image://gcc:13"}
    got = refs(DOCKERFILE, build_contexts=ctx, platform="linux/amd64")
    assert [r for r, *_ in got] == ["127.0.0.1:5000/team/base:1", "gcc:13"]
    pinned = refs("FROM busybox@sha256:" + "a" * 64 + " AS a\nFROM busybox:1\nCOPY --from=busybox:1 / /\n"
                  "COPY --from=a / /\n", platform="linux/amd64")
    assert pinned[0][1] == "docker.io/library/busybox@sha256:" + "a" * 64
    assert pinned[1][3] == ("FROM (stage 1)", "COPY --from (stage 1)")  # one entry, used twice


def test_bad_dockerfiles_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"failed to read dockerfile: open .*Dockerfile: no such file"):
        base_refs(BuildOptions(context_dir=str(tmp_path)))
    with pytest.raises(DockerfileError, match=r"Dockerfile:1:1: .*RUNN"):
        refs("RUNN x\n")
    with pytest.raises(Exception, match=r"invalid reference format|repository name"):
        refs("FROM UPPER/Case:1\n")


def test_snapshot_sees_edits_and_honours_dockerignore(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (ctx / "src" / "a.txt").write_text("a")
    (ctx / "build").mkdir()
    (ctx / "build" / "out.o").write_text("o")
    (ctx / "notes.md").write_text("n")
    (ctx / "keep.md").write_text("k")
    (ctx / ".dockerignore").write_text("build\n*.md\n!keep.md\n")
    first = snapshot(str(ctx))
    assert set(first) == {"Dockerfile", ".dockerignore", "src", "src/a.txt", "keep.md"}
    assert changed(first, snapshot(str(ctx))) == []
    # ignored paths do not count
    (ctx / "build" / "out.o").write_text("o2")
    (ctx / "notes.md").write_text("n2")
    assert changed(first, snapshot(str(ctx))) == []
    # same size, new mtime; a new file; a removed file; a chmod
    time.sleep(0.01)
    (ctx / "src" / "a.txt").write_text("b")
    (ctx / "src" / "new.txt").write_text("new")
    (ctx / "keep.md").unlink()
    (ctx / "src").chmod(0o700)
    assert changed(first, snapshot(str(ctx))) == ["keep.md", "src", "src/a.txt", "src/new.txt"]
    # the ignore file itself and a Dockerfile kept outside the context count too
    second = snapshot(str(ctx), str(tmp_path / "app.Dockerfile"))
    (tmp_path / "app.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("src\n")
    third = snapshot(str(ctx), str(tmp_path / "app.Dockerfile"))
    assert "src/a.txt" not in third and "keep.md" not in third
    assert str(tmp_path / "app.Dockerfile") in changed(second, third)
    assert snapshot(str(tmp_path / "missing")) == {}
