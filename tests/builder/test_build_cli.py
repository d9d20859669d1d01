"""``dockyard build`` as a user sees it: a failing step's output, and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.executor.cleanup import mounts_under


def _build(client: Client, ctx: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "DOCKYARD_ROOT": str(client.root)}
    return [sys.executable, "-m", "dockyard", "build", *args, str(ctx)], env


def test_failing_run_prints_its_output_once(client: Client, tmp_path: Path) -> None:
    marker = f"out-{os.urandom(4).hex()}"
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox:local\nRUN echo {marker}-1 && echo {marker}-2 >&2; exit 3\n")
    cmd, env = _build(client, tmp_path, "--progress", "plain")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    err = done.stderr
    # As BuildKit's plain output: each line as it runs, then once in the failed step's summary; the
    # final error names the command and code only.
    for n in (1, 2):
        shown = [line for line in err.splitlines() if line.endswith(f" {marker}-{n}")]
        assert len(shown) == 2, err
        assert re.fullmatch(rf"#3 \d+\.\d+ {marker}-{n}", shown[0]), err
        assert re.fullmatch(rf"\d+\.\d+ {marker}-{n}", shown[1]), err
    last = err.rstrip("\n").split("\n")[-1]
    assert last == (f'ERROR: failed to solve: process "/bin/sh -c echo {marker}-1 && echo {marker}-2 >&2; '
                    'exit 3" did not complete successfully: exit code: 3')
    # Quiet: nothing but the summary shows the output, once.
    cmd, env = _build(client, tmp_path, "-q")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    for n in (1, 2):
        assert done.stderr.splitlines().count(f"{marker}-{n}") == 1, done.stderr
    assert done.stderr.count(marker) == 6, done.stderr  # the two lines; twice in the title and the error


@pytest.mark.slow
def test_ctrl_c_cancels_the_running_step(client: Client, tmp_path: Path) -> None:
    marker = f"cancel-{os.urandom(4).hex()}"  # tests may run side by side: find only this build's processes
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox:local\nRUN echo {marker}-started && sleep 60 && echo {marker}-end\nRUN true\n")
    cmd, env = _build(client, tmp_path, "--no-cache", "--progress", "plain")
    # SIG_DFL: a shell's background job (how CI may start the tests) would hand SIGINT down ignored.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if f"{marker}-started" in line:
            break
    assert any(f"{marker}-started" in line for line in seen), "".join(seen)
    proc.send_signal(signal.SIGINT)
    try:
        _, rest = proc.communicate(timeout=20)  # a hang guard: the step would run for 60 s
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    lines = out.splitlines()
    assert "#3 CANCELED" in lines, out
    assert lines[-1] == "ERROR: failed to solve: Canceled: context canceled"
    assert "[3/3] RUN true" not in out  # nothing starts after the cancel
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
    assert not leftover
    assert not mounts_under(client.root)
    assert not [p for p in (client.root / "tmp").iterdir() if p.name.startswith("build.")]
    assert client.check().ok
