"""``build -``: the build context read from a stream, as ``docker build -`` takes standard input.

The stream holds either a tar archive of the context (plain, gzip, bzip2, xz or zstd) or a Dockerfile;
a Dockerfile is then the only file of an otherwise empty context, as the docker CLI makes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from dockyard.archive import apply_layer, detect, open_decompressed
from dockyard.archive.compression import prepend
from dockyard.archive.reader import Readable
from dockyard.errors import BuildError, DockyardError

_TAR_MAGIC_AT = 257  # "ustar" in a POSIX or GNU tar header


def _read_head(stream: Readable, size: int) -> bytes:
    head = b""
    while len(head) < size:
        more = stream.read(size - len(head))
        if not more:
            break
        head += more
    return head


def is_archive(head: bytes) -> bool:
    """Whether a stream starting with ``head`` (512 bytes, or all there is) is a context archive."""
    return detect(head) != "none" or head[_TAR_MAGIC_AT:_TAR_MAGIC_AT + 5] == b"ustar"


@contextlib.contextmanager
def stream_context(stream: Readable, dockerfile: str = "") -> Iterator[tuple[str, str]]:
    """Unpack ``stream`` into a temporary context; yields ``(context_dir, dockerfile_path)``.

    ``dockerfile`` (``-f``) names the Dockerfile inside an archive (default ``Dockerfile``); a
    Dockerfile on the stream is always ``Dockerfile``. The directory is removed on exit.
    """
    head = _read_head(stream, 512)
    tmp = tempfile.mkdtemp(prefix="dockyard-stdin-context-")
    try:
        name = "Dockerfile"
        if is_archive(head):
            raw, _ = open_decompressed(prepend(head, stream))
            try:
                apply_layer(raw, tmp)
            except DockyardError as exc:
                raise BuildError(f"unable to prepare context from standard input: {exc}") from None
            # A path inside the context, like docker's -f for a context on stdin.
            name = os.path.normpath("/" + (dockerfile or "Dockerfile")).lstrip("/") or "Dockerfile"
        else:
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(head)
                shutil.copyfileobj(stream, f)
        path = os.path.join(tmp, name)
        if not os.path.lexists(path):
            raise BuildError(f"failed to read dockerfile: open {name}: no such file or directory")
        yield tmp, path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
