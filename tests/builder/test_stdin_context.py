"""``build -``: the context read from a stream (tar in any compression, or a lone Dockerfile)."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.builder.stdin_context import stream_context
from dockyard.errors import BuildError, DockyardError


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_dockerfile_alone_is_the_whole_context() -> None:
    with stream_context(io.BytesIO(b"FROM scratch\n"), "ignored.Dockerfile") as (ctx, dockerfile):
        assert os.listdir(ctx) == ["Dockerfile"] and dockerfile == os.path.join(ctx, "Dockerfile")
        assert Path(dockerfile).read_bytes() == b"FROM scratch\n"
    assert not os.path.exists(ctx)


def test_compressed_tar_and_dockerfile_inside() -> None:
    data = lzma.compress(tar_of({"d/Dockerfile.x": b"FROM scratch\n", "a": b"a"}))
    with stream_context(io.BytesIO(data), "../d/Dockerfile.x") as (ctx, dockerfile):
        assert sorted(os.listdir(ctx)) == ["a", "d"]
        assert dockerfile == os.path.join(ctx, "d", "Dockerfile.x")  # kept inside the context
    with pytest.raises(BuildError, match=r"^failed to read dockerfile: open Dockerfile: no such file"), \
            stream_context(io.BytesIO(tar_of({"a": b"a"}))):
        pass


def test_hostile_or_broken_tar_is_refused() -> None:
    name = f"escape-{os.getpid()}"
    with pytest.raises(DockyardError), stream_context(io.BytesIO(tar_of({f"../../{name}": b"x"}))):
        pass
    with pytest.raises(BuildError, match=r"^unable to prepare context from standard input: "), \
            stream_context(io.BytesIO(gzip.compress(b"FROM scratch\n"))):
        pass
    assert not os.path.exists(f"/{name}") and not os.path.exists(f"/tmp/{name}")
