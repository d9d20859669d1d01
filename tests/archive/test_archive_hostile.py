"""Crafted hostile tarballs: every one is refused with a clear error or contained in the root,
and a sentinel directory next to the root is never touched."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.archive import apply_layer, apply_layer_overlay
from dockyard.archive.tarheader import (
    DIRTYPE,
    LNKTYPE,
    SYMTYPE,
    XHDTYPE,
    TarEntry,
    _raw_header,
    encode,
)
from dockyard.errors import CorruptData, UnsafePath


def tar(*members: tuple[TarEntry, bytes] | TarEntry, end: bool = True) -> bytes:
    """Raw tar bytes from entries exactly as given (our encoder does not sanitise names)."""
    out = bytearray()
    for m in members:
        entry, body = (m, b"") if isinstance(m, TarEntry) else m
        if entry.isreg():
            entry.size = len(body)
        out += encode(entry) + body + bytes(-len(body) % 512)
    if end:
        out += bytes(1024)
    return bytes(out)


def f(name: str, body: bytes = b"pwned") -> tuple[TarEntry, bytes]:
    return TarEntry(name, mode=0o644), body


def sym(name: str, target: str) -> TarEntry:
    return TarEntry(name, type=SYMTYPE, mode=0o777, linkname=target)


def link(name: str, target: str) -> TarEntry:
    return TarEntry(name, type=LNKTYPE, mode=0o644, linkname=target)


class Jail:
    """A root to extract into and a sentinel directory beside it that must never change."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.outside = base / "outside"
        self.root.mkdir()
        self.outside.mkdir()
        (self.outside / "secret").write_text("secret")
        self._before = self._state()

    def _state(self) -> list[tuple[str, int, int, int]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.outside):
            for n in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, n))
                out.append((os.path.join(dirpath, n), st.st_size, st.st_nlink, st.st_mtime_ns))
        st = os.lstat(self.outside)
        out.append((".", st.st_size, st.st_nlink, st.st_mtime_ns))
        return sorted(out)

    def apply(self, data: bytes, overlay: bool = False) -> None:
        fn = apply_layer_overlay if overlay else apply_layer
        fn(io.BytesIO(data), self.root)

    def assert_untouched(self) -> None:
        assert self._state() == self._before
        assert (self.outside / "secret").read_text() == "secret"
        assert not Path("/pwn-dockyard").exists()


@pytest.fixture
def jail(shm: Path) -> Iterator[Jail]:
    j = Jail(shm)
    yield j
    j.assert_untouched()


@pytest.mark.parametrize("overlay", [False, True])
@pytest.mark.parametrize("name", ["../outside/x", "a/../../outside/x", "../../../../pwn-dockyard"])
def test_dotdot_escape_is_refused(jail: Jail, name: str, overlay: bool) -> None:
    with pytest.raises(UnsafePath, match="outside the root"):
        jail.apply(tar(f(name)), overlay)


def test_dotdot_in_symlink_and_hardlink_and_whiteout_names(jail: Jail) -> None:
    for member in (sym("../outside/s", "/"), link("../outside/h", "x"), f("../outside/.wh.secret"),
                   TarEntry("../outside/d", type=DIRTYPE)):
        with pytest.raises(UnsafePath):
            jail.apply(tar(member))


def test_absolute_names_are_contained(jail: Jail) -> None:
    jail.apply(tar(f(str(jail.outside / "x")), f("/pwn-dockyard"), f("/../../pwn2")))
    assert (jail.root / str(jail.outside).lstrip("/") / "x").read_bytes() == b"pwned"
    assert (jail.root / "pwn-dockyard").exists() and (jail.root / "pwn2").exists()


@pytest.mark.parametrize("target", ["/", "../../..", str(Path("/dev/shm").resolve())])
def test_file_through_symlink_to_outside_stays_inside(jail: Jail, target: str) -> None:
    # The symlink is kept as data; the file lands where the link points *inside* the root.
    outside_rel = os.path.relpath(jail.outside, "/")
    jail.apply(tar(sym("evil", target), f("evil/" + outside_rel + "/secret"), f("evil/pwn-dockyard")))
    assert os.readlink(jail.root / "evil") == target
    inside = jail.root / target.lstrip("/").replace("../", "").replace("..", "")
    assert (inside / outside_rel / "secret").read_bytes() == b"pwned"


def test_symlink_chain_escape_stays_inside(jail: Jail) -> None:
    absolute_outside = str(jail.outside)
    jail.apply(tar(sym("a", "b"), sym("b", "c/../../../.."), TarEntry("c", type=DIRTYPE),
                   sym("d", absolute_outside), f("a/x"), f("d/secret")))
    assert (jail.root / "x").read_bytes() == b"pwned"
    assert (jail.root / absolute_outside.lstrip("/") / "secret").read_bytes() == b"pwned"


def test_symlink_loop_is_refused(jail: Jail) -> None:
    with pytest.raises(UnsafePath, match="too many levels"):
        jail.apply(tar(sym("l1", "l2"), sym("l2", "l1"), f("l1/x")))


def test_existing_symlink_in_lower_layer_is_not_followed_out(jail: Jail) -> None:
    os.symlink(jail.outside, jail.root / "lowerlink")  # as if a lower layer had it
    os.symlink(jail.outside / "secret", jail.root / "filelink")
    jail.apply(tar(f("lowerlink/secret"), f("filelink", b"replaced"), TarEntry("lowerlink2", type=DIRTYPE)))
    assert (jail.root / str(jail.outside).lstrip("/") / "secret").read_bytes() == b"pwned"
    assert not (jail.root / "filelink").is_symlink()  # replaced, not written through
    assert (jail.root / "filelink").read_bytes() == b"replaced"


def test_directory_entry_replaces_symlink_instead_of_following(jail: Jail) -> None:
    jail.apply(tar(sym("d", str(jail.outside))))
    jail.apply(tar(TarEntry("d", type=DIRTYPE, mode=0o700), f("d/new")))
    assert (jail.root / "d").is_dir() and not (jail.root / "d").is_symlink()
    assert (jail.root / "d" / "new").exists()


def test_hardlink_to_host_file_is_contained(jail: Jail) -> None:
    with pytest.raises(CorruptData, match="does not exist"):
        jail.apply(tar(link("passwd", "/etc/passwd")))
    with pytest.raises(CorruptData, match="does not exist"):
        jail.apply(tar(link("s", str(jail.outside / "secret"))))
    with pytest.raises(UnsafePath):
        jail.apply(tar(link("s", "../outside/secret")))


def test_hardlink_through_symlinked_dir_is_contained(jail: Jail) -> None:
    with pytest.raises(CorruptData, match="does not exist"):
        jail.apply(tar(sym("d", str(jail.outside)), link("x", "d/secret")))
    with pytest.raises(CorruptData, match="does not exist"):
        jail.apply(tar(sym("up", "../outside"), link("y", "up/secret")))
    # A hard link to a symlink links the symlink itself, never its target.
    jail.apply(tar(sym("s", str(jail.outside / "secret")), link("h", "s")))
    assert os.readlink(jail.root / "h") == str(jail.outside / "secret")


def test_whiteouts_through_symlinks_stay_inside(jail: Jail) -> None:
    os.symlink(jail.outside, jail.root / "o")
    os.symlink("../outside", jail.root / "o2")
    jail.apply(tar(f("o/.wh.secret"), f("o2/.wh.secret"), f("o/.wh..wh..opq"), f("o2/.wh..wh..opq")))


def test_whiteout_with_dot_names_is_refused(jail: Jail) -> None:
    for name in (".wh..", "a/.wh."):
        with pytest.raises(CorruptData):
            jail.apply(tar(f(name)))


def test_absurd_size_is_truncation_not_allocation(jail: Jail) -> None:
    entry = TarEntry("huge", size=0o77777777777)
    data = _raw_header(b"huge", 0o644, 0, 0, 0o77777777777, 0, b"0", b"", b"", b"", 0, 0) + b"x" * 512
    with pytest.raises(CorruptData, match="truncated"):
        jail.apply(data)
    entry = TarEntry("huge2", pax={"size": str(10**18)})
    with pytest.raises(CorruptData, match="truncated"):
        jail.apply(encode(entry) + b"x" * 1024)
    big_pax = _raw_header(b"PaxHeaders/x", 0o644, 0, 0, 1 << 30, 0, XHDTYPE, b"", b"", b"", 0, 0)
    with pytest.raises(CorruptData, match="too large"):
        jail.apply(big_pax + bytes(4096))


def test_truncated_archives(jail: Jail) -> None:
    good = tar(f("a", b"a" * 1000), f("b", b"b" * 10))
    for cut in (100, 700, 1536 + 100):
        with pytest.raises(CorruptData, match="truncated"):
            jail.apply(good[:cut])
    jail.apply(good[: 512 * 5])  # EOF at a header boundary ends the archive, like Go's reader


def test_bad_checksum_names_offset(jail: Jail) -> None:
    data = bytearray(tar(f("a", b"x"), f("b", b"y")))
    data[1024 + 10] ^= 0x41  # second header
    with pytest.raises(CorruptData, match=r"offset 1024.*bad checksum"):
        jail.apply(bytes(data))


def test_garbage_is_corrupt_data(jail: Jail) -> None:
    with pytest.raises(CorruptData):
        jail.apply(os.urandom(2048))


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (TarEntry("a" * 300), "File name too long"),
        (TarEntry("l", type=SYMTYPE, linkname="x" * 5000), "File name too long"),
        (TarEntry("c", type=b"3", devmajor=2**31, devminor=5), "too large"),
        (TarEntry("v", type=b"V"), "unsupported entry type"),
        (TarEntry("p", pax={"path": "a\x00b"}), "NUL byte"),
    ],
    ids=["long-component", "long-symlink-target", "device-number", "unknown-type", "nul-in-pax-path"],
)
def test_os_level_failures_are_one_line_dockyard_errors(jail: Jail, member: TarEntry, match: str) -> None:
    with pytest.raises(CorruptData, match=match) as info:
        jail.apply(tar(member))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_very_deep_tree_under_an_opaque_marker_is_a_clean_error(jail: Jail) -> None:
    deep = "/".join(["d"] * 1200)
    jail.apply(tar(f(deep + "/leaf")))  # creating it is fine: resolution is iterative
    with pytest.raises(CorruptData, match="too deep"):
        jail.apply(tar(f(".wh..wh..opq")))  # emptying it recurses (shutil.rmtree does)
