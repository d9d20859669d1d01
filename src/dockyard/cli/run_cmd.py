"""``dockyard run``: a container from an image, in the foreground, with docker run's flags and exit codes
(the process's status; 125 when dockyard itself fails, 126 when the command cannot run, 127 when it is
not found). Signals sent to dockyard are forwarded to the container's process.

A run that needs what a container's monitor gives (limits, health checks, volumes, a restart policy:
see :func:`needs_monitor`) is Docker's create + start + attach, through the monitor that ``run -d``
uses; any other runs directly under this process, which starts it sooner and keeps nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.terminal import raw_mode, terminal_size
from dockyard.errors import DockyardError, ExecutionError, NotFound

if TYPE_CHECKING:
    from dockyard.client import Client
    from dockyard.imageops.run import RunOptions

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def run_options(kw: dict[str, Any]) -> Any:
    """The RunOptions of ``run``'s (or ``create``'s) parsed flags; a bad one exits 125."""
    from dockyard.imageops.run import RunOptions, parse_publish, resolve_ports

    all_env = [e for path in kw["env_files"] for e in _env_file(path)] + list(kw["env"])
    try:
        asked = [parse_publish(value) for value in kw["publish"]]
        ports = resolve_ports(asked)
    except DockyardError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(125)
    tty = kw["tty"]
    detached = kw.get("detach", True)
    if not detached:
        # A port picked here for a run that keeps no record (``port`` cannot be asked): say which.
        # Detached and created containers answer ``port`` and print only their id, as Docker's.
        for wanted, port in zip(asked, ports, strict=True):
            if wanted.host_port == 0:
                click.echo(f"dockyard: publishing {port}", err=True)
    return RunOptions(image=kw["image"], command=list(kw["command"]), entrypoint=kw["entrypoint"],
                      env=all_env,
                      workdir=kw["workdir"], user=kw["user"], volumes=list(kw["volumes"]),
                      mounts=list(kw["mounts"]), network=kw["network"], publish=ports,
                      hostname=kw["hostname"] or ("" if detached else kw["name"]), tty=tty,
                      interactive=kw.get("interactive", False),
                      runtime=kw["runtime"], security_opt=list(kw["security_opt"]),
                      console_size=terminal_size(0, 1) if tty and not detached else None,
                      platform=kw.get("platform", ""))


def limits_of(kw: dict[str, Any]) -> dict[str, int]:
    """The HostConfig limits of ``--memory``, ``--memory-swap``, ``--cpus``, ``--cpu-shares``,
    ``--pids-limit`` (only those given); a bad value exits 125 as docker's."""
    from dockyard.dockerfile.mounts import ram_in_bytes

    out: dict[str, int] = {}
    try:
        if kw.get("memory"):
            out["Memory"] = ram_in_bytes(kw["memory"])
            if out["Memory"] < 6 * 1024 * 1024:
                raise ValueError("Minimum memory limit allowed is 6MB")
        if kw.get("memory_swap"):
            out["MemorySwap"] = -1 if kw["memory_swap"] == "-1" else ram_in_bytes(kw["memory_swap"])
            if not kw.get("memory"):
                raise ValueError("You should always set the Memory limit when using Memoryswap limit")
            if out["MemorySwap"] != -1 and out["MemorySwap"] < out["Memory"]:
                raise ValueError("Minimum memoryswap limit should be larger than memory limit")
        if kw.get("cpus"):
            cpus = float(kw["cpus"])
            if cpus <= 0 or cpus > (os.cpu_count() or 1):
                raise ValueError(f"Range of CPUs is from 0.01 to {float(os.cpu_count() or 1):.2f}, "
                                 "as there are only that many CPUs available")
            out["NanoCpus"] = int(cpus * 1e9)
    except ValueError as exc:
        click.echo(f"dockyard: Error: invalid argument: {exc}", err=True)
        sys.exit(125)
    if kw.get("cpu_shares"):
        out["CpuShares"] = int(kw["cpu_shares"])
    if kw.get("pids_limit"):
        out["PidsLimit"] = int(kw["pids_limit"])
    return out


def health_of(kw: dict[str, Any]) -> dict[str, Any] | None:
    """The Healthcheck object of the ``--health-*`` flags (None when none is given); a bad value exits
    125 as docker's."""
    from dockyard.goformat import parse_duration

    given: dict[str, Any] = {}
    try:
        if kw.get("health_cmd"):
            given["Test"] = ["CMD-SHELL", kw["health_cmd"]]
        for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                          ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval")):
            if kw.get(flag):
                value = parse_duration(kw[flag])
                if value < 0:
                    raise ValueError(f"--{flag.replace('_', '-')} cannot be negative")
                given[key] = value
        if kw.get("health_retries"):
            given["Retries"] = int(kw["health_retries"])
        if kw.get("no_healthcheck"):
            if given:
                raise ValueError("--no-healthcheck conflicts with --health-* options")
            given = {"Test": ["NONE"]}
    except ValueError as exc:
        click.echo(f"dockyard: Error: invalid argument: {exc}", err=True)
        sys.exit(125)
    return given or None


def ulimits_of(kw: dict[str, Any]) -> list[dict[str, Any]]:
    """Docker's Ulimit objects of ``--ulimit`` (the last one of a name wins); a bad one exits 125."""
    from dockyard.containers.process import parse_ulimit

    found: dict[str, dict[str, Any]] = {}
    try:
        for text in kw.get("ulimits") or ():
            limit = parse_ulimit(text)
            found[limit["Name"]] = limit
    except DockyardError as exc:
        click.echo(f"dockyard: Error: invalid argument \"{text}\" for \"--ulimit\" flag: {exc}", err=True)
        sys.exit(125)
    return list(found.values())


def _env_file(path: str) -> list[str]:
    out: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append(line)
    except OSError as exc:
        raise click.UsageError(f"open {path}: {(exc.strerror or '').lower()}") from None
    return out


@click.command("run", context_settings={"help_option_names": ["--help"], "allow_interspersed_args": False,
                                        "ignore_unknown_options": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--rm", is_flag=True, help="Automatically remove the container when it exits.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", "env_files", multiple=True, help="Read in a file of environment variables.")
@click.option("-w", "--workdir", default="", help="Working directory inside the container.")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image.")
@click.option("-v", "--volume", "volumes", multiple=True,
              help="Bind mount a volume (NAME:DST[:ro], /DST for an anonymous one, or a host path SRC:DST).")
@click.option("--mount", "mounts", multiple=True,
              help="Attach a filesystem mount to the container (type=bind|tmpfs,source=...,target=...).")
@click.option("--network", "--net", "network", default="default",
              type=click.Choice(["default", "bridge", "private", "host", "none"]),
              help="Connect the container to a network: private (its own, with outbound access; default"
                   " and bridge mean it), host or none.")
@click.option("-p", "--publish", "publish", multiple=True,
              help="Publish a container's port to the host ([IP:][HOST:]CONTAINER[/tcp|udp]).")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("--name", default="", help="Assign a name to the container (used as its hostname).")
@click.option("-h", "--hostname", default="", help="Container host name.")
@click.option("--security-opt", "security_opt", multiple=True,
              help="Security options: seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges.")
@click.option("--runtime", default="builtin", type=click.Choice(["builtin", "runc"]),
              help="Runtime to use: the built-in executor or runc.")
@click.option("--platform", default="", metavar="OS/ARCH",
              help="Set platform if the image is multi-platform (a foreign one runs under qemu).")
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--restart", default="no",
              help="Restart policy to apply when a container exits (default \"no\").")
@click.option("--stop-signal", "stop_signal", default="", help="Signal to stop a container.")
@click.option("--stop-timeout", "stop_timeout", type=int, default=None,
              help="Timeout (in seconds) to stop a container.")
@click.option("-m", "--memory", default="", help="Memory limit.")
@click.option("--memory-swap", "memory_swap", default="",
              help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap.")
@click.option("--cpus", default="", help="Number of CPUs.")
@click.option("-c", "--cpu-shares", "cpu_shares", type=int, default=0, help="CPU shares (relative weight).")
@click.option("--pids-limit", "pids_limit", type=int, default=0,
              help="Tune container pids limit (set -1 for unlimited).")
@click.option("--health-cmd", "health_cmd", default="", help="Command to run to check health")
@click.option("--health-interval", "health_interval", default="",
              help="Time between running the check (ms|s|m|h) (default 0s)")
@click.option("--health-retries", "health_retries", type=int, default=0,
              help="Consecutive failures needed to report unhealthy")
@click.option("--health-start-period", "health_start_period", default="",
              help="Start period for the container to initialize before starting health-retries countdown "
                   "(ms|s|m|h) (default 0s)")
@click.option("--health-start-interval", "health_start_interval", default="",
              help="Time between running the check during the start period (ms|s|m|h) (default 0s)")
@click.option("--health-timeout", "health_timeout", default="",
              help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
@click.option("--no-healthcheck", "no_healthcheck", is_flag=True,
              help="Disable any container-specified HEALTHCHECK")
@click.option("--init", is_flag=True,
              help="Run an init inside the container that forwards signals and reaps processes")
@click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options (NAME=SOFT[:HARD])")
@click.pass_context
def run_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """Run a command in a new container."""
    from dockyard.client import Client

    if kw["tty"] and not sys.stdin.isatty() and kw["interactive"] and not kw["detach"]:
        click.echo("the input device is not a TTY", err=True)
        sys.exit(1)
    options = run_options(kw)
    if kw["detach"]:
        from dockyard.cli.container_cmds import run_detached

        run_detached(ctx, options, name=kw["name"], rm=kw["rm"], restart=kw["restart"],
                     stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], limits=limits_of(kw),
                     health=health_of(kw), init=kw["init"], ulimits=ulimits_of(kw))
        return
    limits, check, ulimits = limits_of(kw), health_of(kw), ulimits_of(kw)
    client = Client(getattr(ctx.find_root().obj, "root", None))
    try:
        try:
            if options.platform:
                from dockyard.imageops.platforms import resolve_platform

                resolve_platform(client.store, options.image, options.platform)
            else:
                client.resolve(options.image)
        except NotFound:
            click.echo(f"Unable to find image '{options.image}' locally", err=True)
        config = client.run_image(options)[1].config  # pulled when missing
        monitored = needs_monitor(kw, config, limits, check)
    except DockyardError as exc:
        client.close()
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(exc.exit_code if isinstance(exc, ExecutionError) else 125)
    if monitored:
        client.close()
        _run_monitored(ctx, options, kw, limits, check, ulimits)
    else:
        _run_direct(client, options, kw, ulimits)


def needs_monitor(kw: dict[str, Any], image: dict[str, Any], limits: dict[str, int],
                  check: dict[str, Any] | None) -> bool:
    """Whether a foreground run needs what a container's monitor gives: resource limits, a health
    check (the image's or ``--health-*``), volumes (``-v NAME:/path``, ``-v /path``, the image's
    ``VOLUME``s), a restart policy. Without them the run is direct: quicker to start, and nothing is
    kept once it ends."""
    from dockyard.containers import health
    from dockyard.containers.volumes import parse_volume_flag

    if limits or (kw["restart"] or "no") != "no":
        return True
    if image.get("Volumes") and kw["runtime"] == "builtin":  # runc runs keep them in the container
        return True
    try:
        if any(parse_volume_flag(v) is not None for v in kw["volumes"]):
            return True
        return health.probe_args(health.merge(image.get("Healthcheck"), check)) is not None
    except DockyardError:
        return True  # creating the container says what is wrong, with Docker's words


def _run_monitored(ctx: click.Context, options: RunOptions, kw: dict[str, Any], limits: dict[str, int],
                   check: dict[str, Any] | None, ulimits: list[dict[str, Any]]) -> None:
    """``docker run`` as Docker does it: create, start under the container's monitor, attach; the
    container is kept once it ends unless ``--rm``."""
    from dockyard.cli.attach_cmd import SignalProxy, start_attached
    from dockyard.cli.container_cmds import create_container, store_root

    root = store_root(ctx)
    proxy = SignalProxy(root)  # first: a Ctrl-C while the container is made reaches its process
    cid = create_container(ctx, options, name=kw["name"], rm=kw["rm"], restart=kw["restart"],
                           stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], limits=limits,
                           health=check, init=kw["init"], ulimits=ulimits, attach_stdin=kw["interactive"],
                           attach_output=True)
    start_attached(root, cid, kw["interactive"], proxy=proxy, prefix="dockyard: Error: ", error_code=125)


def _run_direct(client: Client, options: RunOptions, kw: dict[str, Any],
                ulimits: list[dict[str, Any]]) -> None:
    """The run through an executor of this process: it ends with the process and keeps nothing."""
    tty, interactive = kw["tty"], kw["interactive"]
    try:
        if kw["init"]:
            from dockyard.containers.process import init_binary

            options.init = init_binary()
        if ulimits:
            from dockyard.containers.process import apply_ulimits

            # the executor's helper, started by this process, passes them on to the container
            apply_ulimits(ulimits)
    except DockyardError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        client.close()
        sys.exit(125)
    handle: list[Any] = []
    pending: list[int] = []
    lock = threading.RLock()  # the handlers run on the main thread, maybe inside started()

    def forward(signum: int, _frame: FrameType | None) -> None:
        with lock:
            if handle:
                handle[0].signal(signum)
            else:
                pending.append(signum)

    def started(h: Any) -> None:
        with lock:
            handle.append(h)
            for signum in pending:
                h.signal(signum)

    def resize(_signum: int, _frame: FrameType | None) -> None:
        size = terminal_size(0, 1)
        with lock:
            if handle and size is not None:
                handle[0].resize(*size)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    if tty:
        previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    raw = raw_mode(0) if tty and interactive else contextlib.nullcontext()
    try:
        with raw:
            code = client.run(options, stdin=0, stdout=1, stderr=2, on_start=started)
    except ExecutionError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except DockyardError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(125)
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        client.close()
    sys.exit(code)
