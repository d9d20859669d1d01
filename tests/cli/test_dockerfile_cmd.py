"""``dockyard dockerfile parse``: dump and JSON output, warnings, errors as one line and an exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTFILES = REPO / "tests" / "data" / "buildkit" / "parser-testfiles" / "testfiles"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dockyard", "dockerfile", *args], input=stdin,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("name", ["escapes", "health", "lk4d4-the-edge-case-generator", "json"])
def test_dump_is_byte_identical(name: str) -> None:
    res = run("parse", "-f", str(TESTFILES / name / "Dockerfile"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == (TESTFILES / name / "result").read_bytes()


def test_json_format(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM alpine AS base\nCOPY --chmod=644 <<EOF /etc/motd\nhi $USER\nEOF\n"
                  'ONBUILD RUN ["make"]\n')
    res = run("parse", "--format", "json", "-f", str(df))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [o["cmd"] for o in out] == ["from", "copy", "onbuild"]
    copy = out[1]
    assert copy["flags"] == ["--chmod=644"]
    assert copy["value"] == ["<<EOF", "/etc/motd"]
    assert (copy["start_line"], copy["end_line"]) == (2, 4)
    assert copy["heredocs"] == [{"name": "EOF", "content": "hi $USER\n", "file_descriptor": 0,
                                 "expand": True, "chomp": False}]
    assert out[2]["sub_cmd"] == "run" and out[2]["json"] is True and out[2]["value"] == ["make"]
    assert set(out[0]) == {"cmd", "sub_cmd", "json", "original", "start_line", "end_line", "flags", "value",
                           "heredocs"}


def test_stdin_and_warnings() -> None:
    res = run("parse", "-f", "-", stdin=b"FROM a\nRUN x \\\n\n  y\n")
    assert res.returncode == 0
    assert res.stdout == b'(from "a")\n(run "x   y")\n'
    assert b"Empty continuation line" in res.stderr


def test_default_file_is_dockerfile_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    res = subprocess.run([sys.executable, "-m", "dockyard", "dockerfile", "parse"], cwd=tmp_path,
                         capture_output=True, timeout=60, check=False)
    assert res.stdout == b'(from "scratch")\n'


def test_errors_are_one_line(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM a\nRUN <<EOF\nnever closed\n")
    res = run("parse", "-f", str(df))
    assert res.returncode == 1
    assert res.stderr.decode().strip() == f"Error: {df}:2: unterminated heredoc"
    missing = run("parse", "-f", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.decode().startswith("Error: ") and b"Traceback" not in missing.stderr


def test_bad_format_is_a_usage_error() -> None:
    res = run("parse", "--format", "yaml", "-f", "-", stdin=b"FROM a\n")
    assert res.returncode == 125


STAGED = (b"ARG GO=1.22\nFROM golang:${GO} AS build\nARG V\nFROM alpine AS tools\n"
          b"FROM scratch AS final\nCOPY --from=build /app /app\n")


def test_stages_resolves_args_and_warns_about_unused_ones() -> None:
    res = run("stages", "-f", "-", "--build-arg", "GO=1.23", "--build-arg", "V=1", "--build-arg", "NOPE=1",
              "--platform", "linux/arm64", stdin=STAGED)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [
        "0\tbuild\tgolang:1.23\t-\t-", "1\ttools\talpine\t-\t-", "2\tfinal\tscratch\t-\t0"]
    assert res.stderr.decode().strip() == "[Warning] One or more build-args [NOPE] were not consumed"


def test_stages_target_keeps_only_what_it_needs() -> None:
    res = run("stages", "-f", "-", "--target", "final", stdin=STAGED)
    assert [line.split("\t")[1] for line in res.stdout.decode().splitlines()] == ["build", "final"]
    missing = run("stages", "-f", "-", "--target", "nope", stdin=STAGED)
    assert missing.returncode == 1 and b'target stage "nope" could not be found' in missing.stderr
