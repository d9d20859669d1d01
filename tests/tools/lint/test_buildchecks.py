"""BuildKit's build checks: names, messages and lines as ``docker build --check``; ``# check=`` directives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.tools.lint import CHECKS, LintConfig, LintInput, build_checks, lint_many, render
from dockyard.tools.lint.buildchecks import parse_check_options


def _found(text: str, **kw: object) -> list[tuple[int, str, str]]:
    return [(f.line, f.code, f.message) for f in build_checks(text, **kw).findings]  # type: ignore[arg-type]


CASES: list[tuple[str, str, list[tuple[int, str]]]] = [
    ("StageNameCasing", "FROM scratch AS Build\n", [(1, "Stage name 'Build' should be lowercase")]),
    ("FromAsCasing", "FROM scratch as build\n", [(1, "'as' and 'FROM' keywords' casing do not match")]),
    ("ConsistentInstructionCasing", "FROM scratch\nCOPY a /a\nworkdir /x\n",
     [(3, "Command 'workdir' should match the case of the command majority (uppercase)")]),
    ("DuplicateStageName", "FROM scratch AS a\nFROM scratch AS A\n",
     [(2, 'Duplicate stage name "a", stage names should be unique')]),
    ("ReservedStageName", "FROM scratch AS scratch\n",
     [(1, 'Stage name should not use the same name as reserved stage "scratch"')]),
    ("JSONArgsRecommended", "FROM scratch\nENTRYPOINT run\n",
     [(2, "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals")]),
    ("MaintainerDeprecated", "FROM scratch\nMAINTAINER me\n",
     [(2, "Maintainer instruction is deprecated in favor of using label")]),
    ("UndefinedArgInFrom", "ARG VERSION=1\nFROM alpine:$VERSON\n",
     [(2, "FROM argument 'VERSON' is not declared (did you mean VERSION?)")]),
    ("WorkdirRelativePath", "FROM scratch\nWORKDIR app\nWORKDIR sub\nFROM windows AS w\nWORKDIR C:/app\n",
     [(2, 'Relative workdir "app" can have unexpected results if the base image changes')]),
    ("UndefinedVar", "FROM scratch\nARG MODE\nENV HOME_DIR=/h\nCOPY $HOME_DIRR/a $MODE/b\n",
     [(4, "Usage of undefined variable '$HOME_DIRR' (did you mean $HOME_DIR?)")]),
    ("MultipleInstructionsDisallowed", "FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n",
     [(2, "Multiple CMD instructions should not be used in the same stage because only the last one will "
          "be used")]),
    ("LegacyKeyValueFormat", "FROM scratch\nENV A 1\n",
     [(2, '"ENV key=value" should be used instead of legacy "ENV key value" format')]),
    ("SecretsUsedInArgOrEnv", "FROM scratch\nARG GITHUB_TOKEN\nENV PUBLIC_KEY=x DB_PASSWORD=y\n",
     [(2, 'Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")'),
      (3, 'Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")')]),
    ("InvalidDefaultArgInFrom", "ARG TAG\nFROM busybox:$TAG\n",
     [(2, "Default value for ARG busybox:$TAG results in empty or invalid base image name")]),
    ("FromPlatformFlagConstDisallowed", "FROM --platform=linux/arm64 alpine:3 AS build\n",
     [(1, 'FROM --platform flag should not use constant value "linux/arm64"')]),
    ("RedundantTargetPlatform", "FROM --platform=$TARGETPLATFORM alpine:3\n",
     [(1, "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default "
          "behavior")]),
    ("ExposeProtoCasing", "FROM scratch\nEXPOSE 53/UDP 80\n",
     [(2, "Defined protocol '53/UDP' in EXPOSE instruction should be lowercase")]),
    ("ExposeInvalidFormat", "FROM scratch\nEXPOSE 8080:80\n",
     [(2, "EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80'")]),
    ("InvalidDefinitionDescription", "# check=experimental=InvalidDefinitionDescription\n"
     "FROM scratch\n# the port\nARG PORT=80\n# OTHER is fine\nARG OTHER\n# not a description\n#\nARG LAST\n",
     [(4, "Comment for ARG should follow the format: `# PORT <description>`")]),
    # BuildKit places it on the instruction's last line
    ("NoEmptyContinuation", "FROM scratch\nCOPY a \\\n\n  /a\n", [(4, "Empty continuation line")]),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_check_with_buildkits_message(name: str, text: str, expected: list[tuple[int, str]]) -> None:
    assert [(line, msg) for line, code, msg in _found(text) if code == name] == expected
    assert name in CHECKS
    # the same check is silent on the corrected form, or when skipped
    assert name not in {code for _, code, _ in _found(f"# check=skip={name}\n" + text)}


def test_clean_dockerfiles_have_no_warnings() -> None:
    text = (
        "ARG BASE=alpine:3.19\nFROM $BASE AS build\nWORKDIR /src\nENV APP_VERSION=1 PATH=/x:$PATH\n"
        "COPY --chown=1000 . .\nEXPOSE 80/tcp 53/udp\nFROM --platform=$BUILDPLATFORM golang:1 AS tool-amd64\n"
        'FROM build\nSHELL ["/bin/sh", "-c"]\nCMD run\n'
    )
    assert _found(text) == []


def test_undefined_var_needs_a_known_environment() -> None:
    text = "FROM node:20\nWORKDIR $NODE_HOME\n"
    assert _found(text) == []  # node's image may define it: unknown without the image
    found = _found(text, base_env=lambda ref: ["PATH=/bin", "NODE_VERSION=20"] if ref == "node:20" else None)
    assert found == [(2, "UndefinedVar", "Usage of undefined variable '$NODE_HOME'")]
    assert _found(text, base_env=lambda ref: ["NODE_HOME=/n"]) == []


def test_check_directives() -> None:
    text = "# check=skip=StageNameCasing,FromAsCasing;error=true\nFROM scratch as Build\nCMD x\n"
    result = build_checks(text)
    assert [f.code for f in result.findings] == ["JSONArgsRecommended"] and result.config.error
    assert build_checks("# check=skip=all\nFROM scratch as Build\nCMD x\n").findings == []
    # a check comment just above an instruction applies to that instruction only
    text = "FROM scratch\n# check=skip=JSONArgsRecommended\nCMD x\nENTRYPOINT y\n"
    assert [(f.line, f.code) for f in build_checks(text).findings] == [(4, "JSONArgsRecommended")]
    assert parse_check_options("skip = A, B ; error = 1").skip == {"A", "B"}
    with pytest.raises(InvalidArgument, match='invalid check option "bogus"'):
        parse_check_options("bogus=1")
    with pytest.raises(InvalidArgument, match=r"Dockerfile:1: invalid check option \"skip\""):
        build_checks("# check=skip\nFROM scratch\n")


def test_copy_ignored_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.pem\nbuild/\n")
    text = "FROM scratch\nCOPY key.pem app.py /\nADD build/out.bin /x\nCOPY --from=other key.pem /\n"
    assert _found(text, context_dir=tmp_path) == [
        (2, "CopyIgnoredFile", 'Attempting to Copy file "key.pem" that is excluded by .dockerignore'),
        (3, "CopyIgnoredFile", 'Attempting to Add file "build/out.bin" that is excluded by .dockerignore'),
    ]
    (tmp_path / ".dockerignore").write_text("*.pem\n!public.pem\n")
    assert _found(text, context_dir=tmp_path) == []  # exclusions: not judged, as in BuildKit


def test_lint_reports_checks_by_name_in_every_format() -> None:
    results, _ = lint_many([LintInput("FROM scratch AS Build\nCMD x\n")], advice=False, shellcheck=False,
                           buildkit=True)
    codes = [f.code for f in results[0]]
    assert "StageNameCasing" in codes and "JSONArgsRecommended" in codes
    sarif = render(results[0], "sarif")
    assert "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/" in sarif
    ignored, _ = lint_many([LintInput("# hadolint ignore=StageNameCasing\nFROM scratch AS Build\n")],
                           advice=False, shellcheck=False, buildkit=True)
    assert ignored == [[]]
    config = LintConfig(ignored={"JSONARGSRECOMMENDED"}, overrides={"STAGENAMECASING": "error"})
    results, _ = lint_many([LintInput("FROM scratch AS Build\nCMD x\n")], config, advice=False,
                           shellcheck=False, buildkit=True)
    assert [(f.code, f.severity) for f in results[0] if f.code in CHECKS] == [("StageNameCasing", "error")]


@pytest.mark.slow
def test_build_check_command(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch AS Build\nCOPY a /a\nCMD run\n")
    (tmp_path / "a").write_text("a")
    root = str(tmp_path / "root")

    def build(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "dockyard", "--root", root, "build", "--check", *args, str(tmp_path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    proc = build()
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "Check complete, 2 warnings have been found!"
    assert lines[2:5] == [
        "StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
        "Stage names should be lowercase",
        "Dockerfile:1",
    ]
    assert "   3 | >>> CMD run" in lines
    proc = build("--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=StageNameCasing,JSONArgsRecommended")
    assert (proc.returncode, proc.stdout) == (0, "Check complete, no warnings found.\n")
    (tmp_path / "Dockerfile").write_text("# check=error=true\nFROM scratch AS Build\n")
    proc = build()
    assert proc.returncode == 1
    assert proc.stderr.endswith("ERROR: lint violation found for rules: StageNameCasing\n")
