"""Why a step missed the cache (``--explain-cache``, and ``cache miss:`` lines in the build log)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.builder.explain import Candidates, Inputs, explain
from dockyard.client import Client
from dockyard.progress import VertexLog
from tests.builder.conftest import Builds, busybox_tar


def _reasons(builds: Builds, ctx: Path, **kwargs: object) -> dict[str, tuple[str, str]]:
    result = builds.build(ctx, explain_cache=True, **kwargs)
    return {label: (outcome, reason) for label, outcome, reason in result.explanations}


def test_changed_source_files_are_named(builds: Builds) -> None:
    files = {f"src/f{i}.txt": f"{i}\n" for i in range(6)}
    ctx = builds.context("FROM busybox:local\nWORKDIR /w\nCOPY . .\nRUN cat src/* > /all\n", files)
    builds.build(ctx)
    (ctx / "src" / "f1.txt").write_text("changed\n")
    reasons = _reasons(builds, ctx)
    assert reasons["[2/4] WORKDIR /w"] == ("cached", "")
    assert reasons["[3/4] COPY . ."] == ("ran", "source files changed: src/f1.txt (1 changed)")
    assert reasons["[4/4] RUN cat src/* > /all"] == ("ran", "source files changed: src/f1.txt (1 changed)")
    for i in (2, 3, 4, 5):
        (ctx / "src" / f"f{i}.txt").write_text("again\n")
    (ctx / "src" / "new.txt").write_text("new\n")
    reasons = _reasons(builds, ctx)
    assert reasons["[3/4] COPY . ."][1] == (
        "source files changed: src/f2.txt, src/f3.txt, src/f4.txt and 2 more (4 changed, 1 added)")
    # The log says it too, under the step.
    logs = [e.data for e in builds.events if isinstance(e, VertexLog)]
    assert any(b"cache miss: source files changed: src/f2.txt" in d for d in logs), logs


def test_a_copy_of_more_files_than_a_record_keeps_says_its_content_changed(
        builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.builder import engine

    monkeypatch.setattr(engine, "MAX_EXPLAINED_FILES", 4)
    files = {f"src/f{i}.txt": f"{i}\n" for i in range(6)}
    ctx = builds.context("FROM busybox:local\nCOPY . /w\n", files)
    builds.build(ctx)
    (ctx / "src" / "f1.txt").write_text("changed\n")
    assert _reasons(builds, ctx)["[2/2] COPY . /w"] == ("ran", "the copied content changed")


def test_changed_build_argument_is_named(builds: Builds) -> None:
    ctx = builds.context("FROM busybox:local\nARG V=1\nRUN echo $V > /v\n")
    builds.build(ctx)
    reasons = _reasons(builds, ctx, build_args={"V": "2"})
    assert reasons["[2/2] RUN echo $V > /v"] == ("ran", "build argument changed: V=1 -> 2")


def test_moved_base_image_is_named(builds: Builds, client: Client) -> None:
    ctx = builds.context("FROM busybox:local\nRUN echo hi > /hi\n")
    builds.build(ctx)
    old = str(client.resolve("busybox:local"))
    with open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh", "-c"]'], names=["busybox:local"])
    new = str(client.resolve("busybox:local"))
    assert new != old
    reasons = _reasons(builds, ctx)
    assert reasons["[2/2] RUN echo hi > /hi"] == (
        "ran", f"base image busybox:local moved: {old[7:19]} -> {new[7:19]}")


def test_changed_command_and_no_cache(builds: Builds) -> None:
    ctx = builds.context("FROM busybox:local\nRUN echo one > /1\n")
    builds.build(ctx)
    (ctx / "Dockerfile").write_text("FROM busybox:local\nRUN echo two > /2\nRUN echo three > /3\n")
    reasons = _reasons(builds, ctx)
    assert reasons["[2/3] RUN echo two > /2"] == ("ran", "the command changed")
    assert reasons["[3/3] RUN echo three > /3"] == ("ran", "the command changed")  # carried from 2/3
    assert explain(Inputs("sha256:p", ["run"]), Candidates()) == "no cache for this step"
    known = Candidates()
    known.add(Inputs("sha256:0123456789abcdef", ["run", ["x"]]))
    assert explain(Inputs("sha256:p", ["run", ["x"]]), known) == (
        "no cache for this step (nearest: the same step after parent 0123456789ab)")
    assert explain(Inputs("sha256:p", ["run", ["y"]]), known) == "no cache for this step"


@pytest.mark.slow
def test_explain_cache_flag_prints_a_table(client: Client, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox:local\nCOPY a.txt /a\nRUN cat /a > /b\n")
    env = {**os.environ, "DOCKYARD_ROOT": str(client.root)}
    cmd = [sys.executable, "-m", "dockyard", "build", "-q", "--explain-cache", str(tmp_path)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    (tmp_path / "a.txt").write_text("b\n")
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["STEP", "CACHE", "REASON"]
    assert rows[1][:5] == ["[2/3]", "COPY", "a.txt", "/a", "RAN"]
    assert " ".join(rows[1][5:]) == "source files changed: a.txt (1 changed)"
