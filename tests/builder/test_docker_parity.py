"""Same image as Docker: build Dockerfiles with the Docker engine's BuildKit and with dockyard, and compare
the files (paths, types, modes, owners, contents, link targets) and the config.

Docker 20.10's built-in BuildKit is the reference here; it has RUN --mount, COPY --chmod/--chown and
multi-stage builds, but no heredocs, COPY --link/--parents/--exclude or RUN --network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.builder.engine import build
from dockyard.builder.options import BuildOptions
from dockyard.client import Client
from tests.builder.fstree import diff, snapshot, unpack_docker_save
from tests.conftest import PEERS
from tests.peers import require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKER = "/usr/bin/docker"
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
ENV = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock", "DOCKER_BUILDKIT": "1"}
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes",
               "StopSignal", "Healthcheck", "Shell", "OnBuild")


def docker(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKER, *args], env=ENV, check=True, capture_output=True, **kwargs)


@pytest.fixture(scope="module")
def engine_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A dockyard store holding Docker's own busybox:local (loaded from ``docker save``: same image ID)."""
    require("docker")
    subprocess.run(["bash", str(PEERS / "import-busybox.sh")], check=True, capture_output=True)
    root = Path("/dev/shm") / f"dy-parity-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    client = Client(root)
    tar = tmp_path_factory.mktemp("base") / "busybox.tar"
    docker("save", "-o", str(tar), "busybox:local")
    with open(tar, "rb") as f:
        client.load(f)
    assert client.resolve("busybox:local") == docker("image", "inspect", "-f", "{{.Id}}",
                                                     "busybox:local").stdout.decode().strip()
    yield client
    client.close()
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


def compare(engine_store: Client, tmp: Path, ctx: Path, tag: str, *, secrets: dict[str, bytes] | None = None,
            volatile: tuple[str, ...] = ()) -> None:
    secret_args: list[str] = []
    for sid, data in (secrets or {}).items():
        path = tmp / f"secret-{sid}"
        path.write_bytes(data)
        secret_args += ["--secret", f"id={sid},src={path}"]
    docker("build", "--network=none", "-q", "-t", f"parity-{tag}", *secret_args, str(ctx))
    docker("save", "-o", str(tmp / "docker.tar"), f"parity-{tag}")
    build(engine_store.store,
          BuildOptions(context_dir=str(ctx), tags=[f"parity-{tag}"], secrets=secrets or {}))
    engine_store.save([f"parity-{tag}"], str(tmp / "dockyard.tar"))
    want_cfg = unpack_docker_save(tmp / "docker.tar", tmp / "docker-fs")
    got_cfg = unpack_docker_save(tmp / "dockyard.tar", tmp / "dockyard-fs")
    want, got = snapshot(tmp / "docker-fs"), snapshot(tmp / "dockyard-fs")
    for path in volatile:  # files whose bytes hold build times: compare all but content
        if path in want and path in got:
            want[path] = (*want[path][:5], "")
            got[path] = (*got[path][:5], "")
    problems = diff(want, got)
    assert not problems, "\n".join(problems[:40])
    for key in CONFIG_KEYS:
        assert want_cfg["config"].get(key) == got_cfg["config"].get(key), key
    assert len(want_cfg["rootfs"]["diff_ids"]) == len(got_cfg["rootfs"]["diff_ids"])
    def steps(cfg: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(h.get("created_by", "").split(" ")[0], h.get("empty_layer", False)) for h in cfg["history"]]

    assert steps(want_cfg) == steps(got_cfg)


def test_reference_build(engine_store: Client, tmp_path: Path) -> None:
    ctx = tmp_path / "ref"
    subprocess.run([sys.executable, str(PEERS / "ref" / "gen-context.py"), str(ctx)], check=True,
                   capture_output=True)
    compare(engine_store, tmp_path, ctx, "ref", volatile=("/app/app.tar",))


EVERYTHING = """\
FROM busybox:local AS tools
RUN mkdir -p /opt/tool && echo tool > /opt/tool/bin && chmod 750 /opt/tool/bin && chown 12:34 /opt/tool/bin \\
 && ln -s bin /opt/tool/link
FROM busybox:local
ARG VERSION=2.1
ENV APP=/srv/app VERSION=$VERSION
LABEL org.opencontainers.image.version=$VERSION maintainer="someone <a@b.c>"
WORKDIR $APP
COPY src/ ./
COPY *.txt notes/
COPY --chown=app:app a.txt owned-by-name
COPY --chown=1001 a.txt owned-by-id
COPY --chmod=0755 run.sh /usr/local/bin/
COPY --from=tools /opt/tool /opt/tool
COPY --from=tools /opt/tool/bin /copied-bin
ADD bundle.tar /opt/bundle/
RUN --mount=type=cache,target=/var/cache/app echo cached > /var/cache/app/x && cp /var/cache/app/x /from-cache
RUN --mount=type=bind,source=a.txt,target=/mnt/a.txt cat /mnt/a.txt > /from-bind
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /from-tmpfs
RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-length
RUN rm -rf /etc/motd /bin/vi && mkdir -p /data/empty && touch /data/file && chmod 600 /data/file
USER app
EXPOSE 8080/tcp 9000-9001/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=3s CMD test -f /data/file
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $APP"]
"""


def test_every_instruction(engine_store: Client, tmp_path: Path) -> None:
    import io
    import tarfile

    ctx = tmp_path / "every"
    (ctx / "src" / "pkg").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(EVERYTHING)
    (ctx / "src" / "main.py").write_text("print('hi')\n")
    (ctx / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    os.chmod(ctx / "src" / "pkg" / "mod.py", 0o600)
    os.symlink("main.py", ctx / "src" / "entry")
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    (ctx / "run.sh").write_text("#!/bin/sh\necho run\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("top.txt", b"top"), ("dir/inner.txt", b"inner")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o640, 5, 6, 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
    (ctx / "bundle.tar").write_bytes(buf.getvalue())
    compare(engine_store, tmp_path, ctx, "every", secrets={"token": b"hunter2"})


EDGES = """\
FROM busybox:local
USER 1000:1000
WORKDIR /home/app/work
USER root
COPY dir /existing/
COPY dir/ /etc/
COPY file.txt /newdir/
COPY file.txt /renamed.txt
COPY link /followed
COPY *.txt /globbed/
COPY --chmod=600 dir /chmodded
COPY --chown=nobody dir /by-name
RUN mkdir -p /existing && chmod 700 /existing && ln -s /tmp /tmplink && echo x > /tmplink/through-link
COPY file.txt /tmplink/
RUN id > /id-root && grep Groups /proc/self/status > /groups-root
USER app
RUN id > /tmp/id-app && grep Groups /proc/self/status > /tmp/groups-app
USER root
RUN rm /etc/group && mkdir /etc/group && touch /etc/group/inside
"""


def test_copy_and_workdir_edge_cases(engine_store: Client, tmp_path: Path) -> None:
    ctx = tmp_path / "edges"
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(EDGES)
    (ctx / "dir" / "a").write_text("a")
    (ctx / "dir" / "sub" / "b").write_text("b")
    os.chmod(ctx / "dir" / "sub", 0o750)
    os.chmod(ctx / "dir", 0o701)
    (ctx / "file.txt").write_text("f")
    (ctx / "other.txt").write_text("o")
    os.symlink("file.txt", ctx / "link")
    compare(engine_store, tmp_path, ctx, "edges")
