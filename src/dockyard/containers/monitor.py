"""The monitor: one detached process per started container, owner of its first process.

Started by :func:`~dockyard.containers.lifecycle.start` as ``python -I -c <bootstrap> ROOT ID``; it forks
once and the parent exits, so the caller returns at once and the monitor (in its own session) outlives
it. The monitor runs the process with the built-in executor, writes its output to the json-file log,
records pid, start, exit code and errors in ``state.json``, and applies the restart policy. When the
monitor dies, its executor's helper kills the process (its run socket closes), so no container runs
unowned.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.containers import cgroups, health
from dockyard.containers.attach import AttachHub
from dockyard.containers.logs import LogWriter, now_rfc3339
from dockyard.containers.process import apply_ulimits
from dockyard.containers.rootview import rootfs_spec
from dockyard.containers.store import ContainerStore, Record, monitor_alive
from dockyard.errors import DockyardError, ExecutionError
from dockyard.executor.base import process_start_time
from dockyard.executor.spec import ProcessSpec
from dockyard.record import replace

BOOTSTRAP = ("import sys; sys.path.insert(0, {path!r}); "
             "from dockyard.containers.monitor import main; main()")


def should_restart(policy: dict[str, Any], code: int, restarts: int, manual_stop: bool) -> bool:
    """Docker's restart policies: no, on-failure[:N] (N restarts at most), always, unless-stopped."""
    name = policy.get("Name") or "no"
    if manual_stop or name == "no":
        return False
    if name == "on-failure":
        limit = int(policy.get("MaximumRetryCount") or 0)
        return code != 0 and (limit == 0 or restarts < limit)
    return name in ("always", "unless-stopped")


def _update(cs: ContainerStore, rec: Record, **state_keys: Any) -> dict[str, Any]:
    with cs.state_lock(rec):
        state = cs.load(rec.id).state
        state["State"].update(state_keys)
        cs.write_state(rec, state)
        return state


class Monitor:
    def __init__(self, root: Path, cid: str) -> None:
        self.root = root
        self.cs = ContainerStore(root)
        self.rec = self.cs.load(cid)
        self._counted = threading.Event()

    def claim(self) -> bool:
        """Become the container's monitor, unless a live one already is."""
        with self.cs.state_lock(self.rec):
            state = self.cs.load(self.rec.id).state
            if monitor_alive(state):
                return False
            pid = os.getpid()
            state["Monitor"] = {"Pid": pid, "Start": process_start_time(pid)}
            state["ManualStop"] = False
            self.cs.write_state(self.rec, state)
            return True

    def _copy_up(self) -> None:
        """Fill the container's empty volumes with the image's content at their mount points (Docker
        does it on each start, for a volume still empty)."""
        from dockyard.containers.rootview import in_view
        from dockyard.containers.volumes import copy_up
        from dockyard.fs.walk import secure_join

        wanted = []
        for mnt in self.rec.config.get("Mounts") or []:
            source = Path(mnt["Source"])
            if mnt.get("CopyData") and source.is_dir() and not any(source.iterdir()):
                wanted.append((mnt["Destination"], source))

        def fill(view: str) -> None:
            for dest, source in wanted:
                copy_up(secure_join(view, dest), source)

        if wanted:
            in_view(self.root, self.rec, fill, volumes=False)

    def run_once(self, log: LogWriter, hub: AttachHub | None = None) -> tuple[int, str]:
        from dockyard.executor.cleanup import cleanup_stale
        from dockyard.executor.isolation import choose as choose_isolation
        from dockyard.executor.namespace import NamespaceExecutor

        probe = health.probe_args(self.rec.config["Config"].get("Healthcheck"))
        probers: list[health.Prober] = []

        def on_pid(pid: int) -> None:
            with self.cs.state_lock(self.rec):
                state = self.cs.load(self.rec.id).state
                state["State"].update(Status="running", Running=True, Restarting=False, Pid=pid,
                                      StartedAt=now_rfc3339(), ExitCode=0, Error="",
                                      FinishedAt="0001-01-01T00:00:00Z")
                if probe is not None:
                    state["State"]["Health"] = health.fresh(state["State"].get("Health"))
                self.cs.write_state(self.rec, state)
            threading.Thread(target=self._confirm_exec, args=(pid,), daemon=True).start()
            if probe is not None:
                probers.append(health.Prober(self.root, self.rec, pid, probe))
                probers[-1].start()

        spec = replace(ProcessSpec.from_json(self.rec.config["Spec"]),
                                   cgroups=cgroups.prepare(self.rec.id,
                                                           cgroups.Limits.of(self.rec.config["HostConfig"])))
        try:
            rootfs = rootfs_spec(self.root, self.rec)
            self._copy_up()
            cleanup_stale(self.root / "exec")
            # Set here, the zygote the executor starts inherits them, and passes them on to the process.
            apply_ulimits(self.rec.config["HostConfig"].get("Ulimits") or [])
            stdout, stderr, stdin = self._streams(log, hub)
            fuse = choose_isolation("namespaces", self.root / "exec").mounter == "fuse-overlayfs"
            with NamespaceExecutor(self.root / "exec", fuse=fuse) as executor:
                try:
                    return executor.run(spec, rootfs, stdout=stdout, stderr=stderr, stdin=stdin,
                                        on_pid=on_pid,
                                        on_start=(lambda h: setattr(hub, "handle", h)) if hub else None), ""
                finally:
                    for prober in probers:
                        prober.stop()
                    if stdin is not None:
                        os.close(stdin)
                    if hub is not None:  # its clients stay until serve has recorded how it ended
                        hub.close_stdin()
                        hub.handle = None
        except ExecutionError as exc:
            return exc.exit_code, exc.message
        except DockyardError as exc:
            return 125, exc.message

    def _streams(self, log: LogWriter, hub: AttachHub | None) -> tuple[Any, Any, int | None]:
        """The run's outputs (to the log, and to attached clients) and its standard input (a pipe the
        hub feeds, for a container with OpenStdin)."""
        if hub is None:
            return log.stdout, log.stderr, None
        cfg = self.rec.config["Config"]
        stdin = hub.open_stdin(bool(cfg.get("StdinOnce"))) if cfg.get("OpenStdin") else None
        with self.cs.state_lock(self.rec):
            state = self.cs.load(self.rec.id).state
            wait = bool(state.pop("AttachWait", False))
            self.cs.write_state(self.rec, state)
        if wait:  # ``start -a``: its CLI is connecting; nothing the process says may go by before
            hub.wait_client(10.0)
        return hub.output(1, log.stdout), hub.output(2, log.stderr), stdin

    def _confirm_exec(self, pid: int) -> None:
        """Count the start once the process has exec'd its program (a start that fails reports its error
        instead, see :meth:`serve`): ``start`` waits for one or the other, as ``docker start`` does."""
        forked_as = os.stat(sys.executable)
        while not self._counted.is_set():
            try:
                now = os.stat(f"/proc/{pid}/exe")
            except OSError:
                return  # gone before we saw it run: serve counts it with its exit
            if (now.st_dev, now.st_ino) != (forked_as.st_dev, forked_as.st_ino):
                self._count_start()
                return
            time.sleep(0.005)

    def _count_start(self) -> None:
        if self._counted.is_set():
            return
        self._counted.set()
        with self.cs.state_lock(self.rec):
            state = self.cs.load(self.rec.id).state
            state["Starts"] = int(state.get("Starts", 0)) + 1
            self.cs.write_state(self.rec, state)

    def serve(self) -> None:
        """Run, record, restart as the policy says; remove the container at the end for ``--rm``."""
        if not self.claim():
            return
        policy = self.rec.config["HostConfig"]["RestartPolicy"]
        log = LogWriter(self.rec.log_path)
        try:
            hub: AttachHub | None = AttachHub(self.rec.id)
        except OSError:
            hub = None  # another monitor's (it will not serve): nothing can attach
        delay = 0.1
        ended = None
        try:
            try:
                while True:
                    began = time.monotonic()
                    self._counted = threading.Event()
                    ended = self.run_once(log, hub)
                    log.stdout.flush()
                    log.stderr.flush()
                    again = self._record_end(*ended, policy)
                    self._count_start()  # if not yet: the CLI waiting for the start reads the error or exit
                    if not again:
                        break
                    if hub is not None:
                        hub.end_run(ended)
                    # Docker's back-off: doubling from 100 ms, back to 100 ms after a run of 10 s or more.
                    delay = 0.1 if time.monotonic() - began >= 10 else min(delay * 2, 60.0)
                    if self._sleep_unless_stopped(delay):
                        break
            finally:
                log.close()
            if self.rec.config["HostConfig"].get("AutoRemove"):
                from dockyard.containers.lifecycle import delete

                delete(self.root, self.cs.load(self.rec.id), volumes=True)
        finally:
            if hub is not None:  # last: a ``run --rm`` that learns the exit code finds the container gone
                hub.close(ended)

    def _record_end(self, code: int, error: str, policy: dict[str, Any]) -> bool:
        """Record the end of a run in the state (exit code, error, OOM kill); whether to run again."""
        oom = cgroups.oom_killed(self.rec.id)
        cgroups.remove(self.rec.id)
        with self.cs.state_lock(self.rec):
            state = self.cs.load(self.rec.id).state
            st = state["State"]
            st.update(Running=False, Restarting=False, Paused=False, Pid=0, ExitCode=code,
                      Error=error, OOMKilled=oom,
                      FinishedAt=now_rfc3339(), Status="created" if error else "exited")
            if st.get("Health"):
                st["Health"]["Status"] = "unhealthy"  # as Docker 20.10 once the process ended
            again = not error and should_restart(policy, code, int(state["RestartCount"]),
                                                 bool(state.get("ManualStop")))
            if again:
                state["RestartCount"] = int(state["RestartCount"]) + 1
                st.update(Status="restarting", Restarting=True)
            self.cs.write_state(self.rec, state)
        return again

    def _sleep_unless_stopped(self, delay: float) -> bool:
        end = time.monotonic() + delay
        while time.monotonic() < end:
            time.sleep(min(0.05, delay))
            if self.cs.load(self.rec.id).state.get("ManualStop"):
                _update(self.cs, self.rec, Status="exited", Restarting=False)
                return True
        return False


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point: ``ROOT ID``; detaches (fork, the parent exits, setsid) and serves."""
    root, cid = Path(sys.argv[1]), sys.argv[2]
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    # Asked to go (a shutdown): stop the run and its network on the way out; the state then reads as
    # exited with 255, as for any monitor that is gone.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    try:
        Monitor(root, cid).serve()
    except BaseException:
        os._exit(1)  # its state reads as exited with 255: nothing is left claiming to run
    os._exit(0)
