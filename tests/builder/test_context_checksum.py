"""The context checksum a COPY/ADD cache key carries: every attribute of every source counts (path,
type, mode, owner, size, link target, bytes), nothing else does (mtime, excluded files), and the
file digest cache never serves a stale digest."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.builder.context import HashCache, LocalContext
from dockyard.builder.state import derive_key
from dockyard.errors import Interrupted


def tree(root: Path) -> Path:
    (root / "app" / "sub").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('hi')\n")
    (root / "app" / "sub" / "data.txt").write_text("data")
    os.symlink("main.py", root / "app" / "link")
    (root / "top.txt").write_text("top")
    return root


def checksum(root: Path, patterns: list[str], **kw: object) -> str:
    return LocalContext(str(root), **kw).checksum(patterns)  # type: ignore[arg-type]


CHANGES: dict[str, Callable[[Path], None]] = {
    "content": lambda r: (r / "app" / "main.py").write_text("print('ho')\n"),
    "size": lambda r: (r / "app" / "sub" / "data.txt").write_text("data+"),
    "mode": lambda r: os.chmod(r / "app" / "main.py", 0o755),
    "dir mode": lambda r: os.chmod(r / "app" / "sub", 0o700),
    "owner": lambda r: os.chown(r / "app" / "main.py", 1234, 1234),
    "group": lambda r: os.chown(r / "app" / "main.py", -1, 4321),
    "link target": lambda r: (os.unlink(r / "app" / "link"), os.symlink("sub", r / "app" / "link")),
    "type": lambda r: ((r / "app" / "sub" / "data.txt").unlink(), (r / "app" / "sub" / "data.txt").mkdir()),
    "new file": lambda r: (r / "app" / "sub" / "new").write_text(""),
    "renamed": lambda r: os.rename(r / "app" / "sub" / "data.txt", r / "app" / "sub" / "data.md"),
    "fifo": lambda r: os.mkfifo(r / "app" / "pipe"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_attribute_of_a_source_changes_the_checksum(tmp_path: Path, change: str) -> None:
    if change in ("owner", "group") and os.geteuid() != 0:
        pytest.skip("chown needs root")
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    CHANGES[change](root)
    assert checksum(root, ["app"]) != before


def test_mtime_and_untouched_files_do_not_count(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = checksum(root, ["app"])
    os.utime(root / "app" / "main.py", (1, 1))
    (root / "top.txt").write_text("not copied")
    assert checksum(root, ["app"]) == before


def test_patterns_missing_sources_and_wildcards(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert checksum(root, ["app"]) != checksum(root, ["top.txt"])
    assert checksum(root, ["app", "top.txt"]) != checksum(root, ["top.txt", "app"])  # order is the COPY's
    assert checksum(root, ["./app/"]) == checksum(root, ["app"])  # the same path, cleaned
    assert checksum(root, ["missing"]) != checksum(root, ["missing*"])  # absent vs matched nothing
    assert checksum(root, ["missing"]) != checksum(root, ["other-missing"])
    assert checksum(root, ["ap*"]) != checksum(root, ["app"])
    empty = LocalContext(str(root)).checksum([])
    assert empty.startswith("sha256:") and len(empty) == 71


def test_a_directory_and_its_children_are_told_apart(tmp_path: Path) -> None:
    a = tmp_path / "a"
    (a / "x").mkdir(parents=True)
    (a / "x" / "y").write_text("")
    b = tmp_path / "b"
    (b / "x").mkdir(parents=True)
    (b / "xy").write_text("")  # same names glued differently
    os.chmod(b / "x", os.stat(a / "x").st_mode)
    assert checksum(a, ["x"]) != checksum(b, ["x"])


def test_excluded_files_do_not_count(tmp_path: Path) -> None:
    root = tree(tmp_path)

    def exclude(rel: str, is_dir: bool) -> bool:
        return rel.endswith(".txt")

    before = checksum(root, ["app"], exclude=exclude)
    (root / "app" / "sub" / "data.txt").write_text("changed, but excluded")
    assert checksum(root, ["app"], exclude=exclude) == before
    (root / "app" / "main.py").write_text("changed")
    assert checksum(root, ["app"], exclude=exclude) != before
    ctx = LocalContext(str(root), exclude=exclude)
    assert ctx.is_excluded("app/sub/data.txt", False)
    assert not ctx.is_excluded("", True)  # the context root itself is never excluded
    assert not LocalContext(str(root)).is_excluded("app/sub/data.txt", False)
    assert [p for p, _ in ctx.sources("app/sub/*")] == []


def test_a_symlinked_source_counts_its_target(tmp_path: Path) -> None:
    root = tree(tmp_path)
    ctx = LocalContext(str(root))
    followed = ctx.checksum(["app/link"])
    (root / "app" / "main.py").write_text("other bytes")
    assert ctx.checksum(["app/link"]) != followed


def test_the_digest_cache_is_used_and_never_stale(tmp_path: Path) -> None:
    root = tree(tmp_path)
    cache = HashCache(tmp_path / "cache" / "hashes.db")
    ctx = LocalContext(str(root), cache=cache)
    first = ctx.checksum(["app"])
    assert LocalContext(str(root)).checksum(["app"]) == first
    assert ctx.checksum(["app"]) == first
    path = root / "app" / "main.py"
    path.write_text("print('hx')\n")  # same size, new bytes: the signature changes with mtime/ctime
    assert ctx.checksum(["app"]) == LocalContext(str(root)).checksum(["app"]) != first
    cache.close()


def test_derive_key_chains_parent_and_definition() -> None:
    key = derive_key("sha256:parent", ["run", ["sh", "-c", "x"], {"b": 1, "a": 2}])
    assert key.startswith("sha256:") and len(key) == 71
    assert key == derive_key("sha256:parent", ["run", ["sh", "-c", "x"], {"a": 2, "b": 1}])
    assert key != derive_key("sha256:other", ["run", ["sh", "-c", "x"], {"b": 1, "a": 2}])
    assert key != derive_key("sha256:parent", ["run", ["sh", "-c", "y"], {"b": 1, "a": 2}])
    assert derive_key("", [Path("/x")]) == derive_key("", ["/x"])  # non-JSON values by their text


def test_hash_cache_writes_a_build_s_digests_in_one_transaction(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "hashes.db")
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    for i in range(500):
        cache.put(f"/ctx/f{i}", f"{i}:1:2:3:4", f"{i:064x}")
    cache.flush()
    # Autocommit would make each of the 500 rows a commit (and a WAL frame) of its own.
    assert [s.split()[0] for s in statements if not s.startswith("INSERT")] == ["BEGIN", "COMMIT"]
    assert cache.get("/ctx/f499", "499:1:2:3:4") == f"{499:064x}"
    cache.close()


def test_new_digests_are_stored_in_one_transaction(tmp_path: Path) -> None:
    # A context of thousands of files: one commit per row cost ~0.4 s of every fresh runner's build.
    for i in range(50):
        (tmp_path / "ctx").mkdir(exist_ok=True)
        (tmp_path / "ctx" / f"f{i}").write_text(str(i))
    cache = HashCache(tmp_path / "cache" / "hashes.db")
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    LocalContext(str(tmp_path / "ctx"), cache=cache).checksum(["."])
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 50
    assert [s for s in statements if s in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    cache.close()
    again = HashCache(tmp_path / "cache" / "hashes.db")
    assert again._db.execute("SELECT count(*) FROM file_hash").fetchone()[0] == 50
    again.close()


def test_a_context_s_remembered_digests_are_read_in_one_query(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    for i in range(40):
        (ctx / "d" / f"f{i}").write_text(str(i))
    db = tmp_path / "hashes.db"
    first = LocalContext(str(ctx), cache=HashCache(db)).checksum(["."])
    # A row of another directory whose name extends the context's is not the context's.
    other = HashCache(db)
    other.put(f"{ctx}x/f0", "1:2:3:4:5", "0" * 64)
    other.close()
    cache = HashCache(db)
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    assert LocalContext(str(ctx), cache=cache).checksum(["."]) == first
    # One SELECT for the whole context: a query per file cost more than hashing a small file.
    assert [s.split()[0] for s in statements] == ["SELECT"], statements
    assert f"{ctx}x/f0" not in cache._known
    cache.close()


def test_a_warmed_checksum_is_computed_in_the_background_and_taken_once(tmp_path: Path) -> None:
    root = tree(tmp_path / "w")
    threads: list[str] = []

    class Spy(LocalContext):
        def walk_sum(self, patterns: list[str], follow: bool, *, flush: bool = True,
                     collect: bool = False) -> tuple[str, dict[str, str] | None]:
            threads.append(threading.current_thread().name)
            return super().walk_sum(patterns, follow, flush=flush, collect=collect)

    ctx = Spy(str(root))
    ctx.warm(["app"])
    ctx.warm(["app"])  # once per pattern list
    first = ctx.checksum(["app"])
    assert first == checksum(root, ["app"])
    assert threads == ["context-checksum"]
    # Taken once: a later call computes again (and sees the files as they are then).
    (root / "app" / "main.py").write_text("changed\n")
    assert ctx.checksum(["app"]) == checksum(root, ["app"]) != first
    assert threads == ["context-checksum", threading.current_thread().name]


def test_a_cancelled_build_stops_hashing_its_context(tmp_path: Path) -> None:
    root = tree(tmp_path / "c")
    ctx = LocalContext(str(root))
    ctx.cancel = threading.Event()
    ctx.cancel.set()
    with pytest.raises(Interrupted):
        ctx.checksum(["."])
    ctx.warm(["app"])
    with pytest.raises(Interrupted):
        ctx.checksum(["app"])  # the background hash ended the same way, and says so here


def test_a_torn_digest_cache_is_started_again_empty(tmp_path: Path) -> None:
    # Written without fsync, the file may be garbage after a machine crash: builds go on, hashing again.
    root = tree(tmp_path / "t")
    db = tmp_path / "cache" / "hashes.db"
    db.parent.mkdir()
    db.write_bytes(b"not a database, " * 512)
    cache = HashCache(db)
    assert cache._db.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF: no fsync, ever
    assert LocalContext(str(root), cache=cache).checksum(["app"]) == checksum(root, ["app"])
    assert cache.get(str(root / "app" / "main.py"), _sig(os.stat(root / "app" / "main.py")))
    cache.close()


def _sig(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def test_a_warmed_checksum_s_digests_are_remembered(tmp_path: Path) -> None:
    root = tree(tmp_path / "r")
    db = tmp_path / "hashes.db"
    cache = HashCache(db)
    ctx = LocalContext(str(root), cache=cache)
    ctx.warm(["app"])
    ctx.checksum(["app"])
    cache.close()  # the digests are written after the sum is handed over, at the latest here
    rows = HashCache(db)._db.execute("SELECT path FROM file_hash ORDER BY path").fetchall()
    assert rows == [(str(root / "app" / "main.py"),), (str(root / "app" / "sub" / "data.txt"),)]


@pytest.mark.parametrize("size", [0, 1, 4095, 1 << 20, (1 << 20) - 1, (3 << 20) + 5])
def test_a_file_s_digest_is_its_content_s_whatever_its_size(tmp_path: Path, size: int) -> None:
    # Files under 1 MiB are read at once, larger ones in pieces: the digest is the content's either way.
    import hashlib

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    content = os.urandom(size)
    (ctx / "f").write_bytes(content)
    digests = LocalContext(str(ctx), cache=HashCache(tmp_path / "h.db")).file_digests(["f"])
    assert digests == {"f": hashlib.sha256(content).hexdigest()[:16]}


def test_the_checksum_of_a_fixed_tree_is_pinned(tmp_path: Path) -> None:
    # Cache keys travel between runners and versions (docs/cache-format.md): the bytes a tree hashes
    # to must not change by accident. Every kind of entry: directory, file, hard link, symlink, fifo.
    if os.geteuid() != 0:
        pytest.skip("the pinned sum is for files owned by 0:0")
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "f").write_bytes(b"x")
    os.link(ctx / "d" / "f", ctx / "h")
    os.symlink("d/f", ctx / "l")
    os.mkfifo(ctx / "p")
    for path, mode in ((ctx, 0o755), (ctx / "d", 0o755), (ctx / "d" / "f", 0o644), (ctx / "p", 0o600)):
        os.chmod(path, mode)
    for path in (ctx, ctx / "d", ctx / "d" / "f", ctx / "l", ctx / "p"):
        os.lchown(path, 0, 0)
    context = LocalContext(str(ctx), cache=HashCache(tmp_path / "h.db"))
    assert context.checksum(["."]) == PINNED
    assert LocalContext(str(ctx)).checksum(["d", "l"]) == PINNED_FOLLOWED


# Computed by the checksum as it was before its walk was rewritten (session 9, main f74be05).
PINNED = "sha256:02d7fcb0847bee5ffe4fb12207f0db25e0a766b8eae1699e9ec5b21dbf66f01e"
PINNED_FOLLOWED = "sha256:fbcf665560915427274ee0528fd9044271a89639ab10563bd414829d0429d807"


@pytest.mark.parametrize("patterns", [["."], ["app"], ["app/*.py", "top.txt"],
                                      ["app/sub", "app/sub/data.txt"], ["lnk-dir"], ["lnk-file", "app"],
                                      ["nope*"]])
def test_file_digests_after_a_checksum_are_what_a_walk_finds(tmp_path: Path, patterns: list[str]) -> None:
    root = tree(tmp_path / "ctx")
    os.link(root / "app" / "main.py", root / "app" / "hard")
    (root / "app" / "ignored.log").write_text("no")
    os.symlink("app", root / "lnk-dir")  # a source that is a link: the two walks differ, none is kept
    os.symlink("top.txt", root / "lnk-file")

    def make() -> LocalContext:
        return LocalContext(str(root), exclude=lambda rel, _d: rel.endswith(".log"))

    walked = make().file_digests(patterns)
    ctx = make()
    ctx.checksum(patterns)
    assert ctx.file_digests(patterns) == walked
    if patterns[0] not in ("lnk-dir", "lnk-file"):
        assert walked or patterns == ["nope*"]
        # Taken from the checksum's walk: no directory is read again.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "scandir", lambda *a: pytest.fail("walked again"))
            assert ctx.file_digests(patterns) == walked


def test_file_digests_beyond_the_limit_are_none_and_the_walk_stops_there(tmp_path: Path) -> None:
    root = tmp_path / "many"
    (root / "d").mkdir(parents=True)
    for i in range(30):
        (root / "d" / f"f{i:02d}").write_text(str(i))
    walked = LocalContext(str(root))
    assert len(walked.file_digests(["d"], limit=30)) == 30
    digested: list[str] = []
    real = LocalContext._file_digest
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalContext, "_file_digest",
                   lambda self, host, st: (digested.append(host), real(self, host, st))[1])
        assert LocalContext(str(root)).file_digests(["d"], limit=10) == {}
    assert len(digested) == 11  # stopped at the first file past the limit
    summed = LocalContext(str(root))
    summed.checksum(["d"])  # the checksum's walk kept all 30: the limit applies to them too
    assert summed.file_digests(["d"], limit=10) == {}
    assert summed.file_digests(["d"], limit=30) == walked.file_digests(["d"])
