"""Containers that outlive the CLI: run -d, ps, logs, stop, start, restart policies, rm, lost monitors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard.containers.lifecycle import parse_restart, parse_signal
from dockyard.containers.monitor import should_restart
from dockyard.errors import InvalidArgument
from tests.containers.conftest import Dy, until


def test_restart_policy_and_signal_parsing() -> None:
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("unless-stopped") == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    for bad in ("sometimes", "always:2", "on-failure:x"):
        with pytest.raises(InvalidArgument, match="invalid restart policy format"):
            parse_restart(bad)
    assert parse_signal("TERM") == parse_signal("sigterm") == parse_signal("15") == 15
    with pytest.raises(InvalidArgument, match="Invalid signal: NOPE"):
        parse_signal("NOPE")
    on_failure = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert should_restart(on_failure, 1, 1, False) and not should_restart(on_failure, 1, 2, False)
    assert not should_restart(on_failure, 0, 0, False)
    assert should_restart({"Name": "always"}, 0, 99, False)
    assert not should_restart({"Name": "always"}, 1, 0, True)  # stopped by hand
    assert not should_restart({"Name": "no"}, 1, 0, False)


def _state(dy: Dy, name: str) -> dict[str, object]:
    r = dy("inspect", "--type", "container", "-f", "{{json .State}}", name)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    assert isinstance(state, dict)
    return state


def _status(dy: Dy, name: str) -> str:
    return dy("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()


@pytest.mark.slow
def test_detached_run_outlives_the_cli_and_stops(dy: Dy) -> None:
    r = dy("run", "-d", "--name", "web", "busybox:local", "sh", "-c",
           "echo started; echo oops >&2; while true; do sleep 1; done")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    assert until(lambda: "started" in dy("logs", "web").stdout)
    r = dy("ps")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1].startswith(cid[:12]) and lines[1].endswith("web") and " Up " in lines[1]
    assert dy("ps", "-q").stdout == cid[:12] + "\n"
    r = dy("logs", "web")
    assert (r.stdout, r.stderr) == ("started\n", "oops\n")
    pid = int(str(_state(dy, "web")["Pid"]))
    assert os.path.exists(f"/proc/{pid}")
    r = dy("stop", "-t", "1", "web")  # sh ignores SIGTERM as pid 1: killed after 1 s
    assert (r.returncode, r.stdout) == (0, "web\n")
    state = _state(dy, "web")
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False)
    assert not os.path.exists(f"/proc/{pid}")
    assert dy("ps", "-q").stdout == ""
    assert _status(dy, "web").startswith("Exited (137) ")
    # stopped, it starts again (same container, same writable layer)
    assert dy("start", "web").returncode == 0
    assert until(lambda: dy("logs", "web").stdout == "started\nstarted\n")
    assert _state(dy, "web")["Running"] is True
    r = dy("rm", "web")
    assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
    assert dy("rm", "-f", "web").stdout == "web\n"
    assert dy("ps", "-aq").stdout == ""
    r = dy("logs", "web")
    assert r.returncode == 1 and "No such container: web" in r.stderr


@pytest.mark.slow
def test_writable_layer_persists_across_starts(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "ww", "busybox:local", "sh", "-c",
              "cat /count 2>/dev/null; echo x >> /count").returncode == 0
    assert dy("wait", "ww").stdout == "0\n"
    assert dy("start", "ww").returncode == 0
    assert dy("wait", "ww").stdout == "0\n"
    assert dy("logs", "ww").stdout == "x\n"


@pytest.mark.slow
def test_exit_codes_and_start_failures(dy: Dy) -> None:
    r = dy("run", "-d", "--name", "nf", "busybox:local", "no-such-command")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    assert _status(dy, "nf") == "Created"
    assert _state(dy, "nf")["ExitCode"] == 127
    r = dy("start", "nf")
    assert r.returncode == 1 and "executable file not found" in r.stderr
    r = dy("run", "-d", "--name", "perm", "busybox:local", "/etc/passwd")
    assert r.returncode == 126
    assert dy("run", "-d", "--name", "three", "busybox:local", "sh", "-c", "exit 3").returncode == 0
    assert dy("wait", "three").stdout == "3\n"
    assert _status(dy, "three").startswith("Exited (3) ")
    # TERM handled by the process: stop is quick and the code is the process's own
    assert dy("run", "-d", "--name", "trap", "busybox:local", "sh", "-c",
              "trap 'exit 143' TERM; while true; do sleep 0.1; done").returncode == 0
    assert dy("stop", "trap").returncode == 0
    assert _state(dy, "trap")["ExitCode"] == 143
    r = dy("kill", "trap")
    assert r.returncode == 1 and "is not running" in r.stderr
    r = dy("run", "-d", "--name", "killme", "busybox:local", "sleep", "100")
    assert dy("kill", "-s", "KILL", "killme").returncode == 0
    assert dy("wait", "killme").stdout == "137\n"
    r = dy("run", "-d", "--name", "x", "--restart", "always", "--rm", "busybox:local", "true")
    assert r.returncode == 125 and "Conflicting options: --restart and --rm" in r.stderr


@pytest.mark.slow
def test_restart_policies(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox:local", "sh", "-c",
              "echo try; exit 3").returncode == 0
    assert dy("wait", "flaky").stdout == "3\n"
    assert dy("inspect", "-f", "{{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", "flaky").stdout \
        == "2 on-failure\n"
    assert dy("logs", "flaky").stdout == "try\n" * 3
    assert dy("run", "-d", "--name", "always", "--restart", "always", "busybox:local", "sh", "-c",
              "echo a; sleep 0.2").returncode == 0
    assert until(lambda: dy("logs", "always").stdout.count("a") >= 3)
    assert dy("stop", "always").returncode == 0  # stopped by hand: no more restarts
    count = dy("logs", "always").stdout.count("a")
    assert not _state(dy, "always")["Running"]
    assert dy("wait", "always").returncode == 0
    assert dy("logs", "always").stdout.count("a") == count
    assert dy("run", "-d", "--rm", "--name", "gone", "busybox:local", "true").returncode == 0
    assert until(lambda: dy("ps", "-aq", "--filter", "name=gone").stdout == "")


def _monitor_pid(root: Path, cid: str) -> int:
    mon = json.loads((root / "containers" / cid / "state.json").read_text())["Monitor"]
    return int(mon["Pid"])


@pytest.mark.slow
def test_a_dead_monitor_leaves_ps_truthful(dy: Dy, root: Path) -> None:
    cid = dy("run", "-d", "--name", "lost", "busybox:local", "sleep", "1000").stdout.strip()
    pid = int(str(_state(dy, "lost")["Pid"]))
    os.kill(_monitor_pid(root, cid), 9)
    assert until(lambda: not os.path.exists(f"/proc/{pid}"))  # the container went with it
    assert until(lambda: _status(dy, "lost").startswith("Exited (255) "))
    assert dy("ps", "-q").stdout == ""
    # as after a reboot: start works with the monitor gone
    assert dy("start", "lost").returncode == 0
    assert _state(dy, "lost")["Running"] is True
    # a CLI killed while it waits for a stop changes nothing: the monitor records the exit
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "stop", "-t", "30", "lost"],
                            env={**os.environ, "DOCKYARD_ROOT": str(root)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert until(lambda: bool(json.loads((root / "containers" / cid / "state.json").read_text())
                              .get("ManualStop")))
    proc.kill()
    proc.wait()
    assert _state(dy, "lost")["Running"] is True  # still running: TERM is ignored by sleep as pid 1
    assert dy("kill", "lost").returncode == 0
    assert dy("wait", "lost").stdout == "137\n"


@pytest.mark.slow
def test_names_and_serialised_starts(dy: Dy, root: Path) -> None:
    assert dy("create", "--name", "one", "busybox:local", "sleep", "4242").returncode == 0
    assert _status(dy, "one") == "Created"
    r = dy("create", "--name", "one", "busybox:local")
    assert r.returncode == 125 and 'The container name "/one" is already in use' in r.stderr
    assert dy("rename", "one", "two").returncode == 0
    assert dy("ps", "-a", "--format", "{{.Names}}").stdout == "two\n"
    with ThreadPoolExecutor(4) as pool:  # four CLIs at once: one monitor, one process
        results = list(pool.map(lambda _: dy("start", "two"), range(4)))
    assert [r.returncode for r in results] == [0] * 4
    cid = dy("inspect", "-f", "{{.Id}}", "two").stdout.strip()
    monitor = _monitor_pid(root, cid)
    out = subprocess.run(["ps", "-e", "-o", "ppid=,args="], capture_output=True, text=True).stdout
    assert sum(1 for line in out.splitlines() if line.split(None, 1)[1] == "sleep 4242") == 1
    assert os.path.exists(f"/proc/{monitor}")
    assert dy("rm", "-f", "two").returncode == 0
    r = dy("container", "prune", "-f")
    assert r.returncode == 0 and r.stdout == "Total reclaimed space: 0B\n"


@pytest.mark.slow
def test_images_in_use_are_kept(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "user", "busybox:local", "sleep", "1000").returncode == 0
    image = dy("images", "-q", "busybox:local").stdout.strip()
    r = dy("rmi", "busybox:local")
    assert r.returncode == 1
    assert 'unable to remove repository reference "busybox:local" (must force)' in r.stderr
    r = dy("rmi", "-f", image)
    assert r.returncode == 1 and "(cannot be forced) - image is being used by running container" in r.stderr
    assert dy("stop", "-t", "0", "user").returncode == 0
    r = dy("rmi", image)
    assert r.returncode == 1 and "(must be forced) - image is being used by stopped container" in r.stderr
    assert dy("image", "prune", "-a", "-f").returncode == 0
    assert dy("system", "prune", "-a", "-f").returncode == 0
    assert dy("images", "-q").stdout.strip() == image
    assert dy("start", "user").returncode == 0  # its image is all there
    assert dy("rm", "-f", "user").returncode == 0
    assert dy("rmi", "busybox:local").returncode == 0


@pytest.mark.slow
def test_pause_and_unpause(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "pz", "busybox:local", "sh", "-c",
              "while true; do echo t; sleep 0.1; done").returncode == 0
    assert until(lambda: dy("logs", "pz").stdout.count("t") >= 2)
    assert dy("pause", "pz").stdout == "pz\n"
    frozen = dy("logs", "pz").stdout
    assert not until(lambda: dy("logs", "pz").stdout != frozen, 1.5)  # nothing runs while frozen
    status = dy("ps", "--format", "{{.Status}}|{{.State}}").stdout
    assert status.startswith("Up ") and status.endswith(" (Paused)|paused\n")
    r = dy("pause", "pz")
    assert r.returncode == 1 and "is already paused" in r.stderr
    assert dy("unpause", "pz").returncode == 0
    assert until(lambda: dy("logs", "pz").stdout != frozen)
    assert dy("pause", "pz").returncode == 0
    assert dy("stop", "-t", "1", "pz").returncode == 0  # a paused container stops too
    assert dy("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}", "pz").stdout \
        == "exited false 137\n"
