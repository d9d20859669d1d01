"""Nothing lost: a build SIGKILLed at any moment leaves the store consistent, no process and no mount
behind, and the next build cleans up and succeeds."""

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
from dockyard.executor.cleanup import mounts_under
from tests.builder.conftest import busybox_tar

DOCKERFILE = """\
FROM busybox:local
COPY big /big
RUN cp /big /big2 && sleep 0.3 && echo {marker} > /done
FROM busybox:local
COPY --from=0 /done /done
RUN sleep 0.2
"""


@pytest.fixture()
def root(tmp_path: Path) -> Iterator[Path]:
    path = Path("/dev/shm") / f"dy-kill-{os.getpid()}-{os.urandom(4).hex()}"
    client = Client(path)
    with open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    client.close()
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.15, 0.4, 0.7, 1.0, 1.4])
def test_sigkill_during_build(root: Path, tmp_path: Path, delay: float) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = f"done-{os.urandom(6).hex()}"  # tests may run side by side: find only this build's processes
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(marker=marker))
    (ctx / "big").write_bytes(os.urandom(1 << 20) * 24)
    env = {**os.environ, "DOCKYARD_ROOT": str(root)}
    cmd = [sys.executable, "-m", "dockyard", "build", "--no-cache", "--progress", "quiet", "-t", "k:1",
           str(ctx)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # No container process survives the builder (its executor helper notices the death and ends its runs).
    deadline = time.monotonic() + 10
    while True:
        leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not leftover
    client = Client(root)
    report = client.check()
    assert report.ok, report.problems
    # The next build recovers what the killed one left and completes.
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not mounts_under(root)
    # and stopped the pasta serving the killed build's private network, if its RUN had started
    pasta = subprocess.run(["pgrep", "-f", f"pasta .*{root}/exec/"], capture_output=True, text=True).stdout
    assert not pasta.strip()
    assert not [p for p in (root / "tmp").iterdir() if p.name.startswith("build.")]
    assert client.check().ok
    client.close()
