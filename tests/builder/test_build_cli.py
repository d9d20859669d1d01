"""``dockyard build`` as a user sees it: a failing step's output, and Ctrl-C."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.executor.cleanup import mounts_under

_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[os.uname().machine]


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
def _worker_thread(pid: int) -> int:
    """A thread of process ``pid`` other than its main thread (Python 3.11 does not name them)."""
    tids = sorted(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir() if int(task.name) != pid)
    assert tids, f"process {pid} has no thread but its main one"
    return tids[0]


def _interrupt(client: Client, ctx: Path, marker: str, seen_when: str,
               delay: float = 0.0, to_worker: bool = False) -> tuple[int, str]:
    """Start a build, send SIGINT ``delay`` s after a line containing ``seen_when`` (to a thread other
    than the main one if ``to_worker``, as the kernel may choose); the build's exit code and output."""
    cmd, env = _build(client, ctx, "--no-cache", "--progress", "plain")
    # SIG_DFL: a shell's background job (how CI may start the tests) would hand SIGINT down ignored.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if seen_when in line:
            break
    assert any(seen_when in line for line in seen), "".join(seen)
    time.sleep(delay)
    if to_worker:
        libc = ctypes.CDLL(None, use_errno=True)
        tid = _worker_thread(proc.pid)
        assert libc.syscall(_SYS_TGKILL, proc.pid, tid, signal.SIGINT) == 0, os.strerror(ctypes.get_errno())
    else:
        proc.send_signal(signal.SIGINT)
    try:
        _, rest = proc.communicate(timeout=20)  # a hang guard: the step would run for 60 s
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, "".join(seen) + rest


def _assert_canceled(client: Client, code: int, out: str, marker: str) -> None:
    assert code == 130, out
    lines = out.splitlines()
    assert "#3 CANCELED" in lines, out
    assert lines[-1] == "ERROR: failed to solve: Canceled: context canceled", out
    assert "[3/3] RUN true" not in out  # nothing starts after the cancel
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
    assert not leftover
    assert not mounts_under(client.root)
    assert not [p for p in (client.root / "tmp").iterdir() if p.name.startswith("build.")]
    assert client.check().ok


def test_ctrl_c_cancels_the_running_step(client: Client, tmp_path: Path) -> None:
    marker = f"cancel-{os.urandom(4).hex()}"  # tests may run side by side: find only this build's processes
    # st""arted: the step's output names the marker, its command line (the step's title) does not.
    (tmp_path / "Dockerfile").write_text(
        f'FROM busybox:local\nRUN echo {marker}-st""arted && sleep 60 && echo {marker}-end\nRUN true\n')
    code, out = _interrupt(client, tmp_path, marker, f"{marker}-started")
    _assert_canceled(client, code, out, marker)


def test_ctrl_c_that_reaches_a_worker_thread_cancels(client: Client, tmp_path: Path) -> None:
    """The kernel hands a process's SIGINT to any thread that does not block it; Python only runs the
    handler in the main thread, which must not sleep on a lock without a timeout meanwhile."""
    marker = f"cancel-{os.urandom(4).hex()}"
    (tmp_path / "Dockerfile").write_text(
        f'FROM busybox:local\nRUN echo {marker}-st""arted && sleep 60\nRUN true\n')
    code, out = _interrupt(client, tmp_path, marker, f"{marker}-started", to_worker=True)
    _assert_canceled(client, code, out, marker)


def test_ctrl_c_as_a_step_starts_cancels_it(client: Client, tmp_path: Path) -> None:
    """Ctrl-C while the step's thread and process are still starting (CI found two races here: the
    signal reached a worker thread and was lost, so the build hung; or it interrupted the start of the
    stage's thread, so the build ended without waiting for it)."""
    for delay in (0.0, 0.005, 0.01, 0.02, 0.04, 0.08):
        marker = f"cancel-{os.urandom(4).hex()}"
        (tmp_path / "Dockerfile").write_text(
            f"FROM busybox:local\nRUN echo {marker} && sleep 60\nRUN true\n")
        code, out = _interrupt(client, tmp_path, marker, f"RUN echo {marker}", delay)
        _assert_canceled(client, code, out, marker)


def test_a_cached_build_loads_only_what_a_cached_build_needs(client: Client, tmp_path: Path) -> None:
    # Start-up is most of a cached build (issues 12 and 19): what only a step that runs, a pull, a
    # multi-platform build or a rootless mount needs is loaded when it is needed, not by every build.
    (tmp_path / "Dockerfile").write_text("FROM busybox:local\nWORKDIR /app\nCOPY a.txt .\n"
                                         "RUN cat a.txt > b.txt\n")
    (tmp_path / "a.txt").write_text("a\n")
    cmd, env = _build(client, tmp_path, "-q")
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0  # fills the cache
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "dockyard.builder.engine" in names
    unneeded = ("dockyard.archive.writer", "dockyard.archive.diff", "dockyard.archive.apply",
                "dockyard.imageops.unpack", "dockyard.imageops.pull", "dockyard.executor.network",
                "dockyard.executor.pasta", "dockyard.executor.base", "dockyard.executor.fuseoverlay",
                "dockyard.executor.cleanup", "dockyard.builder.multiplatform", "dockyard.snapshot.copying",
                "dockyard.builder.remotecache.remote", "dockyard.registry.client", "httpx", "tomllib",
                "dockyard.imageops.platforms", "dockyard.imageops.attestations",
                # Compression libraries (a layer made or fetched), shutil and tempfile (bz2, lzma,
                # random: a step that ran, or a stale directory to clear), dataclasses (records).
                "dockyard.archive.compression", "zstandard", "isal", "shutil", "tempfile", "secrets",
                "dataclasses")
    assert sorted(n for n in unneeded if n in names) == []
