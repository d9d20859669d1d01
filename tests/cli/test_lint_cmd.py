"""``dockyard lint`` on files, directories and stdin; formats, thresholds, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "lint", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.slow
def test_stdin_tty_and_exit_code() -> None:
    proc = _run("-", stdin="FROM debian\nRUN cd /x\n")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "-:1 DL3006 warning: Always tag the version of an image explicitly",
        "-:2 DL3003 warning: Use WORKDIR to switch to a directory",
        "-:2 SC2164 warning: Use 'cd ... || exit' or 'cd ... || return' in case cd fails.",
    ]
    assert _run("-", "--no-fail", stdin="FROM debian\n").returncode == 0
    assert _run("-", "--failure-threshold", "error", stdin="FROM debian\n").returncode == 0
    assert _run("-", "--ignore", "DL3006", stdin="FROM debian\n").stdout == ""


@pytest.mark.slow
def test_file_directory_json_and_config(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nWORKDIR /a\nCOPY . .\nRUN pip install -r r.txt\n")
    proc = _run(str(tmp_path), "--format", "json")
    found = {(d["line"], d["code"]) for d in json.loads(proc.stdout)}
    assert found == {(4, "DL3042"), (3, "DY101"), (3, "DY102")}
    assert proc.returncode == 1
    (tmp_path / ".hadolint.json").write_text('{"ignored": ["DY101", "DY102", "DL3042"]}')
    proc = _run("-f", str(tmp_path / "Dockerfile"))
    assert (proc.returncode, proc.stdout) == (0, "")


@pytest.mark.slow
def test_errors_are_one_line(tmp_path: Path) -> None:
    proc = _run(str(tmp_path / "missing"))
    assert proc.returncode != 0 and proc.stderr.startswith("Error: Dockerfile not found")
    (tmp_path / "bad.json").write_text("[")
    proc = _run("-c", str(tmp_path / "bad.json"), "-", stdin="FROM a:1\n")
    assert proc.stderr.startswith("Error:") and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_context_option_for_stdin(tmp_path: Path) -> None:
    text = "FROM debian:12\nWORKDIR /a\nCOPY . .\n"
    assert _run("-", "--format", "gnu", stdin=text).stdout == ""  # stdin: no context, no context advice
    proc = _run("--context", str(tmp_path), "--format", "gnu", "-", stdin=text)
    assert proc.stdout.startswith("hadolint:-:3: DY102 warning: No .dockerignore")
    (tmp_path / ".dockerignore").write_text(".git\n")
    assert _run("--context", str(tmp_path), "-", stdin=text).stdout == ""


@pytest.mark.slow
def test_many_paths_directories_and_hadolint_yaml(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Dockerfile").write_text("FROM debian\nRUN cd /x\n")
    (tmp_path / "a" / "web.Dockerfile").write_text("FROM debian:12\nMAINTAINER me\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "Dockerfile").write_text("FROM skipped\n")
    (tmp_path / "single").write_text("FROM alpine\n")
    only = ("--no-advice", "--no-build-checks")
    proc = _run(str(tmp_path), str(tmp_path / "single"), "--format", "gnu", *only, cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        f"hadolint:{tmp_path}/a/Dockerfile:1: DL3006 warning: Always tag the version of an image explicitly",
        f"hadolint:{tmp_path}/a/Dockerfile:2: DL3003 warning: Use WORKDIR to switch to a directory",
        f"hadolint:{tmp_path}/a/Dockerfile:2: SC2164 warning: Use 'cd ... || exit' or 'cd ... || return' "
        "in case cd fails.",
        f"hadolint:{tmp_path}/a/web.Dockerfile:2: DL4000 error: MAINTAINER is deprecated",
        f"hadolint:{tmp_path}/single:1: DL3006 warning: Always tag the version of an image explicitly",
    ]
    assert proc.returncode == 1
    # hadolint's YAML config, found in the current directory: ignored, override, failure-threshold
    (tmp_path / ".hadolint.yaml").write_text(
        "ignored:\n  - DL3003\noverride:\n  error:\n    - SC2164\n  info:\n    - DL3006\n"
        "  style: [DL4000]\nfailure-threshold: error\n"
    )
    proc = _run(str(tmp_path / "a"), str(tmp_path / "single"), *only, cwd=tmp_path)
    assert [line.split(" ", 2)[:2] for line in proc.stdout.splitlines()] == [
        [f"{tmp_path}/a/Dockerfile:1", "DL3006"],
        [f"{tmp_path}/a/Dockerfile:2", "SC2164"],
        [f"{tmp_path}/a/web.Dockerfile:2", "DL4000"],
        [f"{tmp_path}/single:1", "DL3006"],
    ]
    assert "SC2164 error" in proc.stdout and "DL3006 info" in proc.stdout and "DL4000 style" in proc.stdout
    assert proc.returncode == 1  # SC2164 is an error now
    (tmp_path / ".hadolint.yaml").write_text("ignored: [SC2164, DL4000]\nfailure-threshold: error\n")
    assert _run(str(tmp_path / "a"), *only, cwd=tmp_path).returncode == 0
    (tmp_path / ".hadolint.yaml").write_text("ignored: [DL3003\n")
    proc = _run(str(tmp_path / "a"), cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"Error: {tmp_path}/.hadolint.yaml:2:1: not valid YAML")
    (tmp_path / "empty").mkdir()
    proc = _run(str(tmp_path / "empty"))
    assert proc.stderr.startswith("Error: no Dockerfile under")
