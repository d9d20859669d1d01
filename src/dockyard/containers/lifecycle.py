"""What the CLI does to containers: create, start, stop, kill, restart, rm, rename, wait, prune."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dockyard
from dockyard.containers import health
from dockyard.containers.monitor import BOOTSTRAP
from dockyard.containers.process import init_binary
from dockyard.containers.store import LEASE_TTL, ContainerStore, Record, monitor_alive
from dockyard.containers.volumes import VolumeStore, container_mounts, parse_volume_flag
from dockyard.errors import Conflict, ExecutionError, InvalidArgument, NotFound
from dockyard.executor import outside
from dockyard.executor.rootless import in_rootless_namespace
from dockyard.executor.spec import Mount
from dockyard.executor.user import start_error
from dockyard.imageops import Store
from dockyard.imageops.run import RunOptions, container_spec
from dockyard.record import replace

DEFAULT_STOP_TIMEOUT = 10
START_WAIT = 120.0  # a start waits this long for the monitor to report the process running or failed


def parse_restart(text: str) -> dict[str, Any]:
    """``--restart no|on-failure[:N]|always|unless-stopped`` as Docker's RestartPolicy object."""
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy format: {text}")
    if count and (name != "on-failure" or not count.isdigit()):
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy format: maximum retry count cannot be used with "
                                  f"restart policy '{name}'")
        raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer: "
                              f"{count}")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def parse_signal(text: str) -> int:
    """``15``, ``TERM`` or ``SIGTERM`` (any case) as a signal number."""
    if text.isdigit():
        num = int(text)
        if num in {int(s) for s in signal.Signals}:
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise InvalidArgument(f"Invalid signal: {text}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create(root: Path, opts: RunOptions, *, name: str = "", restart: str = "no", auto_remove: bool = False,
           stop_signal: str = "", stop_timeout: int | None = None, limits: dict[str, int] | None = None,
           pull: Callable[[str], str] | None = None, healthcheck: dict[str, Any] | None = None,
           init: bool = False, ulimits: Sequence[dict[str, Any]] = (),
           attach_stdin: bool = False, attach_output: bool = False) -> Record:
    """A new container for ``opts`` (nothing runs yet); its image is kept by a lease until ``rm``.
    ``limits``: HostConfig keys Memory, MemorySwap, NanoCpus, CpuShares, PidsLimit; ``healthcheck``:
    the ``--health-*`` flags as a Healthcheck object, laid over the image's; ``init`` runs Docker's
    docker-init as pid 1; ``ulimits`` are Docker's Ulimit objects. ``opts.interactive`` keeps the
    process's standard input open for ``attach``; ``attach_stdin`` (``create -i``) closes it after the
    first attached client's input ends (StdinOnce); ``attach_output``: a client attaches its output
    (``create``, ``run`` without ``-d``: Docker's AttachStdout/AttachStderr)."""
    policy = parse_restart(restart)
    if auto_remove and policy["Name"] != "no":
        raise InvalidArgument("Conflicting options: --restart and --rm")
    if opts.runtime != "builtin":
        raise InvalidArgument("containers that dockyard keeps (run -d, create; run with limits, health "
                              "checks, volumes or a restart policy) run with the built-in runtime only")
    open_stdin, opts.interactive = opts.interactive, False  # the monitor holds the input, not a caller
    if stop_signal:
        parse_signal(stop_signal)
    asked = [(v, parse_volume_flag(v)) for v in opts.volumes]
    opts.volumes = [v for v, vol in asked if vol is None]  # binds: container_spec checks them
    store = Store(root)
    try:
        cid = secrets.token_hex(32)
        if not opts.hostname:
            opts.hostname = cid[:12]  # as Docker: the short id
        if init:
            opts.init = init_binary()
        image_id, image_config, spec = container_spec(store, opts, pull)
        run = image_config.config
        check = health.merge(run.get("Healthcheck"), healthcheck)
        mounts = container_mounts(root, [vol for _, vol in asked if vol is not None],
                                  (run.get("Volumes") or {}).keys(), [m.target for m in spec.mounts])
        volumes = [Mount(target=m["Destination"], source=m["Source"], readonly=not m["RW"]) for m in mounts]
        command = list(spec.args[2:] if init else spec.args)  # what inspect and ps show, without the init
        spec = replace(spec, mounts=sorted(  # parents first
            [*spec.mounts, *volumes], key=lambda m: len(m.target.rstrip("/").split("/"))))
        cs = ContainerStore(root)
        config = {
            "Id": cid, "Name": name, "Created": _now(), "Path": command[0], "Args": command[1:],
            "Image": image_id, "DiffIds": [str(d) for d in image_config.diff_ids],
            "Config": {"Hostname": spec.hostname, "Domainname": "", "User": spec.user,
                       "AttachStdin": attach_stdin and open_stdin, "AttachStdout": attach_output,
                       "AttachStderr": attach_output,
                       "Tty": spec.tty, "OpenStdin": open_stdin, "StdinOnce": attach_stdin and open_stdin,
                       "Env": list(spec.env),
                       "Cmd": list(opts.command) or (None if opts.entrypoint is not None else run.get("Cmd")),
                       "Image": opts.image, "WorkingDir": opts.workdir or str(run.get("WorkingDir") or ""),
                       "Entrypoint": ([opts.entrypoint] if opts.entrypoint else None)
                       if opts.entrypoint is not None else run.get("Entrypoint"),
                       "Volumes": run.get("Volumes"), "OnBuild": run.get("OnBuild"),
                       "Labels": dict(run.get("Labels") or {}),
                       # as Docker: no StopSignal unless given or the image's (stop sends SIGTERM then)
                       **({"StopSignal": signal_name} if (signal_name := stop_signal or run.get("StopSignal"))
                          else {}),
                       **({"Healthcheck": check} if check else {}),
                       **({"StopTimeout": stop_timeout} if stop_timeout is not None else {})},
            "HostConfig": {"RestartPolicy": policy, "AutoRemove": auto_remove, "Init": True if init else None,
                           "Ulimits": [dict(u) for u in ulimits] or None,
                           "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "PidsLimit": None,
                           **(limits or {}),
                           "NetworkMode": "default" if spec.network == "private" else spec.network,
                           "Binds": [v for v, _ in asked] or None,
                           "PortBindings": {f"{p.container_port}/{p.proto}": [
                               {"HostIp": p.host_ip, "HostPort": str(p.host_port)}] for p in spec.publish}},
            "Driver": "overlay2", "Platform": "linux", "Spec": spec.to_json(), "Mounts": mounts,
        }
        record = cs.create(config)
        lease = store.lease(ttl=LEASE_TTL, lease_id=f"container-{record.id}")
        lease.add_image(image_id)
        return record
    finally:
        store.close()


def _spawn_monitor(root: Path, cid: str) -> None:
    src = str(Path(dockyard.__file__).resolve().parent.parent)
    # Rootless: the monitor gets our end of the helper outside the user namespace, which starts pasta
    # for its private network (and lives as long as someone holds that end).
    helper = outside.helper_fd()
    # Returns once the monitor has forked away from this child: the monitor is nobody's child here.
    subprocess.run([sys.executable, "-I", "-c", BOOTSTRAP.format(path=src), str(root), cid],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   start_new_session=True, close_fds=True, pass_fds=() if helper is None else (helper,),
                   check=True)


def start(root: Path, ref: str, attach_wait: bool = False) -> Record:
    """Start ``ref`` (a no-op when it runs); returns once the process runs, or has already ended.
    A process that cannot start raises :class:`ExecutionError` with Docker's code (125/126/127).
    ``attach_wait``: the monitor waits for a client to attach before it starts the process."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.op_lock(rec):
        rec = cs.reload(rec)
        if rec.state["State"]["Paused"]:
            raise Conflict("cannot start a paused container, try unpause instead")
        if monitor_alive(rec.state):
            return rec
        if attach_wait:
            with cs.state_lock(rec):
                rec = cs.reload(rec)
                rec.state["AttachWait"] = True
                cs.write_state(rec, rec.state)
        before = int(rec.state.get("Starts", 0))
        _spawn_monitor(root, rec.id)
        spawned = time.monotonic()
        deadline = spawned + START_WAIT
        while time.monotonic() < deadline:
            try:
                rec = cs.reload(rec)
            except NotFound:
                return rec  # it ran, ended and was removed (--rm) before we looked: it did start
            if int(rec.state.get("Starts", 0)) > before:
                st = rec.state["State"]
                if st["Error"] and not st["Running"]:
                    raise start_error(st["Error"], int(st["ExitCode"]))
                return rec
            if time.monotonic() > spawned + 10 and not monitor_alive(rec.state):
                raise ExecutionError("container monitor did not start")
            time.sleep(0.02)
        raise ExecutionError("container did not start in time")


def _active(rec: Record) -> bool:
    st = rec.state["State"]
    return bool(st["Running"] or st["Restarting"])


def _wait_inactive(cs: ContainerStore, rec: Record, timeout: float | None) -> Record:
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        rec = cs.reload(rec)
        if not _active(rec):
            return rec
        if end is not None and time.monotonic() >= end:
            return rec
        time.sleep(0.02)


def _signal_process(rec: Record, sig: int) -> None:
    pid = int(rec.state["State"]["Pid"])
    if pid and monitor_alive(rec.state):
        try:
            try:
                os.kill(pid, sig)
            except PermissionError:
                if not in_rootless_namespace():
                    raise
                # Started by another rootless dockyard, in a user namespace next to ours: the helper
                # outside, whose user owns that namespace, may signal it.
                outside.send_signal(pid, sig)
        except ProcessLookupError:
            pass


def _mark_stopping(cs: ContainerStore, rec: Record) -> Record:
    with cs.state_lock(rec):
        rec = cs.reload(rec)
        rec.state["ManualStop"] = True
        cs.write_state(rec, rec.state)
    return rec


def stop(root: Path, ref: str, timeout: int | None = None) -> Record:
    """``docker stop``: the stop signal, then SIGKILL after ``timeout`` s (the container's or 10)."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.op_lock(rec):
        return _stop(cs, rec, timeout)


def _stop(cs: ContainerStore, rec: Record, timeout: int | None) -> Record:
    rec = _mark_stopping(cs, rec)
    if not _active(rec):
        return rec
    _thaw(rec)
    cfg = rec.config["Config"]
    if timeout is None:
        timeout = int(cfg.get("StopTimeout", DEFAULT_STOP_TIMEOUT))
    _signal_process(rec, parse_signal(str(cfg.get("StopSignal") or "SIGTERM")))
    rec = _wait_inactive(cs, rec, max(timeout, 0))
    if _active(rec):
        _signal_process(rec, signal.SIGKILL)
        rec = _wait_inactive(cs, rec, None)
    return rec


def kill(root: Path, ref: str, sig: str = "KILL") -> Record:
    """``docker kill``: a signal to the running process (the restart policy still applies)."""
    number = parse_signal(sig)
    cs = ContainerStore(root)
    try:
        rec = cs.find(ref)
    except NotFound as exc:
        raise NotFound(f"Cannot kill container: {ref}: {exc}") from None
    with cs.op_lock(rec):
        rec = cs.reload(rec)
        if not rec.state["State"]["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: Container {rec.id} is not running")
        _signal_process(rec, number)
        return rec


def pause(root: Path, ref: str, paused: bool = True) -> Record:
    """``docker pause`` / ``unpause``: freeze or thaw the container's processes (its freezer cgroup)."""
    from dockyard.containers import cgroups

    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.op_lock(rec):
        rec = cs.reload(rec)
        st = rec.state["State"]
        if not st["Running"]:
            raise Conflict(f"Container {rec.id} is not running")
        if paused and st["Paused"]:
            raise Conflict(f"Container {rec.id} is already paused")
        if not paused and not st["Paused"]:
            raise Conflict(f"Container {rec.id} is not paused")
        cgroups.freeze(rec.id, paused)
        with cs.state_lock(rec):
            rec = cs.reload(rec)
            rec.state["State"].update(Paused=paused, Status="paused" if paused else "running")
            cs.write_state(rec, rec.state)
        return rec


def _thaw(rec: Record) -> None:
    from dockyard.containers import cgroups

    if rec.state["State"]["Paused"]:
        cgroups.freeze(rec.id, False)  # a frozen process takes no signal, not even KILL


def restart(root: Path, ref: str, timeout: int | None = None) -> Record:
    """``docker restart``: stop (as :func:`stop`), then start."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.op_lock(rec):
        _stop(cs, rec, timeout)
        rec = _wait_monitor_gone(cs, rec)
    return start(root, rec.id)


def _wait_monitor_gone(cs: ContainerStore, rec: Record, timeout: float = 30.0) -> Record:
    end = time.monotonic() + timeout
    while monitor_alive(rec.state) and time.monotonic() < end:
        time.sleep(0.02)
        rec = cs.reload(rec)
    return rec


def wait(root: Path, ref: str) -> int:
    """``docker wait``: block until the container stops (restarts included), then its exit code."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    while True:
        rec = cs.reload(rec)
        if not _active(rec) and not monitor_alive(rec.state):
            return int(rec.state["State"]["ExitCode"])
        time.sleep(0.05)


def delete(root: Path, rec: Record, volumes: bool = False) -> None:
    """Forget a stopped container: its directory and the lease on its image (and its anonymous
    volumes with ``volumes``)."""
    store = Store(root)
    try:
        store.meta.delete_lease(f"container-{rec.id}")
    finally:
        store.close()
    from dockyard.containers import cgroups

    cgroups.remove(rec.id)
    ContainerStore(root).delete(rec)
    if volumes:
        VolumeStore(root).remove_anonymous(rec.config.get("Mounts") or [])


def remove(root: Path, ref: str, force: bool = False, volumes: bool = False) -> str:
    """``docker rm [-f] [-v]``: a running container needs ``force`` (it is killed first); ``volumes``
    removes its anonymous volumes too."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.op_lock(rec):
        rec = cs.reload(rec)
        if _active(rec):
            if not force:
                raise Conflict(f"You cannot remove a running container {rec.id}. Stop the container before "
                               "attempting removal or force remove")
            rec = _mark_stopping(cs, rec)
            _thaw(rec)
            _signal_process(rec, signal.SIGKILL)
            rec = _wait_inactive(cs, rec, None)
        rec = _wait_monitor_gone(cs, rec)
        delete(root, rec, volumes)
    return ref


def rename(root: Path, ref: str, new_name: str) -> None:
    """``docker rename``."""
    cs = ContainerStore(root)
    rec = cs.find(ref)
    with cs.names_lock():
        bare = cs.check_name(new_name, rec.id)
        with cs.state_lock(rec):
            rec = cs.reload(rec)
            rec.config["Name"] = "/" + bare
            cs.write_config(rec)


def prune(root: Path) -> list[str]:
    """``docker container prune``: remove every stopped container; their ids."""
    cs = ContainerStore(root)
    gone = []
    for rec in cs.all():
        if not _active(rec) and not monitor_alive(rec.state):
            remove(root, rec.id)
            gone.append(rec.id)
    return gone
