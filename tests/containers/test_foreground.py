"""``run`` without ``-d`` gets what detached containers have: limits (an OOM kill exits 137, with
``OOMKilled``), health checks seen by ``ps``/``inspect`` from another process while it runs, the
first-use copy of its volumes, ``--rm`` dropping anonymous ones; through the monitor, with the pipes,
exit codes, start errors and signals a foreground run has."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.builder.conftest import busybox_tar
from tests.containers.conftest import Dy, until

pytestmark = pytest.mark.slow

GROW = "x=a; while true; do x=$x$x; done"  # memory without end: the OOM killer's


def _background(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dockyard", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "DOCKYARD_ROOT": str(root)})


def _input(root: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args], input=data,
                          capture_output=True, timeout=60, check=False)


def test_limits_apply_and_an_oom_kill_exits_137(dy: Dy, root: Path) -> None:
    run = _background(root, "run", "--name", "lim", "-m", "16m", "--pids-limit", "5", "--cpus", "0.5",
                      "busybox:local", "sh", "-c", "echo up; sleep 1000")
    try:
        assert until(lambda: dy("ps", "-q", "--filter", "name=lim").stdout != "")  # seen from elsewhere
        assert dy("stats", "--no-stream", "--format", "{{.MemUsage}}", "lim").stdout.endswith(" / 16MiB\n")
        r = dy("exec", "lim", "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 100 >/dev/null 2>&1 & done")
        assert "can't fork" in r.stderr  # the pids limit
        r = dy("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} "
               "{{.Config.AttachStdout}} {{.Config.AttachStdin}}", "lim")
        assert r.stdout == "16777216 500000000 5 true false\n"
        assert dy("stop", "-t", "0", "lim").returncode == 0
        out, err = run.communicate(timeout=60)
        assert (run.returncode, out, err) == (137, "up\n", "")
    finally:
        if run.poll() is None:
            run.kill()
    r = dy("run", "--name", "oom", "-m", "8m", "busybox:local", "sh", "-c", GROW)
    assert r.returncode == 137
    assert dy("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom").stdout == "true 137\n"
    r = dy("run", "--rm", "-m", "8m", "--memory-swap", "8m", "busybox:local", "sh", "-c", GROW)
    assert r.returncode == 137
    assert sorted(dy("ps", "-a", "--format", "{{.Names}}").stdout.split()) == ["lim", "oom"]  # not --rm's
    r = dy("run", "-m", "1m", "busybox:local", "true")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr


def test_a_run_without_what_a_monitor_gives_keeps_nothing(dy: Dy) -> None:
    assert dy("run", "busybox:local", "true").returncode == 0
    assert dy("run", "--ulimit", "core=0", "--no-healthcheck", "busybox:local", "true").returncode == 0
    assert dy("ps", "-aq").stdout == ""
    assert dy("run", "--cpu-shares", "512", "busybox:local", "true").returncode == 0
    assert dy("ps", "-a", "--format", "{{.Status}}").stdout.startswith("Exited (0) ")


def test_health_of_a_foreground_run_is_seen_while_it_runs(dy: Dy, root: Path, tmp_path: Path) -> None:
    run = _background(root, "run", "--rm", "--name", "hc", "--health-cmd", "test -f /tmp/ok",
                      "--health-interval", "200ms", "--health-retries", "1", "busybox:local", "sh", "-c",
                      "touch /tmp/ok; sleep 1000")
    try:
        assert until(lambda: dy("ps", "--format", "{{.Status}}", "--filter", "name=hc").stdout
                     .endswith(" (healthy)\n"))
        log = json.loads(dy("inspect", "-f", "{{json .State.Health.Log}}", "hc").stdout)
        assert log[0]["ExitCode"] == 0
        assert dy("exec", "hc", "rm", "/tmp/ok").returncode == 0
        assert until(lambda: dy("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").stdout
                     == "hc\n")
        assert dy("kill", "hc").returncode == 0
        run.communicate(timeout=60)
        assert run.returncode == 137
    finally:
        if run.poll() is None:
            run.kill()
    assert until(lambda: dy("ps", "-aq").stdout == "")  # --rm: gone by the time run returned
    # the image's HEALTHCHECK runs too; --no-healthcheck drops it
    (tmp_path / "Dockerfile").write_text("FROM busybox:local\nHEALTHCHECK --interval=200ms CMD true\n")
    assert dy("build", "-q", "-t", "checked:local", str(tmp_path), timeout=120).returncode == 0
    r = dy("run", "--name", "img", "checked:local", "sh", "-c", "sleep 1.5")
    assert r.returncode == 0, r.stderr
    health = json.loads(dy("inspect", "-f", "{{json .State.Health}}", "img").stdout)
    assert health["Log"] and health["Log"][0]["ExitCode"] == 0
    assert dy("run", "--no-healthcheck", "checked:local", "true").returncode == 0
    assert dy("ps", "-a", "--format", "{{.Names}}").stdout == "img\n"  # a direct run: nothing kept


def test_volumes_are_copied_up_and_rm_drops_the_anonymous_ones(dy: Dy, root: Path) -> None:
    with Client(root) as client, open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]', "VOLUME /etc"], names=["withvol:local"])
    r = dy("run", "--rm", "-v", "named:/srv", "busybox:local", "ls", "/srv")
    assert r.stdout == "", r.stderr  # nothing there in the image: nothing copied
    r = dy("run", "--rm", "-v", "conf:/etc", "busybox:local", "sh", "-c", "echo mine > /etc/mine")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(root / "volumes" / "conf" / "_data")) == ["group", "mine", "passwd"]
    # the image's VOLUME: an anonymous volume with the image's /etc; --rm takes it, the named ones stay
    r = dy("run", "--rm", "withvol:local", "sh", "-c", "head -1 /etc/passwd; grep ' /etc ' /proc/mounts")
    assert r.stdout.startswith("root:x:0:0:") and " /etc " in r.stdout, r.stderr
    assert sorted(dy("volume", "ls", "-q").stdout.split()) == ["conf", "named"]
    # without --rm the container and its anonymous volume are kept, until rm -v
    assert dy("run", "--name", "kept", "-v", "/cache", "withvol:local", "true").returncode == 0
    names = {m["Destination"]: m["Name"] for m in
             json.loads(dy("inspect", "-f", "{{json .Mounts}}", "kept").stdout)}
    assert sorted(names) == ["/cache", "/etc"]
    assert sorted(dy("volume", "ls", "-q").stdout.split()) == sorted(["conf", "named", *names.values()])
    assert (root / "volumes" / names["/etc"] / "_data" / "passwd").exists()
    assert dy("rm", "-v", "kept").returncode == 0
    assert sorted(dy("volume", "ls", "-q").stdout.split()) == ["conf", "named"]


def test_streams_exit_codes_and_start_errors_through_the_monitor(dy: Dy, root: Path) -> None:
    r = _input(root, b"hello\n", "run", "--rm", "-i", "-m", "32m", "busybox:local", "sh", "-c",
               "read x; echo got-$x; echo oops >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"got-hello\n", b"oops\n")
    r = _input(root, b"not read\n", "run", "--rm", "-m", "32m", "busybox:local", "cat")  # no -i: no input
    assert (r.returncode, r.stdout) == (0, b"")
    big = _input(root, b"", "run", "--rm", "-m", "32m", "busybox:local", "sh", "-c",
                 "head -c 3000000 /dev/zero | tr '\\0' x")
    assert big.returncode == 0 and big.stdout == b"x" * 3_000_000
    r = dy("run", "--rm", "-m", "32m", "busybox:local", "nosuchcommand")
    assert r.returncode == 127 and "nosuchcommand" in r.stderr and r.stderr.startswith("dockyard: Error: ")
    r = dy("run", "--rm", "-m", "32m", "-w", "/etc/passwd", "busybox:local", "true")
    assert r.returncode == 126
    assert dy("ps", "-aq").stdout == ""  # each --rm container is gone by the time run returns
    r = dy("run", "--name", "failed", "-m", "32m", "busybox:local", "nosuchcommand")
    assert r.returncode == 127
    assert dy("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "failed").stdout == "created 127\n"
    r = dy("run", "-m", "32m", "--runtime", "runc", "busybox:local", "true")
    assert r.returncode == 125 and "built-in runtime only" in r.stderr


def test_signals_to_the_cli_go_to_the_process(dy: Dy, root: Path) -> None:
    run = _background(root, "run", "--rm", "-m", "32m", "busybox:local", "sh", "-c",
                      "trap 'echo got-TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    try:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        run.send_signal(signal.SIGTERM)
        out, _err = run.communicate(timeout=60)
        assert (run.returncode, out) == (7, "got-TERM\n")
    finally:
        if run.poll() is None:
            run.kill()


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                          check=False).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_run_it_with_a_memory_limit_in_a_real_terminal(dy: Dy, root: Path) -> None:
    session = f"dyfg{os.getpid()}"
    command = (f"{sys.executable} -m dockyard --root {root} run -it --name term -m 32m busybox:local sh; "
               f"echo RUN-EXIT=$?; {sys.executable} -m dockyard --root {root} run -it --rm -m 32m "
               f"busybox:local sh; echo AGAIN-EXIT=$?; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "90", "-y", "25", command], check=True,
                   env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    try:
        assert until(lambda: "/ #" in _pane(session)), _pane(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "stty size; sleep 100", "Enter"], check=True)
        assert until(lambda: "25 90" in _pane(session))
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)  # the shell's sleep only
        subprocess.run(["tmux", "send-keys", "-t", session, "echo alive-$((40+2)); exit 5", "Enter"],
                       check=True)
        assert until(lambda: "RUN-EXIT=5" in _pane(session))
        assert "alive-42" in _pane(session)
        assert dy("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Memory}} {{.Config.Tty}}",
                  "term").stdout == "5 33554432 true\n"
        assert until(lambda: "/ #" in _pane(session).partition("RUN-EXIT=5")[2])  # the second run's prompt
        subprocess.run(["tmux", "send-keys", "-t", session, "C-d"], check=True)  # end of input
        assert until(lambda: "AGAIN-EXIT=0" in _pane(session))
        assert dy("ps", "-a", "--format", "{{.Names}}").stdout == "term\n"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
