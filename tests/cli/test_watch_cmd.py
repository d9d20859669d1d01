"""``dockyard outdated`` and ``dockyard watch`` as users run them, against the registry on :5000."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.builder.options import BuildOptions
from dockyard.client import Client
from dockyard.oci.platform import host
from dockyard.oci.reference import parse_normalized
from dockyard.tools.watch import remote_digest
from tests.builder.conftest import busybox_tar
from tests.peers import require

pytestmark = pytest.mark.registry
REGISTRY = "127.0.0.1:5000"


def _new_root(kind: str) -> Path:
    return Path("/dev/shm") / f"dy-watchcli-{kind}-{os.getpid()}-{os.urandom(4).hex()}"


def _drop(root: Path) -> None:
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def root() -> Iterator[Path]:
    path = _new_root("app")
    yield path
    _drop(path)


@pytest.fixture()
def publisher() -> Iterator[Client]:
    require("registry")
    client = Client(_new_root("pub"), fsync=False)
    with open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield client
    client.close()
    _drop(client.root)


def dy(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                          env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=120)


def _publish(publisher: Client, ref: str, tmp: Path, version: int) -> str:
    if version == 1:
        publisher.tag("busybox:local", ref)
    else:
        ctx = tmp / f"v{version}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox:local\nCOPY v /etc/v\n")
        (ctx / "v").write_text(str(version))
        publisher.build(BuildOptions(context_dir=str(ctx), tags=[ref]))
    return str(publisher.push(ref).digest)


@pytest.mark.slow
def test_outdated_and_watch_once(root: Path, publisher: Client, tmp_path: Path) -> None:
    base = f"{REGISTRY}/dytest/base-{uuid.uuid4().hex[:12]}:1"
    app = f"{REGISTRY}/dytest/app-{uuid.uuid4().hex[:12]}:1"
    d1 = _publish(publisher, base, tmp_path, 1)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM $BASE AS build\nCOPY f /f\n"
                                    "FROM scratch\nCOPY --from=build /f /f\n")

    r = dy(root, "outdated", "--build-arg", f"BASE={base}", str(ctx))
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split() == ["REFERENCE", "PLATFORM", "LOCAL", "REMOTE", "STATUS"]
    assert row.split() == [base, str(host()), "not", "pulled", f"sha256:{d1[7:19]}", "not", "pulled"]

    assert dy(root, "pull", base).returncode == 0
    r = dy(root, "outdated", "--build-arg", f"BASE={base}", "--format", "json", "--exit-code", str(ctx))
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert (doc["status"], doc["localDigest"], doc["remoteDigest"]) == ("up to date", d1, d1)
    assert doc["usedBy"] == ["FROM (stage build)"] and doc["reference"] == base

    (ctx / "f").write_text("f")
    d2 = _publish(publisher, base, tmp_path, 2)
    r = dy(root, "outdated", "--build-arg", f"BASE={base}", "--exit-code", "--no-trunc", str(ctx))
    assert r.returncode == 1 and r.stdout.splitlines()[1].split()[2:] == [d1, d2, "outdated"], r

    r = dy(root, "watch", "--once", "--build-arg", f"BASE={base}", "-t", app, "--push", "--progress", "plain",
           str(ctx))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"base {base} moved: sha256:{d1[7:19]} -> sha256:{d2[7:19]}; rebuilding"
    assert lines[1] == f"pulled {base}: {d2}"
    assert lines[2].startswith("built sha256:") and lines[2].endswith("steps cached)")
    assert f"as {app}" in lines[2]
    assert lines[3].startswith(f"pushed {app}: sha256:") and len(lines) == 4
    assert "exporting to image" in r.stderr  # BuildKit-style progress, on stderr
    with publisher.registry_client() as registry:
        assert remote_digest(registry, parse_normalized(app), host()).digest == lines[3].split(": ")[1]
    r = dy(root, "outdated", "--build-arg", f"BASE={base}", "--exit-code", str(ctx))
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[-3:] == ["up", "to", "date"], r

    # --once with nothing to do says nothing and builds nothing
    r = dy(root, "watch", "--once", "--build-arg", f"BASE={base}", "-t", app, str(ctx))
    assert (r.returncode, r.stdout) == (0, ""), r.stderr


@pytest.mark.slow
def test_bad_input_is_one_line(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    r = dy(root, "outdated", str(ctx))
    assert r.returncode == 1 and r.stderr.startswith("Error: failed to read dockerfile: open ")
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
    (ctx / "Dockerfile").write_text("FROM nosuch.invalid/team/base:1\nFROM scratch\nCOPY --from=0 / /\n")
    r = dy(root, "outdated", "--exit-code", str(ctx))
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1]
    assert "not pulled (cannot reach registry nosuch.invalid: " in row and "Traceback" not in r.stderr
    r = dy(root, "watch", "--interval", "soon", str(ctx))
    assert r.returncode == 125 and 'invalid argument "soon" for "--interval" flag' in r.stderr
    r = dy(root, "watch", "--push", str(ctx))
    assert r.returncode == 125 and "--push needs at least one -t/--tag" in r.stderr
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    r = dy(root, "outdated", str(ctx))
    assert r.returncode == 0 and r.stdout == "" and "no base images to check" in r.stderr
    r = dy(root, "outdated", str(ctx / "Dockerfile"))  # a file for PATH
    assert (r.returncode, r.stderr) == (
        1, f"Error: failed to read dockerfile: open {ctx}/Dockerfile/Dockerfile: not a directory\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY missing /m\n")
    r = dy(root, "watch", "--once", "--progress", "quiet", str(ctx))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    first, failed = r.stdout.splitlines()
    assert first == "no image (untagged) yet; building"
    assert failed.startswith("build failed: ") and "missing" in failed and "still watching" not in failed


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
    raise AssertionError("no output in time")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_watch_stops_cleanly_on_a_signal(root: Path, tmp_path: Path, signum: int) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (ctx / "f").write_text("1")
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "watch", "-t", "loop:1", "--debounce", "0.2",
                             "--progress", "quiet", str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "DOCKYARD_ROOT": str(root)})
    try:
        deadline = time.monotonic() + 60
        assert _read_line(proc, deadline).startswith(f"watching {ctx}: bases every 300s")
        assert _read_line(proc, deadline) == "no image loop:1 yet; building\n"
        assert _read_line(proc, deadline).startswith("built sha256:")
        (ctx / "f").write_text("2")
        assert _read_line(proc, deadline) == "context changed: f; rebuilding\n"
        assert _read_line(proc, deadline).startswith("built sha256:")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "stopped watching\n"
    assert f"{signal.Signals(signum).name}: stopping after the current step" in err and "Traceback" not in err
