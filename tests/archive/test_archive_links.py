"""Directory symlinks met while extracting resolve like the in-root walker: ``..`` inside a link target
goes back up before the walk goes on, and a target ending in ``..`` names the directory above."""

from __future__ import annotations

import io
from pathlib import Path

from dockyard.archive import apply_layer
from dockyard.archive.tarheader import DIRTYPE, SYMTYPE, TarEntry, encode


def layer(*members: TarEntry | tuple[TarEntry, bytes]) -> io.BytesIO:
    out = bytearray()
    for m in members:
        entry, body = (m, b"") if isinstance(m, TarEntry) else m
        if entry.isreg():
            entry.size = len(body)
        out += encode(entry) + body + bytes(-len(body) % 512)
    return io.BytesIO(bytes(out + bytes(1024)))


def test_dotdot_inside_a_link_target_then_more_components(tmp_path: Path) -> None:
    apply_layer(layer(TarEntry("sub/deep", type=DIRTYPE, mode=0o755),
                      TarEntry("other", type=DIRTYPE, mode=0o755),
                      TarEntry("up", type=SYMTYPE, mode=0o777, linkname="sub/deep/../../other"),
                      (TarEntry("up/file", mode=0o644), b"here")), tmp_path)
    assert (tmp_path / "other" / "file").read_bytes() == b"here"
    assert not (tmp_path / "sub" / "deep" / "other").exists() and not (tmp_path / "sub" / "other").exists()


def test_link_target_ending_in_dotdot(tmp_path: Path) -> None:
    apply_layer(layer(TarEntry("a/b", type=DIRTYPE, mode=0o755),
                      TarEntry("parent", type=SYMTYPE, mode=0o777, linkname="/a/b/.."),
                      (TarEntry("parent/file", mode=0o644), b"in a")), tmp_path)
    assert (tmp_path / "a" / "file").read_bytes() == b"in a"
