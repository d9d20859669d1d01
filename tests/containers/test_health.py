"""HEALTHCHECK run by the monitor: the image's and ``--health-*``, ``State.Health``, ps STATUS and the
``health=`` filter, timeouts, the start period, ``--no-healthcheck``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dockyard.containers.health import merge, probe_args, status_suffix
from dockyard.errors import InvalidArgument
from tests.containers.conftest import Dy, until

S = 1_000_000_000


def test_merge_and_probe() -> None:
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 4}
    assert merge(image, {"Retries": 1}) == {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 1}
    assert merge(image, {"Test": ["NONE"]}) == {"Test": ["NONE"]}
    assert merge(None, None) is None
    with pytest.raises(InvalidArgument, match="Interval in Healthcheck cannot be less than 1ms"):
        merge(None, {"Test": ["CMD-SHELL", "x"], "Interval": 500_000})
    assert probe_args({"Test": ["CMD-SHELL", "curl x || exit 1"]}) == ["/bin/sh", "-c", "curl x || exit 1"]
    assert probe_args({"Test": ["CMD", "check", "--now"]}) == ["check", "--now"]
    assert probe_args({"Test": ["NONE"]}) is None and probe_args(None) is None
    assert status_suffix({"Health": {"Status": "starting"}}) == " (health: starting)"
    assert status_suffix({"Health": {"Status": "unhealthy"}}) == " (unhealthy)"
    assert status_suffix({}) == ""


def _health(dy: Dy, name: str) -> dict[str, object]:
    r = dy("inspect", name)  # the whole object: its keys in Docker's order
    value = json.loads(r.stdout)[0]["State"].get("Health")
    assert isinstance(value, dict), r.stdout
    return value


def _status(dy: Dy, name: str) -> str:
    return dy("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()


@pytest.mark.slow
def test_health_flags_states_and_filters(dy: Dy) -> None:
    assert dy("run", "-d", "--name", "good", "--health-cmd", "echo ok", "--health-interval", "3s",
              "busybox:local", "sleep", "1000").returncode == 0
    assert _status(dy, "good").endswith("(health: starting)")  # no probe before the first interval
    assert dy("ps", "--filter", "health=starting", "--format", "{{.Names}}").stdout == "good\n"
    assert dy("run", "-d", "--name", "bad", "--health-cmd", "echo no >&2; exit 3", "--health-interval",
              "300ms", "--health-retries", "2", "busybox:local", "sleep", "1000").returncode == 0
    assert dy("run", "-d", "--name", "slow", "--health-cmd", "sleep 10", "--health-interval", "300ms",
              "--health-timeout", "200ms", "--health-retries", "1", "busybox:local", "sleep", "1000"
              ).returncode == 0
    assert until(lambda: _status(dy, "good").endswith(" (healthy)"))
    health = _health(dy, "good")
    assert list(health) == ["Status", "FailingStreak", "Log"]
    log = health["Log"]
    assert isinstance(log, list) and log[0]["ExitCode"] == 0 and log[0]["Output"] == "ok\n"
    assert list(log[0]) == ["Start", "End", "ExitCode", "Output"]
    assert until(lambda: _status(dy, "bad").endswith(" (unhealthy)"))
    health = _health(dy, "bad")
    assert int(str(health["FailingStreak"])) >= 2 and health["Log"][-1]["Output"] == "no\n"  # type: ignore[index]
    assert until(lambda: _status(dy, "slow").endswith(" (unhealthy)"))
    first = _health(dy, "slow")["Log"][0]  # type: ignore[index]
    assert (first["ExitCode"], first["Output"]) == (-1, "Health check exceeded timeout (200ms)")
    assert until(lambda: len(_health(dy, "bad")["Log"]) == 5)  # type: ignore[arg-type]
    time.sleep(1)
    assert len(_health(dy, "bad")["Log"]) == 5  # type: ignore[arg-type]  # the last five only
    r = dy("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}")
    assert sorted(r.stdout.split()) == ["bad", "slow"]
    assert dy("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout == "good\n"
    r = dy("ps", "--filter", "health=ok")
    assert r.returncode == 1 and "Unrecognised filter value for health: ok" in r.stderr
    cfg = json.loads(dy("inspect", "-f", "{{json .Config.Healthcheck}}", "bad").stdout)
    assert cfg == {"Interval": 300_000_000, "Retries": 2, "Test": ["CMD-SHELL", "echo no >&2; exit 3"]}
    assert dy("stop", "-t", "0", "good").returncode == 0
    assert _health(dy, "good")["Status"] == "unhealthy"  # as Docker 20.10 once stopped
    assert dy("start", "good").returncode == 0
    assert _status(dy, "good").endswith("(health: starting)")  # again, the log kept
    assert len(_health(dy, "good")["Log"]) >= 1  # type: ignore[arg-type]
    r = dy("run", "-d", "--health-interval", "0.5ms", "busybox:local", "true")
    assert r.returncode == 125 and "Interval in Healthcheck cannot be less than 1ms" in r.stderr
    r = dy("run", "-d", "--no-healthcheck", "--health-cmd", "true", "busybox:local", "true")
    assert r.returncode == 125 and "--no-healthcheck conflicts with --health-* options" in r.stderr


@pytest.mark.slow
def test_image_healthcheck_start_period_and_no_healthcheck(dy: Dy, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox:local\n"
        "HEALTHCHECK --interval=300ms --start-period=60s --start-interval=200ms --retries=1 "
        "CMD test -f /tmp/ready\n"
        'CMD ["sleep", "1000"]\n')
    r = dy("build", "-q", "-t", "checked:local", str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    assert dy("run", "-d", "--name", "app", "checked:local").returncode == 0
    # failures in the start period do not count: still starting, streak 0, but they are logged
    assert until(lambda: len(_health(dy, "app")["Log"]) >= 3)  # type: ignore[arg-type]
    health = _health(dy, "app")
    assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
    assert dy("exec", "app", "touch", "/tmp/ready").returncode == 0
    assert until(lambda: _health(dy, "app")["Status"] == "healthy")
    # a flag replaces one field of the image's check, the rest stays
    assert dy("run", "-d", "--name", "quick", "--health-start-period", "1ms", "checked:local").returncode == 0
    assert until(lambda: _status(dy, "quick").endswith(" (unhealthy)"))
    assert dy("run", "-d", "--name", "plain", "--no-healthcheck", "checked:local").returncode == 0
    r = dy("inspect", "-f", "{{json .Config.Healthcheck}} {{json .State.Health}}", "plain")
    assert r.stdout == '{"Test":["NONE"]} null\n'
    assert _status(dy, "plain").startswith("Up ") and "health" not in _status(dy, "plain")
