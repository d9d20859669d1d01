"""Watching running containers: exec (namespaces, user, env, seccomp), stats, top, port, logs filters."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from dockyard.containers.logs import LogWriter, read_entries, select
from tests.containers.conftest import Dy


def test_json_file_log_lines_and_selection(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "x-json.log")
    from pathlib import Path

    writer = LogWriter(Path(path))
    writer.stdout(b"one\ntw")
    writer.stderr(b"err\n")
    writer.stdout(b"o\n")
    writer.stdout(b"tail")
    writer.close()  # an unterminated last line is written too, as Docker's
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [(e["log"], e["stream"]) for e in lines] == [("one\n", "stdout"), ("err\n", "stderr"),
                                                       ("two\n", "stdout"), ("tail", "stdout")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in lines)
    entries, offset = read_entries(Path(path))
    assert offset == Path(path).stat().st_size
    assert [e.text for e in select(entries, tail=2)] == ["two\n", "tail"]
    assert select(entries, tail=0) == []
    assert select(entries, since=time.time() + 60) == []


@pytest.mark.slow
def test_exec_joins_the_container(dy: Dy) -> None:
    cid = dy("run", "-d", "--name", "box", "-e", "FOO=bar", "-w", "/tmp", "busybox:local",
             "sleep", "1000").stdout.strip()
    r = dy("exec", "box", "sh", "-c", "echo $FOO $(hostname) $(pwd) $(id -u); ps -o pid,args; "
           "grep Seccomp: /proc/self/status; grep CapEff /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"bar {cid[:12]} /tmp 0"  # the host name is the short id, as docker's
    assert lines[2].split() == ["1", "sleep", "1000"]  # its pid namespace: pid 1 is the container's process
    assert "Seccomp:\t2" in r.stdout  # the container's seccomp filter
    assert "CapEff:\t00000000a80425fb" in r.stdout  # Docker's default capabilities
    r = dy("exec", "-u", "1000:100", "-w", "/", "-e", "FOO=baz", "box", "sh", "-c",
           "echo $FOO $(id -u):$(id -g) $(pwd); exit 7")
    assert (r.returncode, r.stdout) == (7, "baz 1000:100 /\n")
    r = dy("exec", "box", "no-such-command")
    assert r.returncode == 126 and "executable file not found" in r.stderr
    r = dy("exec", "-t", "box", "tty")
    assert r.stdout.strip() == "/dev/pts/0"
    dy("exec", "box", "touch", "/made-by-exec")
    assert dy("exec", "box", "ls", "/made-by-exec").returncode == 0  # the container's own filesystem
    assert dy("stop", "-t", "0", "box").returncode == 0
    r = dy("exec", "box", "true")
    assert r.returncode == 1 and "is not running" in r.stderr


@pytest.mark.slow
def test_stats_top_port(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "busy", "busybox:local", "sh", "-c",
              "sleep 1000 & while true; do :; done").returncode == 0
    assert dy("run", "-d", "--name", "pub", "-p", "127.0.0.1:18089:80", "busybox:local",
              "sleep", "1000").returncode == 0
    r = dy("stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                             "NET I/O", "BLOCK I/O", "PIDS"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {"busy", "pub"}
    r = dy("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}} {{.MemUsage}}", "busy")
    name, cpu, pids, mem = r.stdout.split(" ", 3)
    assert name == "busy" and float(cpu.rstrip("%")) > 1.0 and pids == "2"  # from its cgroup
    assert re.fullmatch(r"[\d.]+[KMG]?i?B / [\d.]+[KMG]iB\n", mem)
    r = dy("top", "busy")
    assert r.stdout.split()[:8] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert "sleep 1000" in r.stdout and len(r.stdout.splitlines()) == 3
    assert dy("port", "pub").stdout == "80/tcp -> 127.0.0.1:18089\n"
    assert dy("port", "pub", "80").stdout == "127.0.0.1:18089\n"
    assert "127.0.0.1:18089->80/tcp" in dy("ps", "--filter", "name=pub").stdout
    assert dy("pause", "pub").returncode == 0  # paused, it still runs: its ports stay
    assert dy("port", "pub").stdout == "80/tcp -> 127.0.0.1:18089\n"
    # Stopped, nothing is forwarded: Docker releases the ports with the network (ps, port, inspect)
    assert dy("stop", "-t", "0", "pub").returncode == 0
    assert dy("ps", "-a", "--filter", "name=pub", "--format", "{{.Ports}}|{{.State}}").stdout == "|exited\n"
    r = dy("port", "pub")
    assert (r.returncode, r.stdout) == (0, "")
    r = dy("port", "pub", "80")  # the port as typed, as Docker 20.10 says it
    assert r.returncode == 1 and r.stderr == "Error: No public port '80' published for pub\n"
    r = dy("port", "pub", "80/tcp")
    assert r.returncode == 1 and r.stderr == "Error: No public port '80/tcp' published for pub\n"
    assert dy("inspect", "-f", "{{json .NetworkSettings.Ports}}", "pub").stdout == "{}\n"
    assert dy("start", "pub").returncode == 0
    assert dy("port", "pub", "80").stdout == "127.0.0.1:18089\n"
    # A host port left to dockyard: run -d prints only the id (Docker's), and port tells which.
    r = dy("run", "-d", "--name", "anyport", "-p", "127.0.0.1::80", "busybox:local", "sleep", "1000")
    assert r.returncode == 0 and r.stderr == "" and re.fullmatch(r"[0-9a-f]{64}\n", r.stdout), r
    assert re.fullmatch(r"127\.0\.0\.1:\d+\n", dy("port", "anyport", "80").stdout)


@pytest.mark.slow
def test_logs_follow_and_filters(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "talk", "busybox:local", "sh", "-c",
              "for i in 1 2 3; do echo line $i; sleep 0.3; done").returncode == 0
    r = dy("logs", "-f", "talk")  # returns when the container stops
    assert r.stdout == "line 1\nline 2\nline 3\n"
    assert dy("logs", "--tail", "1", "talk").stdout == "line 3\n"
    r = dy("logs", "-t", "talk")
    assert re.fullmatch(r"(\d{4}-\d\d-\d\dT[\d:.]+Z line \d\n){3}", r.stdout)
    assert dy("logs", "--since", "10m", "talk").stdout.count("line") == 3
    assert dy("logs", "--until", "10m", "talk").stdout == ""
    r = dy("ps", "-a", "--filter", "exited=0", "--format", "{{.Names}} {{.State}}")
    assert r.stdout == "talk exited\n"
    r = dy("ps", "-a", "--filter", "status=running")
    assert r.stdout.count("\n") == 1
    r = dy("ps", "--filter", "bogus=1")
    assert r.returncode == 1 and "invalid filter 'bogus'" in r.stderr


@pytest.mark.slow
def test_limits_through_cgroups_and_oom(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "lim", "-m", "16m", "--pids-limit", "5", "--cpus", "0.5",
              "busybox:local", "sleep", "1000").returncode == 0
    r = dy("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
           "lim")
    assert r.stdout == "16777216 500000000 5\n"
    assert dy("stats", "--no-stream", "--format", "{{.MemUsage}}", "lim").stdout.endswith(" / 16MiB\n")
    r = dy("exec", "lim", "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 100 >/dev/null 2>&1 & done")
    assert "can't fork" in r.stderr  # pids.max counts the exec'd shell and its children too
    r = dy("run", "-d", "--name", "oom", "-m", "8m", "busybox:local", "sh", "-c",
           "x=a; while true; do x=$x$x; done")
    assert r.returncode == 0
    assert dy("wait", "oom").stdout == "137\n"
    assert dy("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom").stdout == "true 137\n"
    r = dy("run", "-d", "-m", "1m", "busybox:local")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr


def test_pause_without_a_cgroup_of_its_own_says_why(tmp_path: os.PathLike[str]) -> None:
    """A container started where the cgroup tree is not writable (rootless on cgroup v1) runs in no
    cgroup of its own: pause names that, not a bare 'No such file or directory'."""
    from pathlib import Path

    from dockyard.containers import cgroups
    from dockyard.errors import ExecutionError

    root = Path(tmp_path)
    (root / "freezer").mkdir()
    with pytest.raises(ExecutionError, match="cannot pause the container: it has no cgroup of its own"):
        cgroups.freeze("c1", True, root)
    (root / "freezer" / "dockyard" / "c1").mkdir(parents=True)
    cgroups.freeze("c1", True, root)
    assert (root / "freezer" / "dockyard" / "c1" / "freezer.state").read_text() == "FROZEN"
