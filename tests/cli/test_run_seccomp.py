"""seccomp through the command line: ``dockyard run --security-opt`` and ``RUN [--security=insecure]`` in a
build, each verdict of the syscall probe as Docker's default profile gives it (and as ``docker run``)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.executor.probes import (
    COMPARED,
    DEFAULT_VERDICTS,
    REFUSED_BY_SECCOMP_ONLY,
    docker_probe,
    probe_tar,
    verdicts,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("runs containers: needs root")
    path = Path("/dev/shm") / f"dy-seccomp-{os.getpid()}-{os.urandom(4).hex()}"
    with Client(path) as client:
        client.import_image(io.BytesIO(probe_tar()), names=["probe:local"])
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


def dy(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=120)


def run_probe(root: Path, *security_opt: str) -> dict[str, int]:
    opts = [a for opt in security_opt for a in ("--security-opt", opt)]
    result = dy(root, "run", "--network", "none", *opts, "probe:local", "/probe")
    assert result.returncode == 0, result.stderr
    return verdicts(result.stdout)


def build_probe(root: Path, tmp_path: Path, flags: str, *build_flags: str) -> dict[str, int]:
    ctx = tmp_path / f"ctx{len(flags)}"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f'FROM probe:local\nRUN {flags}["/probe"]\n')
    result = dy(root, "build", "--no-cache", "--progress", "plain", *build_flags, str(ctx))
    assert result.returncode == 0, result.stderr
    return verdicts(result.stderr + result.stdout)


def test_run_applies_the_default_profile_and_security_opt(root: Path, tmp_path: Path) -> None:
    found = run_probe(root)
    assert {k: found[k] for k in DEFAULT_VERDICTS} == DEFAULT_VERDICTS
    assert run_probe(root, "no-new-privileges") == found
    unconfined = run_probe(root, "seccomp=unconfined")
    assert {k: unconfined[k] for k in REFUSED_BY_SECCOMP_ONLY} == dict.fromkeys(REFUSED_BY_SECCOMP_ONLY, 0)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    custom = run_probe(root, f"seccomp={profile}")
    assert (custom["getppid"], custom["unshare-user"], custom["keyctl"]) == (38, 13, 0)


def test_run_step_has_the_default_profile_and_insecure_has_none(root: Path, tmp_path: Path) -> None:
    found = build_probe(root, tmp_path, "")
    assert {k: found[k] for k in DEFAULT_VERDICTS} == DEFAULT_VERDICTS
    insecure = build_probe(root, tmp_path, "--security=insecure ", "--allow", "security.insecure")
    assert {k: insecure[k] for k in REFUSED_BY_SECCOMP_ONLY} == dict.fromkeys(REFUSED_BY_SECCOMP_ONLY, 0)


def test_insecure_run_step_needs_the_entitlement(root: Path, tmp_path: Path) -> None:
    # As BuildKit: a Dockerfile cannot lift its own sandbox; the person running the build grants it.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM probe:local\nRUN --security=insecure ["/probe"]\n')
    result = dy(root, "build", "--no-cache", "--progress", "plain", str(ctx))
    assert result.returncode == 1
    assert "security.insecure is not allowed" in result.stderr
    assert "unshare-user" not in result.stderr + result.stdout  # the probe never ran


@pytest.mark.parametrize(("opt", "message"), [
    ("apparmor=unconfined", 'invalid --security-opt: "apparmor=unconfined"'),
    ("seccomp", 'invalid --security-opt: "seccomp"'),
    ("seccomp=/nonexistent/profile.json",
     "opening seccomp profile (/nonexistent/profile.json) failed: No such file or directory"),
    ("BAD", "seccomp profile {bad}: line 2 column 1: invalid JSON"),
    ("UNKNOWN", "seccomp profile {unknown}: syscalls[0].action: unknown action 'SCMP_ACT_MAYBE'"),
])
def test_bad_security_opt_is_one_line_and_exit_125(root: Path, tmp_path: Path, opt: str,
                                                   message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO"\n"syscalls": []}')
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_MAYBE"}]}))
    opt = {"BAD": f"seccomp={bad}", "UNKNOWN": f"seccomp={unknown}"}.get(opt, opt)
    result = dy(root, "run", "--security-opt", opt, "probe:local", "/probe")
    assert result.returncode == 125
    line = result.stderr.strip()
    expected = message.format(bad=bad, unknown=unknown)
    assert "\n" not in line and line.startswith(f"dockyard: Error: {expected}")
    assert result.stdout == ""


@pytest.mark.docker
def test_verdicts_match_docker_run(root: Path, tmp_path: Path) -> None:
    theirs = docker_probe()
    ours_run, ours_build = run_probe(root), build_probe(root, tmp_path, "")
    assert {k: ours_run[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
    assert {k: ours_build[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
    theirs_unconfined = docker_probe("seccomp=unconfined")
    ours_unconfined = run_probe(root, "seccomp=unconfined")
    assert {k: ours_unconfined[k] for k in COMPARED} == {k: theirs_unconfined[k] for k in COMPARED}
