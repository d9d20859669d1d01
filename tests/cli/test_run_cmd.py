"""``dockyard run``: docker run's command line, environment, binds, exit codes and signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.imageops.run import RunOptions, command_line, environment
from dockyard.oci.config import ImageConfig
from tests.builder.conftest import busybox_tar


@pytest.fixture()
def root() -> Iterator[Path]:
    path = Path("/dev/shm") / f"dy-run-{os.getpid()}-{os.urandom(4).hex()}"
    with Client(path) as client, open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]', "ENV GREETING=hello", "WORKDIR /tmp"],
                            names=["busybox:local"])
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


def dy(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "run", *args], capture_output=True, text=True,
                          input=input, env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=60)


def test_command_line_rules() -> None:
    cfg = ImageConfig(config={"Entrypoint": ["/bin/ep"], "Cmd": ["default"]})
    assert command_line(cfg, RunOptions("x")) == ["/bin/ep", "default"]
    assert command_line(cfg, RunOptions("x", command=["a", "b"])) == ["/bin/ep", "a", "b"]
    assert command_line(cfg, RunOptions("x", entrypoint="/bin/sh")) == ["/bin/sh"]  # CMD dropped
    assert command_line(cfg, RunOptions("x", entrypoint="", command=["ls"])) == ["ls"]
    env = environment(ImageConfig(config={"Env": ["A=1", "PATH=/bin"]}), ["A=2", "B=3", "NOPE_UNSET_X"], "h")
    assert env == ["A=2", "PATH=/bin", "HOSTNAME=h", "B=3"]


@pytest.mark.slow
def test_runs_with_image_defaults_and_overrides(root: Path, tmp_path: Path) -> None:
    r = dy(root, "busybox:local", "sh", "-c", "echo $GREETING $(pwd) $(id -u):$(id -g)")
    assert (r.returncode, r.stdout) == (0, "hello /tmp 0:0\n")
    # docker run (containerd) puts the primary group among the supplementary ones; a build's RUN does not.
    assert dy(root, "busybox:local", "id").stdout == "uid=0(root) gid=0(root) groups=0(root)\n"
    r = dy(root, "-e", "GREETING=hi", "-w", "/", "-u", "1000:100", "busybox:local", "sh", "-c",
           "echo $GREETING $(pwd) $(id -u):$(id -g)")
    assert r.stdout == "hi / 1000:100\n"
    (tmp_path / "data").write_text("bound")
    r = dy(root, "-v", f"{tmp_path}:/mnt:ro", "busybox:local", "sh", "-c", "cat /mnt/data; touch /mnt/x")
    assert r.stdout == "bound" and r.returncode != 0 and not (tmp_path / "x").exists()
    assert dy(root, "-i", "busybox:local", "cat", input="piped\n").stdout == "piped\n"
    assert dy(root, "--network", "none", "busybox:local", "ls", "/sys/class/net").stdout.split() == ["lo"]
    r = dy(root, "--entrypoint", "echo", "busybox:local", "from", "entrypoint")
    assert r.stdout == "from entrypoint\n"


@pytest.mark.slow
def test_changes_do_not_persist(root: Path) -> None:
    assert dy(root, "busybox:local", "sh", "-c", "echo x > /persist").returncode == 0
    assert dy(root, "busybox:local", "cat", "/persist").returncode == 1


@pytest.mark.slow
def test_exit_codes(root: Path) -> None:
    assert dy(root, "busybox:local", "sh", "-c", "exit 42").returncode == 42
    r = dy(root, "busybox:local", "no-such-command")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    r = dy(root, "busybox:local", "/etc/passwd")
    assert r.returncode == 126
    r = dy(root, "-w", "/etc/passwd", "busybox:local", "true")
    assert r.returncode == 126
    r = dy(root, "missing-image-xyz:1")
    assert r.returncode == 125 and "Unable to find image 'missing-image-xyz:1' locally" in r.stderr
    assert "Traceback" not in r.stderr


def test_signals_are_forwarded(root: Path) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "busybox:local", "sh", "-c", script],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "DOCKYARD_ROOT": str(root)})
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "got-term" in out
    assert proc.returncode == 7


def test_mount_flag(root: Path, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("bound")
    r = dy(root, "--mount", f"type=bind,source={tmp_path},target=/mnt,readonly", "busybox:local",
           "sh", "-c", "cat /mnt/data; touch /mnt/x")
    assert r.stdout == "bound" and r.returncode != 0 and not (tmp_path / "x").exists()
    r = dy(root, "--mount", f"type=bind,src={tmp_path},dst=/mnt", "busybox:local", "touch", "/mnt/x")
    assert r.returncode == 0 and (tmp_path / "x").exists()  # docker run's binds are writable by default
    r = dy(root, "--mount", "type=tmpfs,destination=/scratch,tmpfs-size=1m", "busybox:local",
           "sh", "-c", "grep ' /scratch ' /proc/mounts")
    assert r.returncode == 0 and r.stdout.startswith("tmpfs /scratch tmpfs ") and "size=1024k" in r.stdout


@pytest.mark.parametrize(("mount", "message"), [
    ("type=bind,target=/mnt", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,source=/no/such/dir/xyz,target=/mnt",
     'invalid mount config for type "bind": bind source path does not exist: /no/such/dir/xyz'),
    ("type=bind,source=/tmp,target=mnt",
     'invalid mount config for type "bind": invalid mount path: \'mnt\' mount path must be absolute'),
    ("type=tmpfs,source=/tmp,target=/mnt", 'invalid mount config for type "tmpfs": field Source must not be'),
    ("type=volume,source=data,target=/mnt", 'invalid mount config for type "volume": named volumes are not'),
    ("type=bind,src=/tmp", 'invalid argument "type=bind,src=/tmp" for "--mount" flag: target is required'),
])
def test_mount_flag_errors(root: Path, mount: str, message: str) -> None:
    r = dy(root, "--mount", mount, "busybox:local", "true")
    assert r.returncode == 125 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_container_sees_only_stdio(root: Path) -> None:
    # `cat <&3 &` on a leaked control socket once swallowed the forwarded SIGTERM. (`; true` keeps sh
    # from exec-ing ls as pid 1, which would list its own directory fd.)
    r = dy(root, "busybox:local", "sh", "-c", "ls /proc/$$/fd; true")
    assert (r.returncode, r.stdout.split()) == (0, ["0", "1", "2"]), r.stderr
