"""Realistic Dockerfiles (shapes of official images, written for these tests) parse, type and expand."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.dockerfile import (
    AddInstruction,
    CopyInstruction,
    PatternMatcher,
    RunInstruction,
    ShellInstruction,
    parse,
    parse_stages,
    read_ignore_file,
)
from dockyard.dockerfile.stages import Platform

FIXTURES = Path(__file__).parent / "fixtures"
FILES = sorted(FIXTURES.glob("*.Dockerfile"))
ARM64 = Platform.parse("linux/arm64")
AMD64 = Platform.parse("linux/amd64")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_parses_types_and_expands(path: Path) -> None:
    result = parse(path.read_bytes(), filename=path.name)
    assert not result.warnings
    plan = parse_stages(result, target_platform=ARM64, build_platform=AMD64)
    for stage in plan.stages:
        env = plan.stage_env(stage, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        for instr in stage.instructions:
            out = env.apply(instr)
            assert out.original and out.start_line >= 1
    assert result.dump().count("\n") + 1 == len(result.children)


def test_go_multistage_details() -> None:
    res = parse((FIXTURES / "go-multistage.Dockerfile").read_text())
    assert [(d.name, d.value) for d in res.directives] == [("syntax", "docker/dockerfile:1.7"),
                                                         ("check", "skip=JSONArgsRecommended")]
    plan = parse_stages(res, {"VERSION": "1.0"}, target_platform=ARM64, build_platform=AMD64)
    assert [s.name for s in plan.stages] == ["build", "test", "final"]
    assert plan.stages[0].base_name == "golang:1.22-alpine3.19"
    assert plan.stages[0].platform == "linux/amd64"
    assert plan.stages[1].base_stage == 0
    build = plan.stages[0]
    env = plan.stage_env(build)
    runs = [env.apply(i) for i in build.instructions]
    go_build = runs[-1]
    assert isinstance(go_build, RunInstruction)
    assert [m.type for m in go_build.mounts] == ["cache", "cache", "bind"]
    assert go_build.mounts[1].cache_sharing == "locked"
    assert env.run_env()["TARGETARCH"] == "arm64" and env.run_env()["VERSION"] == "1.0"
    final = plan.stages[2]
    fenv = plan.stage_env(final)
    out = [fenv.apply(i) for i in final.instructions]
    copies = [o for o in out if isinstance(o, CopyInstruction)]
    assert copies[0].contents[0].data == "listen: :8080\nlog_level: info\n"
    assert copies[1].contents[0].data == "#!/bin/sh\nexec wget -qO- http://127.0.0.1:8080/healthz\n"
    assert copies[1].contents[0].expand is False
    assert (copies[2].from_, copies[2].chmod) == ("build", "0755")


def test_windows_escape_details() -> None:
    res = parse((FIXTURES / "windows-escape.Dockerfile").read_text())
    assert res.escape_token == "`"
    plan = parse_stages(res)
    instrs = plan.stages[0].instructions
    shell = instrs[0]
    assert isinstance(shell, ShellInstruction) and shell.shell[0] == "powershell"
    env = plan.stage_env(plan.stages[0])
    copy = [env.apply(i) for i in instrs][3]
    assert isinstance(copy, CopyInstruction) and copy.dest == "C:\\app\\"


def test_features_details() -> None:
    res = parse((FIXTURES / "features.Dockerfile").read_text())
    plan = parse_stages(res)
    second = plan.stages[1]
    assert second.base_stage == 0
    adds = [i for i in second.instructions if isinstance(i, AddInstruction)]
    assert adds[0].checksum.startswith("sha256:") and adds[1].keep_git_dir and adds[2].unpack is False
    copy = next(i for i in second.instructions if isinstance(i, CopyInstruction))
    assert copy.parents and copy.excludes == ["*.md", "**/testdata"]
    runs = [i for i in second.instructions if isinstance(i, RunInstruction)]
    assert [m.type for m in runs[0].mounts] == ["secret", "ssh", "tmpfs"] and runs[0].network == "none"
    assert runs[1].security == "insecure" and not runs[1].prepend_shell
    docs = runs[2].files
    # RUN heredocs keep their tabs; the shell (or the builder, for chomp) strips them.
    assert [(f.name, f.data, f.chomp) for f in docs] == [("EOF", "fd three\n", False),
                                                         ("RAW", "\traw $literal\n", True)]


def test_realistic_dockerignore() -> None:
    text = "# comment\n.git\n**/node_modules\n*.md\n!README.md\n/build\ndist/**\n!dist/keep.txt\n"
    pm = PatternMatcher(read_ignore_file(text))
    assert pm.matches(".git/HEAD") and pm.matches("web/node_modules/x/index.js")
    assert pm.matches("CHANGELOG.md") and not pm.matches("README.md") and not pm.matches("docs/guide.md")
    assert pm.matches("build/out.o") and pm.matches("dist/a.js") and not pm.matches("dist/keep.txt")
