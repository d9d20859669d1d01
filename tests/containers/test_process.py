"""``--init`` (docker-init as pid 1: signals forwarded, orphans reaped) and ``--ulimit``."""

from __future__ import annotations

import json

import pytest

from dockyard.containers.process import parse_ulimit
from dockyard.errors import InvalidArgument
from tests.containers.conftest import Dy, until


def test_ulimit_parsing() -> None:
    assert parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Hard": 2048, "Soft": 1024}
    assert parse_ulimit("core=-1") == {"Name": "core", "Hard": -1, "Soft": -1}
    for bad, message in (("nofile", "invalid ulimit argument: nofile"),
                         ("bogus=1", "invalid ulimit type: bogus"),
                         ("nofile=x", "invalid ulimit argument: nofile=x"),
                         ("nofile=20:10", "soft limit must be less than or equal to hard limit: 20 > 10")):
        with pytest.raises(InvalidArgument, match=message):
            parse_ulimit(bad)


def _zombies(dy: Dy, name: str) -> int:
    r = dy("exec", name, "ps", "-o", "stat")
    return sum(1 for line in r.stdout.splitlines()[1:] if line.strip().startswith("Z"))


@pytest.mark.slow
@pytest.mark.tini
def test_init_forwards_signals_and_reaps(dy: Dy) -> None:
    orphan = "(sleep 0.1 &); exec sleep 1000"  # the orphan's parent is then pid 1
    assert dy("run", "-d", "--name", "plain", "busybox:local", "sh", "-c", orphan).returncode == 0
    assert dy("run", "-d", "--name", "inited", "--init", "busybox:local", "sh", "-c", orphan).returncode == 0
    assert until(lambda: _zombies(dy, "plain") == 1)  # sleep as pid 1 reaps nobody
    r = dy("exec", "inited", "cat", "/proc/1/cmdline")
    assert r.stdout.split("\0")[:3] == ["/sbin/docker-init", "--", "sh"]
    assert _zombies(dy, "inited") == 0
    r = dy("inspect", "-f", "{{.Path}} {{json .Args}} {{.HostConfig.Init}}", "inited")
    assert r.stdout == 'sh ["-c","(sleep 0.1 &); exec sleep 1000"] true\n'
    r = dy("ps", "--filter", "name=inited", "--format", "{{.Command}}")  # the command, not the init
    assert r.stdout == '"sh -c \'(sleep 0.1 &…"\n'
    # SIGTERM reaches sleep through the init (pid 1 would ignore it): no kill after the timeout
    assert dy("stop", "-t", "30", "inited").returncode == 0
    assert dy("inspect", "-f", "{{.State.ExitCode}}", "inited").stdout == "143\n"


@pytest.mark.slow
def test_ulimits_hold_for_the_process_and_exec(dy: Dy) -> None:
    r = dy("run", "-d", "--name", "lim", "--ulimit", "nofile=1000:2000", "--ulimit", "core=0",
           "busybox:local", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    limits = dy("exec", "lim", "cat", "/proc/1/limits").stdout
    assert any(line.split()[-3:] == ["1000", "2000", "files"] for line in limits.splitlines()
               if line.startswith("Max open files"))
    assert dy("exec", "lim", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c").stdout == "1000\n2000\n0\n"
    ulimits = json.loads(dy("inspect", "-f", "{{json .HostConfig.Ulimits}}", "lim").stdout)
    assert ulimits == [{"Hard": 2000, "Name": "nofile", "Soft": 1000}, {"Hard": 0, "Name": "core", "Soft": 0}]
    r = dy("run", "--rm", "--ulimit", "nofile=300", "busybox:local", "sh", "-c", "ulimit -n")  # foreground
    assert r.stdout == "300\n"
    r = dy("run", "-d", "--ulimit", "nofile=20:10", "busybox:local", "true")
    assert r.returncode == 125 and "soft limit must be less than or equal to hard limit" in r.stderr


@pytest.mark.tini
def test_init_in_a_foreground_run(dy: Dy) -> None:
    # As `docker run --init` without -d: the init is pid 1, the command its child, the exit code passed on.
    r = dy("run", "--rm", "--init", "busybox:local", "sh", "-c", "cat /proc/1/cmdline; echo; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout.split("\0")[:3] == ["/sbin/docker-init", "--", "sh"]
    r = dy("run", "--rm", "busybox:local", "cat", "/proc/1/cmdline")
    assert r.stdout.split("\0")[0] == "cat"
