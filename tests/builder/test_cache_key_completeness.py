"""Cache-key completeness as a property: whatever a step's result depends on is in its cache key.

Each entry of ``CASES`` builds a small Dockerfile twice in one store, changing one attribute only
(a flag's value, one ``--mount`` option, one property of a COPY source, ENV, USER, the base...),
and checks that the step under test (the one whose title holds ``Case.step``, "probe" unless said)
is built again, not restored from the cache, and that the image differs as it should (or, for
attributes that only decide BuildKit's key, stays the same: ``Case.same`` says why). A third build
with the second value must hit the cache, so "not a hit" is never just a key that changes on
every build.

The list is derived from the parser, so a new flag cannot slip in without a case:

- instruction flags: ``declared_flags`` parses every instruction of ``INSTRUCTIONS`` with an
  undeclared flag and records the flags the instruction declared (through ``BFlags.parse``) before
  rejecting it; each ``"<instruction> --<flag>"`` must be a key of ``CASES``;
- ``RUN --mount`` options: the key table next to ``parse_mount`` (``_MOUNT_KEYS``, wherever the
  mount parser lives) must equal ``MOUNT_KEY_SAMPLES``; each sample shows which ``MountSpec`` field
  its key sets, and every ``MountSpec`` field must have a ``"mount <field>"`` case.

A new flag or mount option therefore fails ``test_every_*`` until it gets a case: a Dockerfile with
``{v}``, two values, and the observation that must change. Where dockyard keys more than BuildKit
(an explicit cache mount id or sharing; proxy build args) the extra key costs a rebuild, never a
wrong image.

The negative controls show what is not in a key: a context file's mtime (or ctime), a context file
the step does not copy, a build arg no stage declares, and a secret's value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dockyard import record
from dockyard.dockerfile import MountSpec, parse, parse_instruction, parse_mount
from dockyard.dockerfile.flags import BFlags
from dockyard.dockerfile.instructions import INSTRUCTIONS
from dockyard.errors import DockerfileError
from tests.builder.conftest import Builds

pytestmark = pytest.mark.slow


BASE = "FROM busybox:local\n"
TAG = "ck:probe"
SERVED = b"served over http\n"
SERVED_SHA256 = "sha256:" + hashlib.sha256(SERVED).hexdigest()

Setup = Callable[[Builds, Path, str], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One attribute: a Dockerfile with ``{v}`` where the two ``values`` go.

    ``setup`` changes the context (or the store) for a value, ``options`` gives build options for
    it; ``same`` says why the image is expected not to change (empty: it must change).
    ``step`` is a word only the title of the step under test holds."""

    dockerfile: str
    values: tuple[str, str]
    files: Mapping[str, str | bytes] = dataclasses.field(default_factory=dict)
    setup: Setup | None = None
    options: Callable[[Path, str], dict[str, Any]] | None = None
    same: str = ""
    step: str = "probe"  # what the title of the step under test holds
    mtime: bool = False  # whether the files' mtimes are part of the result


# -- context changes ------------------------------------------------------------------------------


def _chmod(rel: str) -> Setup:
    def setup(builds: Builds, ctx: Path, v: str) -> None:
        os.chmod(ctx / rel, int(v, 8))
    return setup


def _chown(builds: Builds, ctx: Path, v: str) -> None:
    os.chown(ctx / "f", int(v), int(v))


def _write(rel: str) -> Setup:
    def setup(builds: Builds, ctx: Path, v: str) -> None:
        (ctx / rel).write_text(v)
    return setup


def _file_or_dir(builds: Builds, ctx: Path, v: str) -> None:
    path = ctx / "f"
    if path.is_dir():
        path.rmdir()
    elif path.exists():
        path.unlink()
    if v == "dir":
        path.mkdir()
    else:
        path.touch()
    os.chmod(path, 0o755)


def _link(builds: Builds, ctx: Path, v: str) -> None:
    (ctx / "d").mkdir(exist_ok=True)
    link = ctx / "d" / "l"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(v)


def _hardlink(builds: Builds, ctx: Path, v: str) -> None:
    second = ctx / "d" / "b"
    second.unlink(missing_ok=True)
    if v == "hard link":
        os.link(ctx / "d" / "a", second)
    else:
        second.write_text("same")
        os.chmod(second, os.stat(ctx / "d" / "a").st_mode)


def _base_image(builds: Builds, ctx: Path, v: str) -> None:
    base = builds.context(BASE + f"RUN echo {v} > /b\n", name="base")
    builds.build(base, tags=["ck-base:1"])


def _serve(what: str) -> Setup:
    """Serve another body, file name (Content-Disposition) or Last-Modified for each value."""
    def setup(builds: Builds, ctx: Path, v: str) -> None:
        if what == "body":
            _Served.body = v.encode()
        else:
            _Served.headers = {"Content-Disposition": f'attachment; filename="{v}"'} if what == "name" \
                else {"Last-Modified": v}
    return setup


def _tar() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inside")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"in"))
    return buf.getvalue()


TWO_STAGES = """FROM busybox:local AS a
RUN echo a > /f && chown 1:1 /f
FROM busybox:local AS b
RUN echo b > /f && chown 2:2 /f
FROM busybox:local
"""
SECRET = {"s": b"topsecret"}


def _copy_add(instr: str) -> dict[str, Case]:
    """The flags COPY and ADD share, for one of them."""
    word = instr.upper()
    return {
        f"{instr} --chmod": Case(BASE + f"{word} --chmod={{v}} f /probe\n", ("644", "755"), {"f": "x"}),
        f"{instr} --chown": Case(BASE + f"{word} --chown={{v}} f /probe\n", ("1:1", "2:3"), {"f": "x"}),
        f"{instr} --exclude": Case(BASE + f"{word} --exclude=**/{{v}} d /probe\n", ("a", "b"),
                                   {"d/a": "a", "d/b": "b"}),
        f"{instr} --link": Case(BASE + f"{word} {{v}} f /probe\n", ("--link=false", "--link"), {"f": "x"},
                                same="--link changes how BuildKit stacks the layer, not the files"),
    }


CASES: dict[str, Case] = {
    # -- COPY / ADD sources from the context
    "source bytes": Case(BASE + "COPY f /probe\n", ("v1", "v2"), setup=_write("f")),
    "source size": Case(BASE + "COPY f /probe\n", ("x", "x\n"), setup=_write("f")),
    "source bytes in a directory": Case(BASE + "COPY d /probe\n", ("v1", "v2"), {"d/e/f": ""},
                                        setup=_write("d/e/f")),
    "source permission bits": Case(BASE + "COPY f /probe\n", ("644", "640"), {"f": "x"}, setup=_chmod("f")),
    "source mode": Case(BASE + "COPY f /probe\n", ("755", "4755"), {"f": "x"}, setup=_chmod("f")),
    "source directory mode": Case(BASE + "COPY d /probe\n", ("755", "700"), {"d/e/f": "x"},
                                  setup=_chmod("d/e")),
    "source owner": Case(BASE + "COPY f /probe\n", ("0", "1000"), {"f": "x"}, setup=_chown,
                         same="context files belong to root in the image; BuildKit's content hash "
                              "still covers their owner"),
    "source hard links": Case(BASE + "COPY d /probe\n", ("copy", "hard link"), {"d/a": "same"},
                              setup=_hardlink),
    "source type": Case(BASE + "COPY f /probe\n", ("file", "dir"), setup=_file_or_dir),
    "source link target": Case(BASE + "COPY d /probe\n", ("a", "b"), setup=_link),
    # -- COPY / ADD flags
    **_copy_add("copy"),
    **_copy_add("add"),
    "copy --from": Case(TWO_STAGES + "COPY --from={v} /f /probe\n", ("a", "b")),
    "copy --from content": Case(BASE + "RUN echo {v} > /f\nFROM busybox:local\nCOPY --from=0 /f /probe\n",
                                ("1", "2")),
    "copy --from an image": Case(BASE + "COPY --from=ck-base:1 /b /probe\n", ("1", "2"), setup=_base_image),
    "copy heredoc": Case(BASE + "COPY <<EOF /probe\n{v}\nEOF\n", ("one", "two")),
    "copy --from a build context": Case(BASE + "COPY --from=named f /probe\n", ("1", "2"), {"named/f": ""},
                                        setup=_write("named/f"),
                                        options=lambda ctx, v: {"build_contexts": {"named": f"{ctx}/named"}}),
    "copy --parents": Case(BASE + "COPY {v} x/f /probe/\n", ("--parents=false", "--parents"), {"x/f": "x"}),
    "add --checksum": Case(BASE + "ADD {v} {url} /probe\n", ("", f"--checksum={SERVED_SHA256}"),
                           same="the checksum only pins the download"),
    "add --keep-git-dir": Case(BASE + "ADD --keep-git-dir={v} f /probe\n", ("false", "true"), {"f": "x"},
                               same="only a git source has a .git directory to keep"),
    "add url bytes": Case(BASE + "ADD {url} /probe\n", ("v1", "v2"), setup=_serve("body")),
    "add url file name": Case(BASE + "ADD {url} /probe/\n", ("a.txt", "b.txt"), setup=_serve("name")),
    "add url last-modified": Case(BASE + "ADD {url} /probe\n",
                                  ("Mon, 02 Jan 2006 15:04:05 GMT", "Tue, 03 Jan 2006 15:04:05 GMT"),
                                  setup=_serve("modified"), mtime=True),
    "add --unpack": Case(BASE + "ADD {v} a.tar /probe/\n", ("--unpack=true", "--unpack=false"),
                         {"a.tar": _tar()}),
    # -- RUN flags
    "run --mount": Case(BASE + "RUN {v} ls -a /mnt > /probe || true\n", ("", "--mount=target=/mnt"),
                        {"f": "x"}),
    "run command": Case(BASE + "RUN echo {v} > /probe\n", ("one", "two")),
    "run heredoc script": Case(BASE + "RUN <<EOF\necho {v} > /probe\nEOF\n", ("one", "two"),
                               step="RUN <<EOF"),
    "run heredoc script with #!": Case(BASE + "RUN <<EOF\n#!/bin/sh\necho {v} > /probe\nEOF\n",
                                       ("one", "two"), step="RUN <<EOF"),
    "dockerignore": Case(BASE + "COPY . /probe\n", (".dockerignore\na", ".dockerignore\nb"),
                         {"a": "a", "b": "b"}, setup=_write(".dockerignore")),
    "run --network": Case(BASE + "RUN --network={v} cat /proc/net/dev > /probe\n", ("default", "none")),
    "run --security": Case(BASE + "RUN --security={v} grep -E '^(Seccomp|CapEff):' /proc/self/status "
                                  "> /probe\n", ("sandbox", "insecure"),
                           options=lambda ctx, v: {"allow": frozenset({"security.insecure"})}),
    "run --device": Case(BASE + "RUN --device={v} true > /probe\n", ("vendor.com/dev=a", "vendor.com/dev=b"),
                         same="a device that is not required and not there is left out"),
    # -- RUN --mount options, one per MountSpec field
    "mount type": Case(BASE + "RUN --mount=type={v},target=/m ls -a /m > /probe\n", ("bind", "tmpfs"),
                       {"f": "x"}),
    "mount from_": Case(TWO_STAGES + "RUN --mount=from={v},target=/m cat /m/f > /probe\n", ("a", "b")),
    "mount from_ content": Case(BASE + "RUN echo {v} > /f\nFROM busybox:local\n"
                                       "RUN --mount=from=0,target=/m cat /m/f > /probe\n", ("1", "2")),
    "mount from_ content (cache seed)": Case(BASE + "RUN mkdir /d && echo {v} > /d/f\nFROM busybox:local\n"
                                                    "RUN --mount=type=cache,from=0,source=/d,target=/c "
                                                    "cat /c/f > /probe\n", ("1", "2")),
    "mount from_ an image": Case(BASE + "RUN --mount=from=ck-base:1,target=/m cat /m/b > /probe\n",
                                 ("1", "2"), setup=_base_image),
    "mount source": Case(BASE + "RUN --mount=source={v},target=/m cat /m/f > /probe\n", ("d1", "d2"),
                         {"d1/f": "1", "d2/f": "2"}),
    "mount source content": Case(BASE + "RUN --mount=source=d,target=/m cat /m/f > /probe\n", ("1", "2"),
                                 {"d/f": ""}, setup=_write("d/f")),
    "mount target": Case(BASE + "RUN --mount=type=tmpfs,target={v} ls -d /m1 /m2 > /probe || true\n",
                         ("/m1", "/m2")),
    "mount readonly": Case(BASE + "RUN --mount=type=bind,target=/m,{v} touch /m/x && echo rw > /probe "
                                  "|| echo ro > /probe\n", ("rw", "ro")),
    # BuildKit (584ec4008) leaves an explicit cache id and sharing out of its key; dockyard keys them:
    # another cache may hold other content, so a miss is never a wrong result.
    "mount cache_id": Case(BASE + "RUN --mount=type=cache,id=a,target=/c echo seeded > /c/f\n"
                                  "RUN --mount=type=cache,id={v},target=/c cat /c/f > /probe || true\n",
                           ("a", "b")),
    "mount cache_sharing": Case(BASE + "RUN --mount=type=cache,target=/c,sharing={v} ls /c > /probe\n",
                                ("shared", "locked"),
                                same="sharing decides how parallel builds share the cache, not its content"),
    "mount required": Case(BASE + "RUN --mount=type=secret,id=s,required={v} cat /run/secrets/s > /probe\n",
                           ("false", "true"), options=lambda ctx, v: {"secrets": SECRET},
                           same="required only decides whether a missing secret fails the build"),
    "mount size_limit": Case(BASE + "RUN --mount=type=tmpfs,target=/t,size={v} df -k /t | tail -n 1 "
                                    "| awk '{print $2}' > /probe\n", ("1m", "2m")),
    "mount mode": Case(BASE + "RUN --mount=type=secret,id=s,mode={v} stat -c %a /run/secrets/s > /probe\n",
                       ("0400", "0444"), options=lambda ctx, v: {"secrets": SECRET}),
    "mount uid": Case(BASE + "RUN --mount=type=secret,id=s,uid={v} stat -c %u /run/secrets/s > /probe\n",
                      ("1", "2"), options=lambda ctx, v: {"secrets": SECRET}),
    "mount gid": Case(BASE + "RUN --mount=type=secret,id=s,gid={v} stat -c %g /run/secrets/s > /probe\n",
                      ("1", "2"), options=lambda ctx, v: {"secrets": SECRET}),
    "mount env": Case(BASE + "RUN --mount=type=secret,id=s,env={v} echo \"A=$A B=$B\" > /probe\n",
                      ("A", "B"), options=lambda ctx, v: {"secrets": SECRET}),
    # -- the state a step inherits
    "build arg in use": Case(BASE + "ARG V\nRUN echo $V > /probe\n", ("1", "2"),
                             options=lambda ctx, v: {"build_args": {"V": v}}),
    "env": Case(BASE + "ENV V={v}\nRUN echo $V > /probe\n", ("1", "2")),
    "user": Case(BASE + "RUN mkdir -m 777 /out\nUSER {v}\nRUN id -u > /out/probe\n", ("1", "2")),
    "workdir": Case(BASE + "WORKDIR {v}\nRUN pwd > /probe\n", ("/a", "/b")),
    "shell": Case(BASE + "SHELL [\"{v}\", \"-c\"]\nRUN echo $0 > /probe\n", ("/bin/sh", "/bin/ash")),
    "platform": Case("FROM scratch\nCOPY f /probe\n", ("linux/amd64", "linux/arm64"), {"f": "x"},
                     options=lambda ctx, v: {"platform": v}),
    "from --platform": Case("FROM --platform={v} scratch\nCOPY f /probe\n", ("linux/amd64", "linux/arm64"),
                            {"f": "x"}),
    "source date epoch": Case(BASE + "RUN touch /probe\n", ("1000", "2000"), mtime=True,
                              options=lambda ctx, v: {"source_date_epoch": int(v)}),
    "base digest": Case("FROM ck-base:1\nRUN cat /b > /probe\n", ("1", "2"), setup=_base_image),
    # -- HEALTHCHECK flags (a config step: the RUN after it shows its key)
    **{f"healthcheck --{flag}": Case(BASE + f"HEALTHCHECK --{flag}={{v}} CMD true\nRUN true > /probe\n",
                                     values)
       for flag, values in (("interval", ("30s", "31s")), ("timeout", ("30s", "31s")),
                            ("start-period", ("1s", "2s")), ("start-interval", ("1s", "2s")),
                            ("retries", ("3", "4")))},
}

# Valid arguments for each instruction, so that parsing reaches its flags.
SAMPLE_ARGS = {
    "add": "a b", "arg": "A", "cmd": "true", "copy": "a b", "entrypoint": "true", "env": "A=b",
    "expose": "80", "from": "img", "healthcheck": "CMD true", "label": "a=b", "maintainer": "me",
    "onbuild": "RUN true", "run": "true", "shell": '["sh", "-c"]', "stopsignal": "TERM", "user": "u",
    "volume": "/v", "workdir": "/w",
}

# Each --mount key, and a (without, with) pair of mount values that shows which field it sets.
MOUNT_KEY_SAMPLES = {
    "type": ("target=/t", "type=tmpfs,target=/t"),
    "from": ("target=/t", "from=x,target=/t"),
    "source": ("target=/t", "source=/s,target=/t"),
    "src": ("target=/t", "src=/s,target=/t"),
    "target": ("target=/t", "target=/u"),
    "dst": ("target=/t", "dst=/u"),
    "destination": ("target=/t", "destination=/u"),
    "readonly": ("target=/t", "target=/t,readonly=false"),
    "ro": ("type=cache,target=/t", "type=cache,target=/t,ro"),
    "rw": ("target=/t", "target=/t,rw"),
    "readwrite": ("target=/t", "target=/t,readwrite"),
    "id": ("type=cache,target=/t", "type=cache,target=/t,id=x"),
    "sharing": ("type=cache,target=/t", "type=cache,target=/t,sharing=locked"),
    "required": ("type=secret,id=s", "type=secret,id=s,required"),
    "size": ("type=tmpfs,target=/t", "type=tmpfs,target=/t,size=1m"),
    "mode": ("type=secret,id=s", "type=secret,id=s,mode=0444"),
    "uid": ("type=secret,id=s", "type=secret,id=s,uid=1"),
    "gid": ("type=secret,id=s", "type=secret,id=s,gid=1"),
    "env": ("type=secret,id=s", "type=secret,id=s,env=E"),
}


def declared_flags(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """``"<instruction> --<flag>"`` for every flag an instruction declares."""
    seen: set[str] = set()
    real_parse = BFlags.parse
    current = [""]

    def recording(self: BFlags) -> None:
        seen.update(f"{current[0]} --{name}" for name in self.flags)
        real_parse(self)

    monkeypatch.setattr(BFlags, "parse", recording)
    for name in INSTRUCTIONS:
        current[0] = name
        node = parse(f"{name.upper()} --zz-undeclared {SAMPLE_ARGS[name]}\n").children[0]
        # The undeclared flag is refused only once the instruction has declared its own.
        with pytest.raises(DockerfileError, match="unknown flag: --zz-undeclared"):
            parse_instruction(node)
    return seen


def mount_keys() -> set[str]:
    """The keys the ``--mount`` parser accepts (its table for "did you mean")."""
    module = sys.modules[parse_mount.__module__]
    table = getattr(module, "MOUNT_KEYS", None) or module._MOUNT_KEYS
    return set(table)


def test_every_instruction_flag_has_a_case(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(SAMPLE_ARGS) == set(INSTRUCTIONS)
    flags = declared_flags(monkeypatch)
    assert {"copy --chmod", "run --mount", "add --checksum"} <= flags  # the recording works
    missing = sorted(flags - set(CASES))
    assert not missing, f"flags without a cache-key case: {missing}"
    stale = sorted(k for k in CASES if " --" in k and " ".join(k.split()[:2]) not in flags)
    assert not stale, f"cases for flags the parser does not declare: {stale}"


def test_every_mount_option_has_a_case() -> None:
    assert mount_keys() == set(MOUNT_KEY_SAMPLES)
    field_names = {f.name for f in record.fields(MountSpec)}
    for key, (without, with_) in MOUNT_KEY_SAMPLES.items():
        before, after = record.asdict(parse_mount(without)), record.asdict(parse_mount(with_))
        changed = {name for name in field_names if before[name] != after[name]}
        assert changed, f"--mount {key}: the sample sets no field"
        assert changed <= field_names
    missing = sorted(name for name in field_names if f"mount {name}" not in CASES)
    assert not missing, f"MountSpec fields without a cache-key case: {missing}"


# -- the builds -----------------------------------------------------------------------------------


class _Served(http.server.BaseHTTPRequestHandler):
    body = SERVED
    headers: Mapping[str, str] = {}  # type: ignore[assignment]

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        for name, value in type(self).headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Served)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/served.txt"
    server.shutdown()
    server.server_close()


def probe_status(builds: Builds, step: str = "probe") -> str:
    found = {title: status for title, status in builds.statuses().items() if step in title}
    assert len(found) == 1, builds.statuses()
    return next(iter(found.values()))


def _tree(path: Path, mtime: bool = False) -> list[tuple[str, ...]]:
    """Every entry under ``path``: name, mode, owner, content or link target (and mtime)."""
    out: list[tuple[str, ...]] = []
    if not os.path.lexists(path):
        return out
    for entry in [path, *sorted(path.rglob("*"))] if path.is_dir() and not path.is_symlink() else [path]:
        st = entry.lstat()
        if entry.is_symlink():
            body = "-> " + os.readlink(entry)
        elif entry.is_file():
            body = entry.read_bytes().decode(errors="replace")
        else:
            body = ""
        links = str(st.st_nlink) if entry.is_file() and not entry.is_symlink() else ""
        out.append((str(entry.relative_to(path.parent)), f"{st.st_mode:o}", f"{st.st_uid}:{st.st_gid}", body,
                    links, str(st.st_mtime_ns) if mtime else ""))
    return out


def observe(builds: Builds, mtime: bool = False) -> tuple[object, ...]:
    """What a case may change: the probe files and the image config."""
    root = builds.rootfs(TAG)
    config = builds.client.image_config(TAG)
    return _tree(root / "probe", mtime), _tree(root / "out", mtime), config.platform, config.config


def run_case(builds: Builds, case: Case, url: str) -> None:
    ctx = builds.context("# unused: each build gets its Dockerfile as text\n", dict(case.files))
    _Served.body, _Served.headers = SERVED, {}
    seen = []
    for value in case.values:
        if case.setup is not None:
            case.setup(builds, ctx, value)
        options = case.options(ctx, value) if case.options is not None else {}
        text = case.dockerfile.replace("{v}", value).replace("{url}", url)
        builds.build(ctx, tags=[TAG], dockerfile_text=text, **options)
        seen.append((probe_status(builds, case.step), observe(builds, case.mtime)))
    (first, before), (second, after) = seen
    assert first == "done"
    assert second == "done", f"only {case.values[0]!r} -> {case.values[1]!r} changed, and the step was cached"
    if case.same:
        assert after == before, case.same
    else:
        assert after != before, "the step ran again but made the same image"
    builds.build(ctx, tags=[TAG], dockerfile_text=text, **options)
    assert probe_status(builds, case.step) == "cached", "the key changes on every build"


@pytest.mark.parametrize("name", sorted(CASES))
def test_changed_attribute_misses_the_cache(builds: Builds, url: str, name: str) -> None:
    run_case(builds, CASES[name], url)


# -- negative controls: what is not in a key ------------------------------------------------------


def test_what_is_not_in_the_key_is_a_hit(builds: Builds) -> None:
    ctx = builds.context(BASE + "ARG USED\nCOPY f /probe\n"
                                "RUN --mount=type=secret,id=s cat /run/secrets/s > /dev/null "
                                "&& echo $USED > /out\n",
                         {"f": "x", "unrelated": "1"})
    builds.build(ctx, tags=[TAG], build_args={"USED": "u"}, secrets={"s": b"one"})
    assert probe_status(builds) == "done"
    os.utime(ctx / "f", (1, 1))                   # mtime only
    os.chmod(ctx / "f", os.stat(ctx / "f").st_mode)  # ctime only
    (ctx / "unrelated").write_text("2")          # a file no step reads
    # A secret's value is never in a key (as BuildKit: it must not leak into cache records).
    result = builds.build(ctx, tags=[TAG], build_args={"USED": "u", "NOBODY_DECLARES": "x"},
                          secrets={"s": b"two"})
    assert probe_status(builds) == "cached"
    assert result.cached == result.steps
    assert any("NOBODY_DECLARES" in w for w in result.warnings)
