"""The context hashed in a child process beside the build's start-up (``builder.prehash``).

Each case runs a build in a fresh interpreter (a test runner's threads would keep the fork from
happening, as they should) with ``LocalContext.walk_sum`` counted in the build's own process: the
child's calls are in the child's memory, so the count says whether the build hashed the context
itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = r"""
import json, os, sys, threading
from dockyard.builder import context, prehash
from dockyard.builder.options import BuildOptions
from dockyard.client import Client

calls = []
real = context.LocalContext.walk_sum
def counted(self, patterns, follow, *, flush=True, collect=False):
    calls.append(list(patterns))
    return real(self, patterns, follow, flush=flush, collect=collect)
context.LocalContext.walk_sum = counted
walks = []  # file_digests walking the context again for a cache record's explanation data
real_files = context.LocalContext._files
def files_counted(self, rel, host):
    walks.append(rel)
    return real_files(self, rel, host)
context.LocalContext._files = files_counted

mode = sys.argv[3]
if mode == "one-cpu":
    os.sched_getaffinity = lambda pid: {0}
elif mode == "thread":
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
elif mode == "few-kept":  # cache records keep the digests of at most 3 files
    from dockyard.builder import engine
    engine.MAX_EXPLAINED_FILES = prehash.MAX_EXPLAINED_FILES = 3
elif mode == "child-killed":
    prehash._send_checksums = lambda fd, root, options: os.kill(os.getpid(), 9)
elif mode == "child-lies":  # a child whose answer is not the build's: proves the answer is used
    def lie(fd, root, options):
        body = __import__("marshal").dumps((tuple(sys.argv[4].split(",")), "sha256:" + "0" * 64, None))
        os.write(fd, len(body).to_bytes(4, "big") + body)
    prehash._send_checksums = lie

out = {"error": ""}
with Client(sys.argv[1], fsync=False) as client:
    try:
        image = client.build(BuildOptions(context_dir=sys.argv[2], tags=["t:1"])).image_id
        out["layers"] = list(client.store.meta.get_image(image).diff_ids)  # (the ID has the time in it)
    except Exception as exc:
        out["error"] = str(exc)
out["calls"] = calls
out["walks"] = walks
with Client(sys.argv[1], fsync=False) as client:  # what each COPY's record keeps, to explain a miss
    out["explained"] = sorted(json.dumps(json.loads(r.data)["inputs"], sort_keys=True)
                              for r in client.store.meta.cache_records() if r.data)
try:
    os.waitpid(-1, os.WNOHANG)
    out["children_left"] = True
except ChildProcessError:
    out["children_left"] = False
print(json.dumps(out))
"""


def build(tmp_path: Path, context: Path, mode: str, *extra: str) -> dict[str, object]:
    p = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / f"store-{mode}"), str(context), mode,
                        *extra], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src" / "pkg").mkdir(parents=True)
    for i in range(50):
        (ctx / "src" / "pkg" / f"m{i}.py").write_text(f"x = {i}\n")
    (ctx / "req.txt").write_text("one\n")
    (ctx / "secret.env").write_text("no\n")
    (ctx / ".dockerignore").write_text("secret.env\n")
    (ctx / "Dockerfile").write_text("FROM scratch AS base\nCOPY req.txt /\n"
                                    "FROM base\nCOPY . /app\nCOPY src/pkg /pkg\n")
    return ctx


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the child runs only beside a second CPU")
def test_the_build_takes_the_childs_checksums_and_makes_the_same_image(tmp_path: Path, context: Path) -> None:
    beside = build(tmp_path, context, "fork")
    alone = build(tmp_path, context, "one-cpu")
    assert beside["error"] == alone["error"] == ""
    assert beside["calls"] == [], "the build hashed the context itself"
    # The child sent each COPY's file digests too: the build did not walk the context for them.
    assert beside["walks"] == [] and alone["walks"] == []
    assert beside["explained"] == alone["explained"] and '"src/pkg/m7.py"' in "".join(alone["explained"])
    assert sorted(alone["calls"]) == [["."], ["req.txt"], ["src/pkg"]]  # type: ignore[type-var]
    assert beside["layers"] == alone["layers"] and len(alone["layers"]) == 3  # type: ignore[arg-type]
    assert beside["children_left"] is alone["children_left"] is False


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the child runs only beside a second CPU")
def test_more_files_than_a_record_keeps_are_neither_sent_nor_walked_again(tmp_path: Path,
                                                                           context: Path) -> None:
    got = build(tmp_path, context, "few-kept")
    assert got["error"] == "" and got["calls"] == [] and got["walks"] == []
    # The one-file COPY keeps its digest; the two of 50-odd files keep none.
    records = [json.loads(r) for r in got["explained"]]  # type: ignore[union-attr]
    kept = [r.get("files", {}) for r in records if r["definition"][0] == "copy"]
    assert sorted(len(files) for files in kept) == [0, 0, 1]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the child runs only beside a second CPU")
def test_the_childs_answer_is_what_the_cache_key_uses(tmp_path: Path, context: Path) -> None:
    assert build(tmp_path, context, "fork")["error"] == ""
    lied = build(tmp_path, context, "child-lies", ".")
    assert lied["error"] == ""
    assert ["."] not in lied["calls"] and ["req.txt"] in lied["calls"]  # type: ignore[operator]
    from dockyard.client import Client

    with Client(tmp_path / "store-child-lies") as liar, Client(tmp_path / "store-fork") as straight:
        keys_lied = {r.key for r in liar.store.meta.cache_records()}
        keys_straight = {r.key for r in straight.store.meta.cache_records()}
    assert keys_lied != keys_straight


@pytest.mark.parametrize("mode", ["thread", "child-killed"])
def test_without_a_child_the_build_hashes_the_context_itself(tmp_path: Path, context: Path,
                                                             mode: str) -> None:
    reference = build(tmp_path, context, "one-cpu")
    got = build(tmp_path, context, mode)
    assert got["error"] == ""
    assert sorted(got["calls"]) == [["."], ["req.txt"], ["src/pkg"]]  # type: ignore[type-var]
    assert got["layers"] == reference["layers"]
    assert got["children_left"] is False


def test_a_build_that_fails_early_leaves_no_child(tmp_path: Path, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nCOPY --nosuchflag . /\n")
    got = build(tmp_path, context, "fork")
    assert got["error"] and got["calls"] == []
    assert got["children_left"] is False
