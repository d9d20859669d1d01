"""The same scenarios through Docker 20.10 (``--network=none``) and dockyard: ps columns and --format,
inspect keys, exit codes, log lines, error texts."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.containers.conftest import Dy
from tests.peers import DOCKER, DOCKER_HOST

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture()
def docker() -> Iterator[Dy]:
    names: list[str] = []

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if args[0] in ("run", "create") and "--name" in args:
            names.append(args[args.index("--name") + 1])
        if args[0] in ("run", "create"):
            args = (args[0], "--network=none", *args[1:])
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "DOCKER_HOST": DOCKER_HOST}, stdin=subprocess.DEVNULL)
    yield run
    if names:
        run("rm", "-f", *names)


Result = subprocess.CompletedProcess[str]


def _both(docker: Dy, dy: Dy, *args: str) -> tuple[Result, Result]:
    return docker(*args), dy(*args)


def _table_header(out: str) -> list[str]:
    return re.split(r"\s{2,}", out.splitlines()[0].strip())


def test_run_ps_logs_stop_inspect(docker: Dy, dy: Dy) -> None:
    name = f"dyparity{os.getpid()}"
    script = "echo hi; echo err >&2; sleep 100"
    d, y = _both(docker, dy, "run", "-d", "--name", name, "busybox:local", "sh", "-c", script)
    assert d.returncode == y.returncode == 0
    assert len(d.stdout.strip()) == len(y.stdout.strip()) == 64
    fmt = "{{.Names}}|{{.Command}}|{{.State}}|{{.Image}}|{{.Ports}}"
    d, y = _both(docker, dy, "ps", "--filter", f"name={name}", "--format", fmt)
    assert y.stdout == d.stdout == f'{name}|"sh -c \'echo hi; ech…"|running|busybox:local|\n'
    d, y = _both(docker, dy, "ps", "--filter", f"name={name}")
    assert _table_header(y.stdout) == _table_header(d.stdout)
    d, y = _both(docker, dy, "ps", "--filter", f"name={name}", "--no-trunc", "--format", "{{.Command}}")
    assert y.stdout == d.stdout
    d, y = _both(docker, dy, "logs", name)
    for _ in range(50):
        if d.stdout and d.stderr:
            break
        d = docker("logs", name)
    assert (y.stdout, y.stderr) == (d.stdout, d.stderr) == ("hi\n", "err\n")
    d, y = _both(docker, dy, "inspect", name)
    di, yi = json.loads(d.stdout)[0], json.loads(y.stdout)[0]
    assert set(di) <= set(yi)
    assert set(di["State"]) == set(yi["State"])
    assert set(di["Config"]) <= set(yi["Config"])
    for key in ("Path", "Args", "Name", "RestartCount", "Driver", "Platform"):
        assert yi[key] == di[key], key
    for key in ("Cmd", "Entrypoint", "Tty", "OpenStdin", "WorkingDir", "User", "Image"):
        assert yi["Config"][key] == di["Config"][key], key
    assert yi["HostConfig"]["RestartPolicy"] == di["HostConfig"]["RestartPolicy"]
    # (no json of the command: docker 20.10's json escapes HTML, dockyard's follows later docker CLIs)
    fmt = "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.RestartCount}} {{index .Config.Cmd 0}}"
    d, y = _both(docker, dy, "inspect", "-f", fmt, name)
    assert y.stdout == d.stdout
    d, y = _both(docker, dy, "stop", "-t", "1", name)
    assert (y.returncode, y.stdout) == (d.returncode, d.stdout) == (0, f"{name}\n")
    d, y = _both(docker, dy, "inspect", "-f", fmt, name)
    assert y.stdout == d.stdout == "exited false 137 0 sh\n"
    d, y = _both(docker, dy, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert re.sub(r"\) .*", ")", y.stdout) == re.sub(r"\) .*", ")", d.stdout) == "Exited (137)\n"
    d, y = _both(docker, dy, "exec", name, "true")
    assert y.returncode == d.returncode == 1
    assert re.sub("[0-9a-f]{64}", "ID", y.stderr) == re.sub("[0-9a-f]{64}", "ID", d.stderr)
    d, y = _both(docker, dy, "rm", name)
    assert (y.returncode, y.stdout) == (d.returncode, d.stdout) == (0, f"{name}\n")


def test_exit_codes(docker: Dy, dy: Dy) -> None:
    base = f"dyparity{os.getpid()}"
    for suffix, args, code in (("nf", ["no-such-command"], 127), ("perm", ["/etc/passwd"], 126)):
        d, y = _both(docker, dy, "run", "-d", "--name", base + suffix, "busybox:local", *args)
        assert y.returncode == d.returncode == code
        assert len(y.stdout.strip()) == len(d.stdout.strip()) == 64  # the id, though it did not start
        d, y = _both(docker, dy, "ps", "-a", "--filter", f"name={base + suffix}", "--format", "{{.Status}}")
        assert y.stdout == d.stdout == "Created\n"
        d, y = _both(docker, dy, "start", base + suffix)
        assert y.returncode == d.returncode == 1
        assert y.stderr.splitlines()[-1] == d.stderr.splitlines()[-1] == \
            f"Error: failed to start containers: {base + suffix}"
    d, y = _both(docker, dy, "run", "-d", "--name", base + "trap", "busybox:local", "sh", "-c",
                 "trap 'exit 143' TERM; while true; do sleep 0.1; done")
    d, y = _both(docker, dy, "exec", base + "trap", "sh", "-c", "exit 7")
    assert y.returncode == d.returncode == 7
    d, y = _both(docker, dy, "exec", base + "trap", "no-such-command")
    assert y.returncode == d.returncode == 126
    d, y = _both(docker, dy, "stop", base + "trap")
    d, y = _both(docker, dy, "wait", base + "trap")
    assert y.stdout == d.stdout == "143\n"
    d, y = _both(docker, dy, "kill", base + "trap")
    assert y.returncode == d.returncode == 1
    assert re.sub("[0-9a-f]{64}", "ID", y.stderr) == re.sub("[0-9a-f]{64}", "ID", d.stderr)
    for verb in ("rm", "stop", "kill", "start", "restart", "logs", "inspect", "wait", "exec", "rename",
                 "top", "port"):
        args = {"exec": ["true"], "rename": ["other-name"]}.get(verb, [])
        d, y = _both(docker, dy, verb, "no-such-container-x", *args)
        assert (y.returncode, y.stdout, y.stderr) == (d.returncode, d.stdout, d.stderr), verb
