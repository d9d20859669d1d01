"""The ``save``, ``load``, ``import`` and ``bootstrap`` commands: docker's output lines, one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


@pytest.fixture
def root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-cli-archive-") as d:
        yield Path(d)


def dockyard(root: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKYARD_ROOT": str(root / "store")}
    env.pop("DOCKYARD_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dockyard", *args], input=stdin, env=env,
                          capture_output=True, check=False, timeout=60)


@pytest.mark.slow
def test_import_save_load_round_trip(root: Path) -> None:
    imp = dockyard(root, "import", "-c", 'CMD ["sh"]', "-m", "msg", "-", "demo:1", stdin=rootfs())
    assert imp.returncode == 0, imp.stderr
    image_id = imp.stdout.decode().strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    out = root / "demo.tar"
    assert dockyard(root, "save", "-o", str(out), "demo:1").returncode == 0
    saved = dockyard(root, "save", "demo:1")  # to stdout (a pipe): the same bytes
    assert saved.stdout == out.read_bytes()
    again = dockyard(root, "load", "-i", str(out))
    assert (again.returncode, again.stdout) == (0, b"Loaded image: demo:1\n")
    assert dockyard(root, "load", stdin=out.read_bytes()).stdout == b"Loaded image: demo:1\n"
    oci = dockyard(root, "save", "--format", "oci", "-o", str(root / "oci.tar"), image_id[7:19])
    assert oci.returncode == 0, oci.stderr
    fresh = root / "other"
    fresh.mkdir()
    loaded = dockyard(fresh, "load", "-i", str(root / "oci.tar"))
    assert loaded.stdout == f"Loaded image ID: {image_id}\n".encode()


@pytest.mark.slow
def test_load_moves_a_tag_like_docker(root: Path) -> None:
    first = dockyard(root, "import", "-", "moved:1", stdin=rootfs()).stdout.decode().strip()
    out = root / "a.tar"
    dockyard(root, "save", "-o", str(out), "moved:1")
    second = dockyard(root, "import", "-", "moved:1", stdin=rootfs()).stdout.decode().strip()
    assert first != second  # a later creation time
    loaded = dockyard(root, "load", "-i", str(out))
    assert loaded.stdout.decode().splitlines() == [
        f"The image moved:1 already exists, renaming the old one with ID {second} to empty string",
        "Loaded image: moved:1",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_load_of_a_multi_platform_image_names_it_once(root: Path, fmt: str) -> None:
    for arch in ("amd64", "arm64"):
        done = dockyard(root, "import", "--platform", f"linux/{arch}", "-", "multi:1", stdin=rootfs())
        assert done.returncode == 0, done.stderr
    out = root / "multi.tar"
    assert dockyard(root, "save", "--format", fmt, "-o", str(out), "multi:1").returncode == 0
    fresh = root / "fresh"
    fresh.mkdir()
    # Both platforms join one tag: nothing is renamed, and the name is said once (as Docker 25+).
    loaded = dockyard(fresh, "load", "-i", str(out))
    assert (loaded.returncode, loaded.stdout.decode()) == (0, "Loaded image: multi:1\n"), loaded.stderr
    tree = dockyard(fresh, "images", "--tree").stdout.decode()
    assert "linux/amd64" in tree and "linux/arm64" in tree
    # Into the store it came from: the same images, nothing moves.
    again = dockyard(root, "load", "-i", str(out))
    assert again.stdout.decode() == "Loaded image: multi:1\n"
    # One platform replaced by another image of it: that one is named as moved.
    moved = dockyard(root, "import", "--platform", "linux/arm64", "-", "multi:1", stdin=rootfs() * 2)
    arm = moved.stdout.decode().strip()
    assert dockyard(root, "load", "-i", str(out)).stdout.decode() == (
        f"The image multi:1 already exists, renaming the old one with ID {arm} to empty string\n"
        "Loaded image: multi:1\n")


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("load", "-i", "/nonexistent/x.tar"), b"", "Error: open /nonexistent/x.tar: no such file or directory"),
    (("load",), b"not a tar at all" * 64, "Error: stdin: "),
    (("save", "nope:1", "-o", "/dev/null"), b"", "Error: No such image: nope:1"),
    (("import", "-c", "FROM scratch", "-"), b"", "Error: FROM is not a valid change command"),
    (("import", "-", "Bad:Name"), b"", "Error: "),
    (("bootstrap", "alpine"), b"", "Error: unknown base image 'alpine'"),
])
@pytest.mark.slow
def test_bad_input_is_one_line(root: Path, args: tuple[str, ...], stdin: bytes, message: str) -> None:
    proc = dockyard(root, *args, stdin=stdin)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_corrupt_archive_leaves_no_image(root: Path) -> None:
    dockyard(root, "import", "-", "keep:1", stdin=rootfs())
    out = root / "k.tar"
    dockyard(root, "save", "-o", str(out), "keep:1")
    data = out.read_bytes()
    cut = root / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    fresh = root / "fresh"
    fresh.mkdir()
    proc = dockyard(fresh, "load", "-i", str(cut))
    assert proc.returncode == 1 and proc.stderr.decode().startswith(f"Error: {cut}: ")
    assert dockyard(fresh, "images", "-q").stdout == b""
    assert dockyard(fresh, "system", "check").returncode == 0


@pytest.mark.slow
def test_import_from_url(root: Path) -> None:
    import http.server
    import threading

    (root / "www").mkdir()
    (root / "www" / "rootfs.tar").write_bytes(rootfs())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root / "www"), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ok = dockyard(root, "import", f"{url}/rootfs.tar", "fromurl:1")
        assert ok.returncode == 0, ok.stderr
        hist = dockyard(root, "history", "--no-trunc", "--format", "{{.Comment}}", "fromurl:1")
        assert hist.stdout.decode().strip() == f"Imported from {url}/rootfs.tar"
        missing = dockyard(root, "import", f"{url}/nope.tar")
        assert missing.returncode == 1
        assert missing.stderr.decode() == f"Error: import {url}/nope.tar: HTTP 404 File not found\n"
    finally:
        server.shutdown()
        server.server_close()
