"""HEALTHCHECK: the monitor runs the container's probe and keeps Docker's ``State.Health``.

The container's ``Config.Healthcheck`` is the image's with the ``--health-*`` flags laid over it, field
by field, as Docker merges them. While the process runs, a thread of its monitor execs the probe in
the container every interval (every start interval during the start period), kills it at the timeout,
and records Docker's result: ``Status`` starting/healthy/unhealthy, ``FailingStreak``, and the last five
probes in ``Log`` (output cut at 4096 bytes).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.containers.logs import now_rfc3339
from dockyard.containers.store import ContainerStore, Record
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.goformat import format_duration

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096
STATUSES = ("starting", "healthy", "unhealthy", "none")
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def merge(image: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's healthcheck: each field given wins over the image's (Docker's merge), then
    checked as the daemon checks it."""
    if not given:
        return dict(image) if image else None
    out = dict(image or {})
    if given.get("Test"):
        out["Test"] = list(given["Test"])
    for key in (*_DURATIONS, "Retries"):
        if given.get(key):
            out[key] = given[key]
    if out.get("Test") == ["NONE"]:
        return {"Test": ["NONE"]}
    for key in _DURATIONS:
        if out.get(key) and int(out[key]) < 1_000_000:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if int(out.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    return out


def probe_args(check: dict[str, Any] | None) -> list[str] | None:
    """The probe's command line; None when there is none to run (no test, or ``NONE``)."""
    test = list((check or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return test[1:] or None
    return None


def status_suffix(state: dict[str, Any]) -> str:
    """What ``ps`` adds to a running container's STATUS: `` (healthy)``, `` (health: starting)``..."""
    health = state.get("Health")
    if not health:
        return ""
    status = health.get("Status")
    return " (health: starting)" if status == "starting" else f" ({status})" if status else ""


def health_status(state: dict[str, Any]) -> str:
    """The ``health=`` filter's view: starting, healthy, unhealthy, or none."""
    health = state.get("Health")
    return str(health["Status"]) if health and health.get("Status") else "none"


def fresh(previous: dict[str, Any] | None) -> dict[str, Any]:
    """``State.Health`` when the process (re)starts: starting again, its log kept (as Docker)."""
    return {"Status": "starting", "FailingStreak": 0, "Log": list((previous or {}).get("Log") or [])}


class Prober(threading.Thread):
    """The monitor's health thread for one run of the container's process (``pid``)."""

    def __init__(self, root: Path, rec: Record, pid: int, args: list[str]) -> None:
        super().__init__(daemon=True, name="health")
        self.root = root
        self.cs = ContainerStore(root)
        self.rec = rec
        self.pid = pid
        self.args = args
        self.stopped = threading.Event()
        check = rec.config["Config"].get("Healthcheck") or {}
        self.interval = int(check.get("Interval") or DEFAULT_INTERVAL) / SECOND
        self.timeout_ns = int(check.get("Timeout") or DEFAULT_TIMEOUT)
        self.start_period = int(check.get("StartPeriod") or 0) / SECOND
        self.start_interval = int(check.get("StartInterval") or DEFAULT_START_INTERVAL) / SECOND
        self.retries = int(check.get("Retries") or DEFAULT_RETRIES)
        self.began = time.monotonic()

    def stop(self) -> None:
        self.stopped.set()

    def _in_start_period(self) -> bool:
        return time.monotonic() - self.began < self.start_period

    def run(self) -> None:
        while True:
            starting = self._in_start_period() and self._status() == "starting"
            if self.stopped.wait(self.start_interval if starting else self.interval):
                return
            result = self.probe()
            if self.stopped.is_set() or not self.record(result):
                return

    def _status(self) -> str:
        try:
            return health_status(self.cs.load(self.rec.id).state["State"])
        except DockyardError:
            return "none"

    def probe(self) -> dict[str, Any]:
        """Run the probe once: Docker's log entry (exit code -1 when it timed out or could not run)."""
        from dockyard.containers.execute import exec_in

        start = now_rfc3339()
        with tempfile.TemporaryFile() as out:
            try:
                code = exec_in(self.root, self.rec.id, self.args, stdin=subprocess.DEVNULL,
                               stdout=out.fileno(), stderr=out.fileno(), timeout=self.timeout_ns / SECOND)
                out.seek(0)
                output = out.read(MAX_OUTPUT).decode("utf-8", "replace")
            except TimeoutError:
                code, output = -1, f"Health check exceeded timeout ({format_duration(self.timeout_ns)})"
            except DockyardError as exc:
                code, output = -1, str(exc)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code, "Output": output}

    def record(self, result: dict[str, Any]) -> bool:
        """Write the result into ``State.Health``; False when the run it was for has ended."""
        with self.cs.state_lock(self.rec):
            try:
                state = self.cs.load(self.rec.id).state
            except DockyardError:
                return False
            st = state["State"]
            if not st["Running"] or int(st["Pid"]) != self.pid:
                return False
            health = st.get("Health") or fresh(None)
            health["Log"] = [*health.get("Log", []), result][-MAX_LOG:]
            if result["ExitCode"] == 0:
                health.update(Status="healthy", FailingStreak=0)
            elif not (self._in_start_period() and health.get("Status") == "starting"):
                health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
                if health["FailingStreak"] >= self.retries:
                    health["Status"] = "unhealthy"
            st["Health"] = health
            self.cs.write_state(self.rec, state)
        return True
