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
