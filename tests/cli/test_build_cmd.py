"""``dockyard build`` as users run it: flags, output, exit codes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.conftest import busybox_tar


@pytest.fixture()
def root() -> Iterator[Path]:
    path = Path("/dev/shm") / f"dy-buildcli-{os.getpid()}-{os.urandom(4).hex()}"
    env = {**os.environ, "DOCKYARD_ROOT": str(path)}
    subprocess.run([sys.executable, "-m", "dockyard", "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                    "busybox:local"], env=env, check=True, capture_output=True)
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


def dy(root: Path, *args: str, input: str | None = None, cwd: Path | None = None,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                          input=input, cwd=cwd, env={**os.environ, "DOCKYARD_ROOT": str(root), **(env or {})})


@pytest.mark.slow
def test_quiet_iidfile_tags_args_labels(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:local\nARG WHO=nobody\nRUN echo $WHO > /who\n")
    iid = tmp_path / "iid"
    r = dy(root, "build", "-q", "-t", "cli:1", "-t", "cli:2", "--build-arg", "WHO=me", "--label", "a=b",
           "--iidfile", str(iid), str(ctx))
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and iid.read_text() == image_id
    listed = dy(root, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
    assert f"cli:1 {image_id[7:19]}" in listed and f"cli:2 {image_id[7:19]}" in listed
    labels = dy(root, "image", "inspect", "-f", "{{json .Config.Labels}}", "cli:1").stdout.strip()
    assert labels == '{"a":"b"}'


@pytest.mark.slow
def test_plain_progress_and_cached_rebuild(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:local\nRUN echo hello-from-run\n")
    first = dy(root, "build", "--progress", "plain", "-t", "p:1", str(ctx))
    assert first.returncode == 0, first.stderr
    assert "RUN echo hello-from-run" in first.stderr and "hello-from-run" in first.stderr
    second = dy(root, "build", "--progress", "plain", "-t", "p:1", str(ctx))
    assert "CACHED" in second.stderr


@pytest.mark.slow
def test_custom_dockerfile_and_its_ignore_file(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "build").mkdir(parents=True)
    (ctx / "keep").write_text("k")
    (ctx / "drop").write_text("d")
    (ctx / "build" / "Dockerfile.prod").write_text("FROM busybox:local\nCOPY . /c/\n")
    (ctx / "build" / "Dockerfile.prod.dockerignore").write_text("drop\n")
    (ctx / ".dockerignore").write_text("keep\n")
    out = tmp_path / "out"
    r = dy(root, "build", "-f", str(ctx / "build" / "Dockerfile.prod"), "--output", f"type=local,dest={out}",
           str(ctx))
    assert r.returncode == 0, r.stderr
    assert (out / "c" / "keep").exists() and not (out / "c" / "drop").exists()


@pytest.mark.slow
def test_failures_exit_1_with_buildkit_message(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:local\nRUN exit 7\n")
    r = dy(root, "build", "--progress", "quiet", str(ctx))
    assert r.returncode == 1
    assert "ERROR: failed to solve:" in r.stderr and "exit code: 7" in r.stderr
    assert "Traceback" not in r.stderr
    (ctx / "Dockerfile").write_text("FROM busybox:local\nCOPPY x y\n")
    r = dy(root, "build", "--progress", "quiet", str(ctx))
    assert r.returncode == 1 and "Dockerfile:2" in r.stderr and "did you mean COPY" in r.stderr
    r = dy(root, "build", str(tmp_path / "missing"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f'unable to prepare context: path "{tmp_path / "missing"}" not found' in r.stderr


def test_deeply_nested_variable_is_a_dockerfile_error(root: Path, tmp_path: Path) -> None:
    deep = "x"
    for _ in range(400):
        deep = "${A:-" + deep + "}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox:local\n\nENV B={deep}\n")
    r = dy(root, "build", "--progress", "quiet", str(ctx))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('ERROR: failed to solve: Dockerfile:3:1: failed to process "${A:-${A:-')
    assert last.endswith("nested more than 100 deep") and "internal error" not in r.stderr


def dy_bytes(root: Path, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, input=data,
                          env={**os.environ, "DOCKYARD_ROOT": str(root)})


def test_build_dash_reads_dockerfile_or_tar_context_from_stdin(root: Path, tmp_path: Path) -> None:
    """``build -`` as ``docker build -``: a Dockerfile alone (the context holds just it), or a context tar,
    plain or gzip, whose -f names a file inside it; -f - with - is refused as docker does."""
    out = tmp_path / "out"
    r = dy(root, "build", "-o", str(out), "-", input="FROM busybox:local\nCOPY . /ctx/\n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert os.listdir(out / "ctx") == ["Dockerfile"]
    assert (out / "ctx" / "Dockerfile").read_text() == "FROM busybox:local\nCOPY . /ctx/\n"
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "a.txt").write_text("from the tar\n")
    (ctx / "skip.txt").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("skip.txt\n")
    (ctx / "sub" / "Dockerfile.alt").write_text("FROM busybox:local\nCOPY . /ctx/\nCOPY a.txt /alt\n")
    for mode, name in (("w", "plain"), ("w:gz", "gzip")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            tf.add(ctx, arcname=".")
        dest = tmp_path / f"out-{name}"
        done = dy_bytes(root, "build", "-f", "sub/Dockerfile.alt", "-o", str(dest), "-", data=buf.getvalue())
        assert done.returncode == 0, done.stderr.decode()
        assert (dest / "alt").read_text() == "from the tar\n"
        assert sorted(os.listdir(dest / "ctx")) == [".dockerignore", "a.txt", "sub"]
    both = dy(root, "build", "-f", "-", "-", input="FROM busybox:local\n")
    assert (both.returncode, both.stderr) == (
        1, "Error: invalid argument: can't use stdin for both build context and dockerfile\n")
    assert not [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("dockyard-stdin-context-")]


@pytest.mark.slow
def test_dockerfile_from_stdin_and_secret(root: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    secret = tmp_path / "token"
    secret.write_text("abc123")
    df = "FROM busybox:local\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /n\n"
    out = tmp_path / "out"
    r = dy(root, "build", "-f", "-", "--secret", f"id=tok,src={secret}", "-o", str(out), str(ctx), input=df)
    assert r.returncode == 0, r.stderr
    assert (out / "n").read_text().strip() == "6"
