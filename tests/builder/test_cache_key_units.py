"""The cache key of COPY/ADD and RUN steps, planned without a build: no store, no container.

Each step is planned as the engine plans it (the Dockerfile parsed, its stage's instructions expanded
in order, config steps applied) against a real context directory, with a ``StepContext`` that only
answers what planning asks (another stage's key, a URL's download). What the tests pin:

- ``derive_key`` and the context checksum encode exactly what they must: the known-answer tests spell
  the encoding out, since a store's cached steps (and caches exported to other runners) stay hits
  only while it is stable;
- a step's key changes with each flag, source attribute and piece of stage state it depends on,
  and not with what it must not depend on;
- COPY's destination, ``--from`` reference, URL detection, RUN's argv, heredoc scripts and
  network, with their exact errors.

These are the fast tests of the ``builder-cache-key`` mutation module (see docs/mutation.md); the
slow build tests of ``test_cache_key_completeness.py`` check the same attributes end to end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder import engine
from dockyard.builder.context import HashCache, LocalContext
from dockyard.builder.state import StageState, derive_key
from dockyard.builder.steps import Step, config, copy, mounts, plan_step, run, workdir
from dockyard.dockerfile import (
    AddInstruction,
    ArgInstruction,
    CopyInstruction,
    Instruction,
    MountSpec,
    RunInstruction,
    parse,
    parse_stages,
)
from dockyard.errors import BuildError, InvalidArgument
from dockyard.executor.spec import Network
from dockyard.oci.config import ImageConfig
from dockyard.record import asdict

ROOT_KEY = "sha256:" + "0" * 64
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ctx:
    """What planning a step may ask of its build: the context, the default network, entitlements,
    another stage's or image's key and a URL's download (recorded, answered deterministically)."""

    def __init__(self, root: Path, *, network: str = "default", entitlements: tuple[str, ...] = (),
                 exclude: Any = None) -> None:
        self.context = LocalContext(str(root), exclude)
        self.network = network
        self.entitlements = frozenset(entitlements)
        self.source_keys: list[str] = []
        self.fetched: list[tuple[str, str]] = []

    def source_key(self, ref: str) -> str:
        self.source_keys.append(ref)
        return f"sha256:{sha(ref.encode())}"

    def fetch_url(self, url: str, checksum: str) -> tuple[Path, str, str, float | None]:
        self.fetched.append((url, checksum))
        return Path("/nonexistent"), f"sha256:{sha(url.encode())}", url.rpartition("/")[2], 1234.5


def new_state(dockerfile: str,
              build_args: dict[str, str] | None = None) -> tuple[StageState, list[Instruction]]:
    bp = parse_stages(parse(dockerfile), build_args)
    stage = bp.stages[-1]
    config = ImageConfig(config={"Env": [PATH_ENV], "WorkingDir": "/"})
    state = StageState(config=config, key=ROOT_KEY, env=bp.stage_env(stage, config.config["Env"]))
    return state, stage.instructions


def plan_last(ctx: Ctx, dockerfile: str, build_args: dict[str, str] | None = None) -> tuple[Step, StageState]:
    """The last instruction's step, planned after the ones before it were applied (as the engine
    does on cache misses); the state is the one the last step was planned on."""
    state, instructions = new_state(dockerfile, build_args)
    step: Step | None = None
    for i, instr in enumerate(instructions):
        if isinstance(instr, ArgInstruction):
            state.declared_args.extend(a.key for a in instr.args)
        step = plan_step(ctx, state.env.apply(instr), state)  # type: ignore[arg-type]
        assert step is not None
        if i < len(instructions) - 1:
            if step.apply is not None:
                step.apply(state)
            state.key = derive_key(state.key, step.definition)
    assert step is not None
    return step, state


def key_of(ctx: Ctx, dockerfile: str, build_args: dict[str, str] | None = None) -> str:
    step, state = plan_last(ctx, dockerfile, build_args)
    return derive_key(state.key, step.definition)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "ctx"
    (r / "app" / "sub").mkdir(parents=True)
    (r / "app" / "main.py").write_text("print('hi')\n")
    (r / "app" / "sub" / "data.txt").write_text("data")
    (r / "top.txt").write_text("top")
    (r / "a.tar").write_bytes(b"not really a tar")
    return r


# -- derive_key -----------------------------------------------------------------------------------


def test_derive_key_known_answer() -> None:
    # The encoding is part of every stored cache record: parent, newline, compact JSON, keys sorted.
    body = '["run",{"a":[1,"x"],"b":null},"/p"]'
    want = "sha256:" + sha(f"sha256:parent\n{body}".encode())
    assert derive_key("sha256:parent", ["run", {"b": None, "a": [1, "x"]}, Path("/p")]) == want
    assert derive_key("", []) == "sha256:" + sha(b"\n[]")


# -- LocalContext ---------------------------------------------------------------------------------


def test_context_root_is_resolved(tmp_path: Path, root: Path) -> None:
    os.symlink(root, tmp_path / "alias")
    ctx = LocalContext(str(tmp_path / "alias"))
    assert ctx.root == str(root)
    assert ctx.exclude is None and ctx.cache is None
    assert ctx.checksum(["app"]) == LocalContext(str(root)).checksum(["app"])


def _entry(rel: str, path: Path, *, follow: bool = False) -> bytes:
    st = os.stat(path) if follow else os.lstat(path)
    return f"\x00{rel}\x00{st.st_mode:o}\x00{st.st_uid}:{st.st_gid}".encode()


def _file(path: Path) -> bytes:
    data = path.read_bytes()
    return f"\x00{len(data)}\x00".encode() + sha(data).encode()


def test_context_checksum_known_answer(tmp_path: Path) -> None:
    """The bytes hashed for each kind of entry, spelled out."""
    r = tmp_path / "c"
    (r / "d" / "e").mkdir(parents=True)
    (r / "d" / "f").write_text("ff")
    os.link(r / "d" / "f", r / "d" / "g")
    (r / "d" / "h").write_text("hh")
    os.link(r / "d" / "h", r / "d" / "i")  # a second group of hard links
    os.symlink("f", r / "d" / "l")
    os.mkfifo(r / "d" / "p")
    if os.geteuid() == 0:
        os.chown(r / "d" / "f", 12, 34)  # an owner other than the others' (a user's files are theirs)
    (r / "topX").write_text("t")
    os.symlink("topX", r / "ln")
    d = r / "d"
    rdev = os.lstat(d / "p").st_rdev
    want = hashlib.sha256(
        b"\x00pattern\x00/d"
        + _entry("d", d)
        + _entry("d/e", d / "e")
        + _entry("d/f", d / "f") + _file(d / "f")
        + _entry("d/g", d / "g") + b"\x00hardlink\x00d/f" + _file(d / "g")
        + _entry("d/h", d / "h") + _file(d / "h")
        + _entry("d/i", d / "i") + b"\x00hardlink\x00d/h" + _file(d / "i")
        + _entry("d/l", d / "l") + b"\x00link\x00f"
        + _entry("d/p", d / "p") + f"\x00dev\x00{rdev}".encode()
        + b"\x00pattern\x00/missing" + b"\x00missing"
        + b"\x00pattern\x00/none*"
        + b"\x00pattern\x00/ln" + _entry("ln", r / "ln", follow=True) + _file(r / "topX")
        # The link's target again, under its own name: one inode with one link is no hard link.
        + b"\x00pattern\x00/topX" + _entry("topX", r / "topX") + _file(r / "topX")
    ).hexdigest()
    assert LocalContext(str(r)).checksum(["./d/", "missing", "none*", "ln", "topX"]) == "sha256:" + want
    # The named link is resolved in the context first (as COPY reads it): its target is what counts.
    assert LocalContext(str(r)).checksum(["ln"]) == LocalContext(str(r)).checksum(["ln"], follow=False)


def test_hard_links_count_only_among_copied_files(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    (a / "x").write_text("same")
    (a / "y").write_text("same")
    separate = LocalContext(str(a)).checksum(["."])
    b = tmp_path / "b"
    b.mkdir()
    (b / "x").write_text("same")
    os.link(b / "x", b / "y")
    linked = LocalContext(str(b)).checksum(["."])
    assert linked != separate
    # A link whose other name is not copied is just a file.
    os.link(b / "x", tmp_path / "outside")
    os.unlink(b / "y")
    (b / "y").write_text("same")
    assert LocalContext(str(b)).checksum(["."]) == separate


def _recording_exclude(excluded: set[tuple[str, bool]]) -> tuple[Any, list[tuple[str, bool]]]:
    calls: list[tuple[str, bool]] = []

    def exclude(rel: str, is_dir: bool) -> bool:
        calls.append((rel, is_dir))
        return (rel, is_dir) in excluded

    return exclude, calls


def test_exclusion_sees_relative_paths_and_whether_they_are_directories(tmp_path: Path) -> None:
    r = tmp_path / "c"
    (r / "build").mkdir(parents=True)
    (r / "build" / "out").write_text("o")
    (r / "src").mkdir()
    (r / "src" / "build").write_text("a file named build")
    (r / "src" / "keep").write_text("k")
    (r / "logX").write_text("excluded")
    # Only the directory "build" is excluded: the file src/build is not.
    exclude, calls = _recording_exclude({("build", True), ("src/build", True), ("logX", False)})
    ctx = LocalContext(str(r), exclude)
    assert ctx.is_excluded("build", True) and not ctx.is_excluded("build", False)
    assert not ctx.is_excluded("", True)  # the root itself: exclude is not even asked
    assert ("", True) not in calls
    assert [p for p, _ in ctx.sources("*")] == ["/src"]
    assert [p for p, _ in ctx.sources("/build/out")] == ["/build/out"]
    assert ("build/out", False) in calls  # no leading slash; a file
    assert ctx.file_digests(["."]) == {"src/build": sha(b"a file named build")[:16],
                                       "src/keep": sha(b"k")[:16]}
    whole = ctx.checksum(["."])
    (r / "build" / "out").write_text("changed, excluded")
    assert ctx.checksum(["."]) == whole
    (r / "src" / "build").write_text("changed, copied")
    assert ctx.checksum(["."]) != whole
    # Without a rule nothing is excluded.
    plain = LocalContext(str(r))
    assert not plain.is_excluded("build", True)
    assert [p for p, _ in plain.sources("*")] == ["/build", "/logX", "/src"]


def test_excluded_entries_inside_a_copied_directory(tmp_path: Path) -> None:
    r = tmp_path / "c"
    (r / "d" / "x").mkdir(parents=True)
    (r / "d" / "x" / "f").write_text("f")
    (r / "d" / "y").write_text("y")
    os.symlink("x", r / "d" / "z")  # a link to a directory is no directory to the rules
    exclude, calls = _recording_exclude({("d/x", True), ("d/z", True)})
    ctx = LocalContext(str(r), exclude)
    with_x = LocalContext(str(r)).checksum(["d"])
    without_x = ctx.checksum(["d"])
    assert without_x != with_x
    assert ("d/x", True) in calls and ("d/y", False) in calls and ("d/z", False) in calls
    assert ("d/z", True) not in calls
    (r / "d" / "x" / "f").write_text("changed")
    assert ctx.checksum(["d"]) == without_x


def test_file_digests(tmp_path: Path) -> None:
    r = tmp_path / "c"
    (r / "d" / "e").mkdir(parents=True)
    (r / "d" / "e" / "f").write_text("deep")
    (r / "d" / "g").write_text("gg")
    os.symlink("g", r / "d" / "link")  # links are not files: left out
    os.symlink("e", r / "d" / "elink")  # nor is a link to a directory walked
    os.mkfifo(r / "d" / "fifo")
    (r / "top").write_text("top")
    ctx = LocalContext(str(r))
    want = {"d/e/f": sha(b"deep")[:16], "d/g": sha(b"gg")[:16]}
    assert ctx.file_digests(["d"]) == want
    assert ctx.file_digests(["top", "d/g"]) == {"top": sha(b"top")[:16], "d/g": sha(b"gg")[:16]}
    assert ctx.file_digests(["."]) == {**{f"d/{k[2:]}": v for k, v in want.items()}, "top": sha(b"top")[:16]}
    assert ctx.file_digests(["d/fifo"]) == {}  # neither file nor directory
    assert ctx.file_digests(["d/*"]) == want
    assert ctx.file_digests(["missing"]) == {}


def test_checksum_and_file_digests_write_the_digest_cache(tmp_path: Path, root: Path) -> None:
    db = tmp_path / "cache" / "hashes.db"
    for method in ("checksum", "file_digests"):
        if db.exists():
            db.unlink()
        cache = HashCache(db)
        getattr(LocalContext(str(root), cache=cache), method)(["app"])
        # Another process opening the database now sees the rows (the cache was flushed, not closed).
        other = HashCache(db)
        rows = other._db.execute("SELECT path, digest FROM file_hash ORDER BY path").fetchall()
        assert rows == [(str(root / "app" / "main.py"), sha(b"print('hi')\n")),
                        (str(root / "app" / "sub" / "data.txt"), sha(b"data"))], method
        other.close()
        cache.close()


def _sig(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def test_a_cached_digest_is_served_only_for_the_same_size_times_inode_and_device(tmp_path: Path) -> None:
    r = tmp_path / "c"
    r.mkdir()
    f = r / "f"
    f.write_text("real")
    st = os.stat(f)
    fake = "f" * 64
    variants = {
        "size": f"{st.st_size + 1}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}",
        "mtime": f"{st.st_size}:{st.st_mtime_ns + 1}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}",
        "ctime": f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns + 1}:{st.st_ino}:{st.st_dev}",
        "inode": f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino + 1}:{st.st_dev}",
        "device": f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev + 1}",
    }
    for what, sig in variants.items():
        cache = HashCache(tmp_path / f"{what}.db")
        cache.put(str(f), sig, fake)
        cache.flush()
        ctx = LocalContext(str(r), cache=cache)
        assert ctx.file_digests(["f"]) == {"f": sha(b"real")[:16]}, what
        cache.close()
    cache = HashCache(tmp_path / "same.db")
    cache.put(str(f), _sig(st), fake)
    cache.flush()
    ctx = LocalContext(str(r), cache=cache)
    assert ctx.file_digests(["f"]) == {"f": fake[:16]}  # trusted: the file was not read
    assert ctx.checksum(["f"]) != LocalContext(str(r)).checksum(["f"])  # the checksum uses it too
    cache.close()
    # What a miss computes is remembered under the file's signature.
    cache = HashCache(tmp_path / "fresh.db")
    LocalContext(str(r), cache=cache).checksum(["f"])
    assert cache.get(str(f), _sig(st)) == sha(b"real")
    cache.close()


def test_a_large_file_is_hashed_whole_in_bounded_memory(tmp_path: Path) -> None:
    r = tmp_path / "c"
    r.mkdir()
    chunk = os.urandom(1 << 20)
    with open(r / "big", "wb") as f:
        for _ in range(24):
            f.write(chunk)
        f.write(b"tail")
    want = hashlib.sha256()
    for _ in range(24):
        want.update(chunk)
    want.update(b"tail")
    tracemalloc.start()
    try:
        got = LocalContext(str(r)).file_digests(["big"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == {"big": want.hexdigest()[:16]}
    # A context file is read in chunks, never whole (a context may hold files of gigabytes).
    assert peak < 8 << 20


# -- COPY and ADD: helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "url"), [
    ("http://example.com/a", True), ("https://example.com/a", True), ("http:/x", False),
    ("ftp://example.com/a", False), ("HTTP://example.com/a", False), ("a/http://b", False),
    ("./https://x", False), ("https", False),
])
def test_is_url(src: str, url: bool) -> None:
    assert copy._is_url(src) is url


@pytest.mark.parametrize(("src", "git"), [
    ("git@github.com:o/r.git", True), ("git@host:o/r", True), ("https://host/o/r.git", True),
    ("git://host/o/r", True), ("repo.git", True), ("https://host/o/r", False), ("gitfile", False),
    ("a.gitx", False), ("xgit@host", False), ("xgit://h", False), ("", False),
])
def test_is_git(src: str, git: bool) -> None:
    assert copy._is_git(src) is git


def _copy(dest: str, **kw: Any) -> CopyInstruction:
    return CopyInstruction(name="copy", original="", start_line=1, end_line=1, sources=["a"], dest=dest, **kw)


@pytest.mark.parametrize(("dest", "workdir", "want"), [
    ("/abs/file", "/w", ("/abs/file", False)),
    ("/abs/dir/", "/w", ("/abs/dir", True)),
    ("rel", "/w", ("/w/rel", False)),
    ("rel/", "/w", ("/w/rel", True)),
    (".", "/w/x", ("/w/x", True)),
    ("..", "/w/x", ("/w", True)),
    ("sub/.", "/w", ("/w/sub", True)),
    ("sub/..", "/w", ("/w", False)),
    ("./rel", "/", ("/rel", False)),
    ("/", "/w", ("/", True)),
    ("a/../../..", "/w", ("/", False)),
    ("x.", "/w", ("/w/x.", False)),
    ("x..", "/w", ("/w/x..", False)),
])
def test_destination(dest: str, workdir: str, want: tuple[str, bool], root: Path) -> None:
    state, _ = new_state("FROM scratch\n")
    state.run["WorkingDir"] = workdir
    assert copy.destination(_copy(dest), state) == want


def test_from_ref_is_expanded_in_the_stage_and_only_for_copy() -> None:
    state, instructions = new_state("FROM scratch\nARG WHICH=builder\nENV TAG=v1\n")
    for instr in instructions:
        state.env.apply(instr)
    assert copy.from_ref(_copy("/x", from_="${WHICH}-$TAG"), state) == "builder-v1"
    assert copy.from_ref(_copy("/x", from_="plain"), state) == "plain"
    assert copy.from_ref(_copy("/x"), state) == ""
    add = AddInstruction(name="add", original="", start_line=1, end_line=1, sources=["a"], dest="/x")
    object.__setattr__(add, "from_", "builder")  # ADD has no --from: never a source stage
    assert copy.from_ref(add, state) == ""


# -- COPY and ADD: the step ----------------------------------------------------------------------


def test_copy_definition_and_history(root: Path) -> None:
    ctx = Ctx(root)
    step, _state = plan_last(ctx, "FROM scratch\nWORKDIR /w\nCOPY --chown=1:2 --chmod=750 --link --parents "
                                  "--exclude=*.md app top.txt out/\n")
    flags = {"chown": "1:2", "chmod": "750", "excludes": ["*.md"], "parents": True, "unpack": False,
             "link": True, "checksum": False, "keep_git_dir": False}
    assert step.definition == ["copy", ["app", "top.txt"], "/w/out", True, flags,
                               [["context", ctx.context.checksum(["app", "top.txt"])], ["inline", []]]]
    assert step.created_by == "COPY app top.txt out/ # buildkit"
    assert step.apply is None and step.action is not None
    assert ctx.source_keys == [] and ctx.fetched == []


def test_add_definition(root: Path) -> None:
    ctx = Ctx(root)
    step, _ = plan_last(ctx, "FROM scratch\nADD --unpack=true --keep-git-dir=true --checksum=sha256:abc "
                             "a.tar https://example.com/dl/file.bin /z\n")
    url = "https://example.com/dl/file.bin"
    flags = {"chown": "", "chmod": "", "excludes": [], "parents": False, "unpack": True, "link": False,
             "checksum": "sha256:abc", "keep_git_dir": True}
    assert step.definition == ["add", ["a.tar", url], "/z", False, flags,
                               [["context", ctx.context.checksum(["a.tar"])],
                                ["url", url, f"sha256:{sha(url.encode())}", "file.bin", 1234.5],
                                ["inline", []]]]
    assert ctx.fetched == [(url, "sha256:abc")]
    assert step.created_by == f"ADD a.tar {url} /z # buildkit"


def test_add_of_urls_only_reads_no_context(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)  # an empty context: a checksum of anything local would say "missing"
    step, _ = plan_last(ctx, "FROM scratch\nADD http://h/a https://h/b /d/\n")
    sums = step.definition[5]
    assert [s[0] for s in sums] == ["url", "url", "inline"]
    assert ctx.fetched == [("http://h/a", ""), ("https://h/b", "")]


def test_copy_of_a_url_is_refused(root: Path) -> None:
    ctx = Ctx(root)
    with pytest.raises(BuildError) as err:
        plan_last(ctx, "FROM scratch\nCOPY app http://example.com/x /d/\n")
    assert str(err.value) == "source can't be a URL for COPY: http://example.com/x"
    assert ctx.fetched == []


def test_copy_from_keys_the_source_not_the_context(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)  # "missing" is not in the context: it is in the other stage
    step, _ = plan_last(ctx, "FROM scratch AS b\nFROM scratch\nARG S=b\nCOPY --from=b missing /d\n")
    assert step.definition[5] == [["from", f"sha256:{sha(b'b')}"], ["inline", []]]
    assert ctx.source_keys == ["b"]


def test_copy_heredoc_definition_and_history(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    step, _ = plan_last(ctx, "FROM scratch\nENV X=1\nCOPY <<one <<two /d/\nhello $X\none\nbye\ntwo\n")
    assert step.definition == ["copy", [], "/d", True,
                               {"chown": "", "chmod": "", "excludes": [], "parents": False, "unpack": False,
                                "link": False, "checksum": False, "keep_git_dir": False},
                               [["inline", [("one", "hello 1\n"), ("two", "bye\n")]]]]
    assert step.created_by == "COPY one two /d/ # buildkit"


COPY_VARIANTS = {
    "sources": ("COPY app /d/", "COPY top.txt /d/"),
    "order": ("COPY app top.txt /d/", "COPY top.txt app /d/"),
    "dest": ("COPY app /d/", "COPY app /e/"),
    "dest is dir": ("COPY top.txt /d", "COPY top.txt /d/"),
    "workdir": ("WORKDIR /a\nCOPY top.txt d", "WORKDIR /b\nCOPY top.txt d"),
    "chown": ("COPY --chown=1 app /d/", "COPY --chown=2 app /d/"),
    "chmod": ("COPY --chmod=644 app /d/", "COPY --chmod=755 app /d/"),
    "exclude": ("COPY --exclude=*.py app /d/", "COPY --exclude=*.txt app /d/"),
    "parents": ("COPY app /d/", "COPY --parents app /d/"),
    "link": ("COPY app /d/", "COPY --link app /d/"),
    "from": ("COPY --from=a app /d/", "COPY --from=b app /d/"),
    "heredoc": ("COPY <<x /d/\none\nx", "COPY <<x /d/\ntwo\nx"),
    "heredoc name": ("COPY <<x /d/\none\nx", "COPY <<y /d/\none\ny"),
    "add unpack": ("ADD a.tar /d/", "ADD --unpack=false a.tar /d/"),
    "add checksum": ("ADD --checksum=sha256:aa http://h/f /d/", "ADD --checksum=sha256:bb http://h/f /d/"),
    "add keep-git-dir": ("ADD a.tar /d/", "ADD --keep-git-dir=true a.tar /d/"),
    "add url": ("ADD http://h/f /d/", "ADD http://h/g /d/"),
    "copy or add": ("COPY a.tar /d/", "ADD a.tar /d/"),
}


@pytest.mark.parametrize("what", sorted(COPY_VARIANTS))
def test_each_copy_attribute_changes_the_key(root: Path, what: str) -> None:
    first, second = COPY_VARIANTS[what]
    a = key_of(Ctx(root), f"FROM scratch\n{first}\n")
    assert a == key_of(Ctx(root), f"FROM scratch\n{first}\n")
    assert a != key_of(Ctx(root), f"FROM scratch\n{second}\n")


def test_copy_key_follows_the_content_of_the_sources_only(root: Path) -> None:
    before = key_of(Ctx(root), "FROM scratch\nCOPY app /d/\n")
    (root / "top.txt").write_text("not copied")
    assert key_of(Ctx(root), "FROM scratch\nCOPY app /d/\n") == before
    (root / "app" / "sub" / "data.txt").write_text("copied")
    assert key_of(Ctx(root), "FROM scratch\nCOPY app /d/\n") != before
    # ENV and USER do not change what a COPY writes: its own definition leaves them out (the parent
    # key, which they changed, still chains them in).
    with_env, _ = plan_last(Ctx(root), "FROM scratch\nENV X=1\nUSER 1\nCOPY app /d/\n")
    other_env, _ = plan_last(Ctx(root), "FROM scratch\nENV X=2\nUSER 2\nCOPY app /d/\n")
    assert with_env.definition == other_env.definition


def test_copy_step_action_copies_this_instruction(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(copy, "execute", lambda *a: calls.append(a))
    ctx = Ctx(root)
    step, state = plan_last(ctx, "FROM scratch\nCOPY app /d/\n")
    assert step.action is not None
    step.action(Path("/up"), Path("/work"), lambda c, s: None)
    assert len(calls) == 1
    got_ctx, instr, got_state, upper, work = calls[0]
    assert got_ctx is ctx and got_state is state and (upper, work) == (Path("/up"), Path("/work"))
    assert isinstance(instr, CopyInstruction) and instr.sources == ["app"] and instr.dest == "/d/"


# -- RUN ------------------------------------------------------------------------------------------


def _run(line: str, shell: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    state, instructions = new_state(f"FROM scratch\n{line}\n")
    if shell is not None:
        state.run["Shell"] = shell
    instr = instructions[-1]
    assert isinstance(instr, RunInstruction)
    return run.command_args(instr, state)


def test_command_args() -> None:
    assert _run('RUN ["/bin/echo", "a b", "c"]') == (["/bin/echo", "a b", "c"], {})
    assert _run("RUN echo a  b") == (["/bin/sh", "-c", "echo a  b"], {})
    assert _run("RUN echo hi", ["/bin/bash", "-eu", "-c"]) == (["/bin/bash", "-eu", "-c", "echo hi"], {})
    # A heredoc alone is mounted as a script and run by the shell, or by its own #! line.
    assert _run("RUN <<EOF\necho hi\nEOF") == (["/bin/sh", "-c", "/run/dockyard-pipes/EOF"],
                                               {"EOF": "echo hi\n"})
    assert _run("RUN <<-'END'\n#!/usr/bin/env python3\nprint(1)\nEND", ["/bin/bash", "-c"]) == (
        ["/run/dockyard-pipes/END"], {"END": "#!/usr/bin/env python3\nprint(1)\n"})
    assert _run("RUN 3<<EOF\nx\nEOF") == (["/bin/sh", "-c", "/run/dockyard-pipes/EOF"], {"EOF": "x\n"})
    # Otherwise the heredocs follow the command line, as a shell reads them.
    assert _run("RUN cat <<EOF\nhello\nEOF") == (["/bin/sh", "-c", "cat <<EOF\nhello\nEOF\n"], {})
    assert _run("RUN <<A <<B\na\nA\nb\nB") == (["/bin/sh", "-c", "<<A <<B\na\nA\nb\nB\n"], {})
    assert _run('RUN ["<<EOF"]') == (["<<EOF"], {})


def test_run_definition_and_history(root: Path) -> None:
    ctx = Ctx(root)
    step, state = plan_last(ctx, "FROM scratch\nARG V=1\nARG NOVALUE\nARG http_proxy=p\nENV E=2\nARG E=3\n"
                                 "USER 7:8\nWORKDIR /w\n"
                                 "RUN --mount=type=bind,source=app,target=/m --network=none --device=gpu0 "
                                 "--security=sandbox echo $V\n")
    bind = asdict(MountSpec(type="bind", source="app", target="/m"))
    bind["source_content"] = ctx.context.checksum(["app"])
    assert step.definition == ["run", ["/bin/sh", "-c", "echo $V"],
                               [PATH_ENV, "V=1", "http_proxy=p", "E=3"], "7:8", "/w", "none", [bind],
                               "sandbox", [{"name": "gpu0", "required": False}], []]
    # BuildKit's history prefix: every declared ARG in order, the ENV value winning, proxies left out.
    assert step.created_by == "RUN |3 V=1 NOVALUE= E=2 /bin/sh -c echo $V # buildkit"
    assert state.declared_args == ["V", "NOVALUE", "http_proxy", "E"]


def test_run_history_without_args(root: Path) -> None:
    step, _ = plan_last(Ctx(root), "FROM scratch\nARG HTTPS_PROXY=x\nRUN true\n")
    assert step.created_by == "RUN /bin/sh -c true # buildkit"
    step, _ = plan_last(Ctx(root), 'FROM scratch\nRUN ["a", "b"]\n')
    assert step.created_by == "RUN a b # buildkit"


def test_run_heredoc_script_is_keyed(root: Path) -> None:
    step, _ = plan_last(Ctx(root), "FROM scratch\nRUN <<EOF\necho one\nEOF\n")
    assert step.definition[1] == ["/bin/sh", "-c", "/run/dockyard-pipes/EOF"]
    assert step.definition[9] == [("EOF", "echo one\n")]
    assert key_of(Ctx(root), "FROM scratch\nRUN <<EOF\necho one\nEOF\n") != key_of(
        Ctx(root), "FROM scratch\nRUN <<EOF\necho two\nEOF\n")


RUN_VARIANTS = {
    "command": ("RUN a", "RUN b"),
    "shell": ('SHELL ["/bin/sh", "-c"]\nRUN a', 'SHELL ["/bin/bash", "-c"]\nRUN a'),
    "env": ("ENV X=1\nRUN a", "ENV X=2\nRUN a"),
    "arg": ("ARG X=1\nRUN a", "ARG X=2\nRUN a"),
    "user": ("USER 1\nRUN a", "USER 2\nRUN a"),
    "workdir": ("WORKDIR /a\nRUN a", "WORKDIR /b\nRUN a"),
    "network": ("RUN --network=none a", "RUN --network=host a"),
    "security": ("RUN --security=sandbox a", "RUN --security=insecure a"),
    "device": ("RUN --device=a a", "RUN --device=b a"),
    "mount target": ("RUN --mount=type=tmpfs,target=/a a", "RUN --mount=type=tmpfs,target=/b a"),
    "mount source content": ("RUN --mount=source=app,target=/m a", "RUN --mount=source=top.txt,target=/m a"),
    "mount from": ("RUN --mount=from=a,target=/m a", "RUN --mount=from=b,target=/m a"),
    "cache from": ("RUN --mount=type=cache,from=a,target=/m a", "RUN --mount=type=cache,from=b,target=/m a"),
}


@pytest.mark.parametrize("what", sorted(RUN_VARIANTS))
def test_each_run_attribute_changes_the_key(root: Path, what: str) -> None:
    first, second = RUN_VARIANTS[what]
    ctx = Ctx(root, entitlements=("security.insecure",))
    a = key_of(ctx, f"FROM scratch\n{first}\n")
    assert a == key_of(ctx, f"FROM scratch\n{first}\n")
    assert a != key_of(ctx, f"FROM scratch\n{second}\n")


def test_insecure_run_needs_the_entitlement(root: Path) -> None:
    with pytest.raises(BuildError) as err:
        plan_last(Ctx(root), "FROM scratch\nRUN --security=insecure true\n")
    assert str(err.value) == "security.insecure is not allowed: grant it with --allow security.insecure"
    granted = Ctx(root, entitlements=("security.insecure",))
    step, _ = plan_last(granted, "FROM scratch\nRUN --security=insecure true\n")
    assert step.definition[7] == "insecure"
    with pytest.raises(BuildError):
        plan_last(Ctx(root, entitlements=("network.host",)), "FROM scratch\nRUN --security=insecure true\n")


@pytest.mark.parametrize(("flag", "build", "want"), [
    ("", "default", "private"), ("", "host", "host"), ("", "none", "none"),
    ("--network=default", "none", "none"), ("--network=none", "host", "none"),
    ("--network=host", "none", "host"),
])
def test_run_network(root: Path, flag: str, build: str, want: Network) -> None:
    ctx = Ctx(root, network=build)
    step, _ = plan_last(ctx, f"FROM scratch\nRUN {flag} true\n")
    assert step.definition[5] == want
    instr = new_state(f"FROM scratch\nRUN {flag} true\n")[1][-1]
    assert isinstance(instr, RunInstruction)
    assert run._network(ctx, instr) == want  # type: ignore[arg-type]


def test_run_network_unknown(root: Path) -> None:
    with pytest.raises(InvalidArgument) as err:
        plan_last(Ctx(root, network="bogus"), "FROM scratch\nRUN true\n")
    assert "unknown network 'bogus'" in str(err.value)


def test_run_step_action_runs_this_instruction(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(run, "execute", lambda *a: calls.append(a))
    ctx = Ctx(root)
    step, state = plan_last(ctx, "FROM scratch\nRUN echo hi\n")
    assert step.action is not None and step.apply is None

    def sink(chunk: bytes, stream: int) -> None:
        del chunk, stream

    step.action(Path("/up"), Path("/work"), sink)
    assert len(calls) == 1
    got_ctx, instr, got_state, upper, work, output = calls[0]
    assert got_ctx is ctx and got_state is state and (upper, work) == (Path("/up"), Path("/work"))
    assert output is sink
    assert isinstance(instr, RunInstruction) and instr.cmd_line == ["echo hi"]


# -- RUN --mount ----------------------------------------------------------------------------------


def test_mount_definitions(root: Path) -> None:
    ctx = Ctx(root)

    def content(spec: MountSpec) -> Any:
        d = mounts.definition(ctx, spec)  # type: ignore[arg-type]
        assert {k: v for k, v in d.items() if k != "source_content"} == asdict(spec)
        return d["source_content"]

    assert content(MountSpec(type="bind", source="app", target="/m")) == ctx.context.checksum(["app"])
    assert content(MountSpec(type="bind", target="/m")) == ctx.context.checksum(["/"])
    assert content(MountSpec(type="bind", from_="st", source="app", target="/m")) == f"sha256:{sha(b'st')}"
    assert content(MountSpec(type="cache", from_="seed", target="/m")) == f"sha256:{sha(b'seed')}"
    assert ctx.source_keys == ["st", "seed"]
    assert content(MountSpec(type="cache", source="app", target="/m")) == ""
    assert content(MountSpec(type="tmpfs", target="/m")) == ""
    assert content(MountSpec(type="secret", from_="x", source="app", target="/m")) == ""
    assert ctx.source_keys == ["st", "seed"]


# -- WORKDIR and a stage's first key ----------------------------------------------------------------


class _Workspace:
    """``mounted`` over a plain directory standing for the merged root (no overlay needed to plan)."""

    def __init__(self, merged: Path) -> None:
        self.merged = merged
        self.calls: list[tuple[Any, ...]] = []

    @contextlib.contextmanager
    def mounted(self, lowers: Any, upper: Any = None, work: Any = None) -> Iterator[str]:
        self.calls.append((lowers, upper, work))
        yield str(self.merged)


class _WorkdirCtx(Ctx):
    def __init__(self, root: Path, merged: Path) -> None:
        super().__init__(root)
        self.workspace = _Workspace(merged)

    def lowerdirs(self, state: StageState) -> list[Path]:
        return [Path(f"/layers/{state.key[7:15]}/1"), Path(f"/layers/{state.key[7:15]}/0")]


@pytest.mark.parametrize(("path", "current", "want"), [
    ("/w//x/", "/a", "/w//x/"),  # absolute: kept as written
    ("rel", "/a", "/a/rel"),
    ("rel//x/./", "/a/b", "/a/b/rel/x"),
    ("../up", "/a/b", "/a/up"),
    ("..", "/", "/"),
])
def test_workdir_resolve(path: str, current: str, want: str) -> None:
    state, _ = new_state("FROM scratch\n")
    state.run["WorkingDir"] = current
    instr = new_state(f"FROM scratch\nWORKDIR {path}\n")[1][-1]
    assert workdir.resolve(instr, state) == want  # type: ignore[arg-type]


@pytest.mark.skipif(os.geteuid() != 0, reason="making directories for another user needs root")
def test_workdir_step(tmp_path: Path, root: Path) -> None:
    merged = tmp_path / "merged"
    (merged / "etc").mkdir(parents=True)
    (merged / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (merged / "etc" / "group").write_text("root:x:0:\napp:x:1001:\n")
    (merged / "existing").mkdir(mode=0o700)
    ctx = _WorkdirCtx(root, merged)
    step, state = plan_last(ctx, "FROM scratch\nUSER app\nWORKDIR /existing/new/deeper\n")
    assert step.definition == ["workdir", "/existing/new/deeper", "app"]
    assert step.created_by == "WORKDIR /existing/new/deeper"
    assert step.apply is not None and step.action is not None
    step.apply(state)
    assert state.workdir == "/existing/new/deeper"
    step.action(Path("/up"), Path("/work"), lambda c, s: None)
    # Mounted over the layers of the state the step was planned on.
    assert ctx.workspace.calls == [(ctx.lowerdirs(state), Path("/up"), Path("/work"))]
    # The missing directories are the USER's, 0755; the existing one is left alone.
    for made in (merged / "existing" / "new", merged / "existing" / "new" / "deeper"):
        st = os.stat(made)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o755)
    st = os.stat(merged / "existing")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    # Without a USER they belong to root.
    step, _ = plan_last(ctx, "FROM scratch\nWORKDIR /rootdir\n")
    assert step.definition == ["workdir", "/rootdir", ""]
    assert step.action is not None
    os.chown(merged, 1000, 1000)  # the merged root's owner is not inherited either
    step.action(Path("/up"), Path("/work"), lambda c, s: None)
    st = os.stat(merged / "rootdir")
    assert (st.st_uid, st.st_gid) == (0, 0)


@pytest.mark.parametrize("path", ["/", "/.", "/a/..", "//"])
def test_workdir_root_makes_no_layer(root: Path, path: str) -> None:
    step, state = plan_last(Ctx(root), f"FROM scratch\nWORKDIR {path}\n")
    assert step.action is None
    assert step.definition == ["workdir", path, ""]
    assert step.apply is not None
    step.apply(state)
    assert state.run["WorkingDir"] == path


def test_workdir_key(root: Path) -> None:
    step, _ = plan_last(Ctx(root), "FROM scratch\nWORKDIR /a\nWORKDIR b/../c\n")
    assert step.definition == ["workdir", "/a/c", ""] and step.created_by == "WORKDIR /a/c"
    assert key_of(Ctx(root), "FROM scratch\nWORKDIR /a\n") != key_of(Ctx(root), "FROM scratch\nWORKDIR /b\n")
    assert key_of(Ctx(root), "FROM scratch\nUSER 1\nWORKDIR /a\n") != key_of(
        Ctx(root), "FROM scratch\nUSER 2\nWORKDIR /a\n")


def test_root_key_carries_source_date_epoch() -> None:
    definition: list[object] = ["from", "sha256:" + "1" * 64]
    assert engine._root_key(definition, None) == derive_key("", definition)
    assert engine._root_key(definition, 5) == derive_key("", [*definition, ["source-date-epoch", 5]])
    assert engine._root_key(definition, 0) == derive_key("", [*definition, ["source-date-epoch", 0]])
    assert len({engine._root_key(definition, e) for e in (None, 0, 5, 6)}) == 4
    assert definition == ["from", "sha256:" + "1" * 64]  # not changed in place


# -- config-only instructions: their key, history text and config change ----------------------------


CONFIG_STEPS: list[tuple[str, list[Any], str, dict[str, Any]]] = [
    ('ENV A=1 B="two words"', ["env", [("A", "1"), ("B", "two words")]], "ENV A=1 B=two words",
     {"Env": [PATH_ENV, "A=1", "B=two words"]}),
    ("ARG V=1 W", ["arg", ["V=1", "W"]], "ARG V=1 W", {}),
    ('LABEL a=b "c d"=e', ["label", [("a", "b"), ("c d", "e")]], "LABEL a=b c d=e",
     {"Labels": {"a": "b", "c d": "e"}}),
    ("EXPOSE 80 53/udp 8000-8001 80", ["expose", ["53/udp", "80/tcp", "80/tcp", "8000/tcp", "8001/tcp"]],
     "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]",
     {"ExposedPorts": {"53/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}}}),
    ('VOLUME ["/a b", "/c"]', ["volume", ["/a b", "/c"]], "VOLUME [/a b /c]",
     {"Volumes": {"/a b": {}, "/c": {}}}),
    ("USER app:grp", ["user", "app:grp"], "USER app:grp", {"User": "app:grp"}),
    ("CMD echo hi", ["cmd", ["/bin/sh", "-c", "echo hi"]], 'CMD ["/bin/sh" "-c" "echo hi"]',
     {"Cmd": ["/bin/sh", "-c", "echo hi"], "ArgsEscaped": True}),
    ('CMD ["a", "b c"]', ["cmd", ["a", "b c"]], 'CMD ["a" "b c"]',
     {"Cmd": ["a", "b c"], "ArgsEscaped": True}),
    ("CMD []", ["cmd", []], "CMD []", {"ArgsEscaped": True}),
    ('ENTRYPOINT ["/e"]', ["entrypoint", ["/e"]], 'ENTRYPOINT ["/e"]', {"Entrypoint": ["/e"]}),
    ("ENTRYPOINT x y", ["entrypoint", ["/bin/sh", "-c", "x y"]], 'ENTRYPOINT ["/bin/sh" "-c" "x y"]',
     {"Entrypoint": ["/bin/sh", "-c", "x y"]}),
    ('SHELL ["/bin/bash", "-c"]', ["shell", ["/bin/bash", "-c"]], "SHELL [/bin/bash -c]",
     {"Shell": ["/bin/bash", "-c"]}),
    ("STOPSIGNAL SIGKILL", ["stopsignal", "SIGKILL"], "STOPSIGNAL SIGKILL", {"StopSignal": "SIGKILL"}),
    ("HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --start-interval=3s --retries=4 CMD curl x",
     ["healthcheck", {"Test": ["CMD-SHELL", "curl x"], "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                      "StartPeriod": 1_000_000_000, "StartInterval": 3_000_000_000, "Retries": 4}],
     "HEALTHCHECK &{[\"CMD-SHELL\" \"curl x\"] \"5s\" \"2s\" \"1s\" '\\x04'}",
     {"Healthcheck": {"Test": ["CMD-SHELL", "curl x"], "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                      "StartPeriod": 1_000_000_000, "StartInterval": 3_000_000_000, "Retries": 4}}),
    ('HEALTHCHECK CMD ["a"]', ["healthcheck", {"Test": ["CMD", "a"]}],
     "HEALTHCHECK &{[\"CMD\" \"a\"] \"0s\" \"0s\" \"0s\" '\\x00'}", {"Healthcheck": {"Test": ["CMD", "a"]}}),
    ("HEALTHCHECK NONE", ["healthcheck", {"Test": ["NONE"]}],
     "HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}", {"Healthcheck": {"Test": ["NONE"]}}),
    ("ONBUILD RUN echo", ["onbuild", "RUN echo"], "", {"OnBuild": ["RUN echo"]}),
]


@pytest.mark.parametrize(("line", "definition", "created_by", "changes"), CONFIG_STEPS,
                         ids=[c[0].split()[0] + str(i) for i, c in enumerate(CONFIG_STEPS)])
def test_config_step(root: Path, line: str, definition: list[Any], created_by: str,
                     changes: dict[str, Any]) -> None:
    step, state = plan_last(Ctx(root), f"FROM scratch\n{line}\n")
    assert step.definition == definition
    assert step.created_by == created_by
    assert step.action is None and step.apply is not None
    before = dict(state.run)
    step.apply(state)
    assert state.run == {**before, **changes}
    assert state.config.author == ""


def test_config_steps_add_to_what_the_image_has(root: Path) -> None:
    state, instructions = new_state("FROM scratch\nLABEL new=2 old=3\nEXPOSE 90\nVOLUME /v2\n"
                                    "ONBUILD RUN two\n")
    state.run.update({"Labels": {"old": "1", "keep": "k"}, "ExposedPorts": {"80/tcp": {}},
                      "Volumes": {"/v1": {}}, "OnBuild": ["RUN one"]})
    for instr in instructions:
        step = plan_step(Ctx(root), state.env.apply(instr), state)  # type: ignore[arg-type]
        assert step is not None and step.apply is not None
        step.apply(state)
    assert state.run["Labels"] == {"old": "3", "keep": "k", "new": "2"}
    assert state.run["ExposedPorts"] == {"80/tcp": {}, "90/tcp": {}}
    assert state.run["Volumes"] == {"/v1": {}, "/v2": {}}
    assert state.run["OnBuild"] == ["RUN one", "RUN two"]


def test_cmd_and_entrypoint_against_the_base(root: Path) -> None:
    def applied(line: str, run_config: dict[str, Any], from_base: set[str]) -> StageState:
        state, instructions = new_state(f"FROM scratch\n{line}\n")
        state.run.update(run_config)
        state.run_config_from_base = set(from_base)
        step = plan_step(Ctx(root), state.env.apply(instructions[-1]), state)  # type: ignore[arg-type]
        assert step is not None and step.apply is not None
        step.apply(state)
        return state

    # An ENTRYPOINT drops a CMD that came with the base image...
    s = applied('ENTRYPOINT ["/e"]', {"Cmd": ["base"], "Entrypoint": ["/old"]}, {"Cmd", "Entrypoint"})
    assert "Cmd" not in s.run and s.run["Entrypoint"] == ["/e"] and "ArgsEscaped" not in s.run
    assert s.run_config_from_base == {"Cmd"}
    # A second ENTRYPOINT finds no CMD left to drop.
    step = plan_step(Ctx(root), new_state('FROM scratch\nENTRYPOINT ["/f"]\n')[1][-1], s)
    assert step is not None and step.apply is not None
    step.apply(s)
    assert "Cmd" not in s.run and s.run["Entrypoint"] == ["/f"]
    # ...not one this Dockerfile set.
    s = applied('ENTRYPOINT ["/e"]', {"Cmd": ["mine"]}, set())
    assert s.run["Cmd"] == ["mine"]
    # An empty list removes the key; CMD leaves the base's ENTRYPOINT alone.
    s = applied("ENTRYPOINT []", {"Entrypoint": ["/old"], "Cmd": ["base"]}, {"Entrypoint", "Cmd"})
    assert "Entrypoint" not in s.run and "Cmd" not in s.run
    s = applied("CMD []", {"Cmd": ["base"], "Entrypoint": ["/e"]}, {"Cmd", "Entrypoint"})
    assert "Cmd" not in s.run and s.run["Entrypoint"] == ["/e"] and s.run["ArgsEscaped"] is True
    assert s.run_config_from_base == {"Entrypoint"}
    # The shell form uses the stage's SHELL.
    s = applied("CMD run me", {"Shell": ["/bin/ash", "-eo", "pipefail", "-c"]}, set())
    assert s.run["Cmd"] == ["/bin/ash", "-eo", "pipefail", "-c", "run me"]


def test_maintainer_sets_the_author(root: Path) -> None:
    step, state = plan_last(Ctx(root), "FROM scratch\nMAINTAINER me <m@x>\n")
    assert step.definition == ["maintainer", "me <m@x>"] and step.created_by == "MAINTAINER me <m@x>"
    before = dict(state.run)
    assert step.apply is not None
    step.apply(state)
    assert state.config.author == "me <m@x>" and state.run == before


def test_arg_history_is_the_text_as_written(root: Path) -> None:
    state, instructions = new_state("FROM scratch\nARG V=$HOME W\n", {"V": "from-cli"})
    expanded = state.env.apply(instructions[-1])
    step = config.plan(expanded, state, "V=/x W")
    assert step is not None
    assert step.definition == ["arg", ["V=from-cli", "W"]]  # the value is what the key holds
    assert step.created_by == "ARG V=/x W"
    plain = config.plan(expanded, state)  # without the text as written: the words with their values
    assert plain is not None and plain.created_by == "ARG V=from-cli W"
    assert step.apply is not None
    before = dict(state.run)
    step.apply(state)
    assert state.run == before
    run_instr = new_state("FROM scratch\nRUN x\n")[1][-1]
    assert config.plan(run_instr, state) is None


CONFIG_VARIANTS = {
    "env value": ("ENV A=1", "ENV A=2"), "env name": ("ENV A=1", "ENV B=1"),
    "arg": ("ARG A=1", "ARG A=2"), "label": ("LABEL a=1", "LABEL a=2"), "expose": ("EXPOSE 80", "EXPOSE 81"),
    "volume": ("VOLUME /a", "VOLUME /b"), "user": ("USER a", "USER b"), "cmd": ("CMD a", "CMD b"),
    "cmd form": ("CMD a", 'CMD ["a"]'), "entrypoint": ("ENTRYPOINT a", "ENTRYPOINT b"),
    "cmd or entrypoint": ('CMD ["a"]', 'ENTRYPOINT ["a"]'), "shell": ('SHELL ["a"]', 'SHELL ["b"]'),
    "stopsignal": ("STOPSIGNAL 1", "STOPSIGNAL 2"), "healthcheck": ("HEALTHCHECK CMD a", "HEALTHCHECK CMD b"),
    "healthcheck retries": ("HEALTHCHECK --retries=1 CMD a", "HEALTHCHECK --retries=2 CMD a"),
    "maintainer": ("MAINTAINER a", "MAINTAINER b"), "onbuild": ("ONBUILD RUN a", "ONBUILD RUN b"),
}


@pytest.mark.parametrize("what", sorted(CONFIG_VARIANTS))
def test_each_config_value_changes_the_key(root: Path, what: str) -> None:
    first, second = CONFIG_VARIANTS[what]
    a = key_of(Ctx(root), f"FROM scratch\n{first}\n")
    assert a == key_of(Ctx(root), f"FROM scratch\n{first}\n")
    assert a != key_of(Ctx(root), f"FROM scratch\n{second}\n")
