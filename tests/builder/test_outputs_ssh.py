"""``--output`` types (docker, oci, tar, local) and ``RUN --mount=type=ssh`` with a forwarded agent socket."""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.builder.options import Output
from dockyard.errors import BuildError
from tests.builder.conftest import Builds

DF = "FROM busybox:local\nRUN echo out > /out\n"


def test_output_types(builds: Builds, tmp_path: Path) -> None:
    ctx = builds.context(DF)
    outs = {kind: tmp_path / f"o-{kind}" for kind in ("docker", "oci", "tar", "local")}
    result = builds.build(ctx, tags=["outs:1"],
                          outputs=[Output(kind, str(path)) for kind, path in outs.items()])
    with tarfile.open(outs["docker"]) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["outs:1"]
        assert manifest[0]["Config"].endswith(result.image_id.removeprefix("sha256:"))
    with tarfile.open(outs["oci"]) as tf:
        assert "oci-layout" in tf.getnames() and "index.json" in tf.getnames()
    with tarfile.open(outs["tar"]) as tf:
        assert tf.extractfile("out").read() == b"out\n"  # type: ignore[union-attr]
        assert "bin/busybox" in tf.getnames()
    assert (outs["local"] / "out").read_text() == "out\n"
    skopeo = subprocess.run(["skopeo", "inspect", f"oci-archive:{outs['oci']}"], capture_output=True,
                            text=True)
    if skopeo.returncode == 0:
        assert json.loads(skopeo.stdout)["Layers"]


def _agent(path: Path, stop: threading.Event) -> None:
    """A stand-in agent: a listening UNIX socket."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.sendall(b"agent-hello")
        conn.close()
    server.close()


def test_ssh_mount_forwards_the_agent_socket(builds: Builds, tmp_path: Path) -> None:
    sock = tmp_path / "agent.sock"
    stop = threading.Event()
    thread = threading.Thread(target=_agent, args=(sock, stop), daemon=True)
    thread.start()
    try:
        while not sock.exists():
            pass
        # busybox has no UNIX-socket client: the agent's socket being there, as a socket, is the check.
        ctx = builds.context('FROM busybox:local\n'
                             'RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo $SSH_AUTH_SOCK > /got\n')
        builds.build(ctx, tags=["ssh:1"], ssh={"default": str(sock)})
        assert (builds.rootfs("ssh:1") / "got").read_text() == "/run/buildkit/ssh_agent.0\n"
        required = builds.context("FROM busybox:local\nRUN --mount=type=ssh,required=true true\n", name="req")
        with pytest.raises(BuildError, match='no SSH key "default" forwarded'):
            builds.build(required)
    finally:
        stop.set()
        thread.join()
