"""Container commands: ``create``, ``start``, ``stop``, ``kill``, ``restart``, ``rm``, ``rename``, ``wait``,
``ps``, ``logs``, ``inspect``, ``container ...``, and ``run -d``, with docker's flags, columns, exit codes."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import click

from dockyard.errors import DockyardError, ExecutionError

CONTEXT = {"help_option_names": ["--help"]}
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
              "CreatedAt": "CREATED AT",
              "State": "STATE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}
DEFAULT_PS = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def store_root(ctx: click.Context) -> Path:
    from dockyard.config import resolve_root

    return Path(resolve_root(getattr(ctx.find_root().obj, "root", None)))


DAEMON = "Error response from daemon: "  # docker's prefix for what its daemon refused


def fail(message: str, code: int = 1, prefix: str = "Error: ") -> NoReturn:
    click.echo(prefix + message, err=True)
    sys.exit(code)


def each(refs: Iterable[str], action: Callable[[str], object], echo: bool = True, prefix: str = DAEMON,
         not_found: str = DAEMON) -> list[str]:
    """Docker's way with several containers: act on each, print it, report errors; the failed ones
    (exit 1 at the end unless the caller wants the list)."""
    from dockyard.errors import NotFound

    failed = []
    for ref in refs:
        try:
            action(ref)
        except DockyardError as exc:
            click.echo((not_found if isinstance(exc, NotFound) else prefix) + str(exc), err=True)
            failed.append(ref)
            continue
        if echo:
            click.echo(ref)
    return failed


def each_or_exit(refs: Iterable[str], action: Callable[[str], object], echo: bool = True,
                 not_found: str = DAEMON) -> None:
    if each(refs, action, echo, not_found=not_found):
        sys.exit(1)


# -- create / run -d --------------------------------------------------------------------------------

def create_container(ctx: click.Context, options: Any, *, name: str, rm: bool, restart: str,
                     stop_signal: str, stop_timeout: int | None, limits: dict[str, int] | None = None,
                     health: dict[str, Any] | None = None, init: bool = False,
                     ulimits: list[dict[str, Any]] | None = None, attach_stdin: bool = False,
                     attach_output: bool = False) -> str:
    """Create a container for ``options`` (a RunOptions), pulling a missing image; its id."""
    from dockyard.client import Client
    from dockyard.containers import lifecycle
    from dockyard.errors import NotFound

    client = Client(getattr(ctx.find_root().obj, "root", None))
    try:
        try:
            client.resolve(options.image)
        except NotFound:
            click.echo(f"Unable to find image '{options.image}' locally", err=True)

        def pull(ref: str) -> str:
            return str(client.pull(ref).image_id)

        rec = lifecycle.create(client.root, options, name=name, restart=restart, auto_remove=rm,
                               stop_signal=stop_signal, stop_timeout=stop_timeout, limits=limits, pull=pull,
                               healthcheck=health, init=init, ulimits=ulimits or [],
                               attach_stdin=attach_stdin, attach_output=attach_output)
    except ExecutionError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except DockyardError as exc:
        click.echo(f"dockyard: Error: {exc}", err=True)
        sys.exit(125)
    finally:
        client.close()
    return rec.id


def run_detached(ctx: click.Context, options: Any, *, name: str, rm: bool, restart: str, stop_signal: str,
                 stop_timeout: int | None, limits: dict[str, int] | None = None,
                 health: dict[str, Any] | None = None, init: bool = False,
                 ulimits: list[dict[str, Any]] | None = None) -> None:
    """``run -d``: create, start, print the id; a process that cannot start exits 125/126/127."""
    from dockyard.containers import lifecycle

    cid = create_container(ctx, options, name=name, rm=rm, restart=restart, stop_signal=stop_signal,
                           stop_timeout=stop_timeout, limits=limits, health=health, init=init,
                           ulimits=ulimits)
    click.echo(cid)  # as docker: the id even when the start fails (the container stays, Created)
    try:
        lifecycle.start(store_root(ctx), cid)
    except ExecutionError as exc:
        click.echo(f"dockyard: Error response from daemon: {exc}", err=True)
        sys.exit(exc.exit_code)


def _make_create_cmd() -> click.Command:
    from dockyard.cli.run_cmd import run_cmd

    params = [p for p in run_cmd.params if p.name != "detach"]

    @click.pass_context
    def create(ctx: click.Context, /, **kw: Any) -> None:
        """Create a new container."""
        from dockyard.cli.run_cmd import health_of, limits_of, run_options, ulimits_of

        options = run_options(kw)
        click.echo(create_container(ctx, options, name=kw["name"], rm=kw["rm"], restart=kw["restart"],
                                    stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"],
                                    limits=limits_of(kw), health=health_of(kw), init=kw["init"],
                                    ulimits=ulimits_of(kw), attach_stdin=kw["interactive"],
                                    attach_output=True))

    return click.Command("create", params=params, callback=create, help="Create a new container.",
                         context_settings=dict(run_cmd.context_settings))


create_cmd = _make_create_cmd()


# -- start / stop / kill / restart / rm / rename / wait / prune --------------------------------------

@click.command("start", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.pass_context
def start_cmd(ctx: click.Context, containers: tuple[str, ...], attach: bool, interactive: bool) -> None:
    """Start one or more stopped containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    if attach or interactive:
        if len(containers) > 1:
            fail("you cannot start and attach multiple containers at once")
        from dockyard.cli.attach_cmd import start_attached

        start_attached(root, containers[0], interactive)
        return

    failed = each(containers, lambda ref: lifecycle.start(root, ref))
    if failed:
        fail("failed to start containers: " + ", ".join(failed))


@click.command("stop", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for stop before killing it")
@click.pass_context
def stop_cmd(ctx: click.Context, containers: tuple[str, ...], timeout: int | None) -> None:
    """Stop one or more running containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.stop(root, ref, timeout))


@click.command("kill", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL",
              help='Signal to send to the container (default "KILL")')
@click.pass_context
def kill_cmd(ctx: click.Context, containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.kill(root, ref, sig))


@click.command("restart", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait for stop before killing it")
@click.pass_context
def restart_cmd(ctx: click.Context, containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart one or more containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.restart(root, ref, timeout))


@click.command("rm", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.pass_context
def rm_cmd(ctx: click.Context, containers: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove one or more containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.remove(root, ref, force, volumes), not_found="Error: ")


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename_cmd(ctx: click.Context, container: str, new_name: str) -> None:
    """Rename a container."""
    from dockyard.containers import lifecycle

    try:
        lifecycle.rename(store_root(ctx), container, new_name)
    except DockyardError as exc:
        click.echo(DAEMON + str(exc), err=True)
        fail(f"failed to rename container named {container}")


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait_cmd(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: click.echo(lifecycle.wait(root, ref)), echo=False)


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def prune_cmd(ctx: click.Context, force: bool) -> None:
    """Remove all stopped containers."""
    from dockyard.containers import lifecycle

    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    gone = lifecycle.prune(store_root(ctx))
    if gone:
        click.echo("Deleted Containers:")
        for cid in gone:
            click.echo(cid)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


# -- ps / inspect / logs ----------------------------------------------------------------------------

def _status(st: dict[str, Any], now: float) -> str:
    from dockyard.cli.format import human_duration
    from dockyard.containers.health import status_suffix
    from dockyard.containers.logs import parse_rfc3339

    status = st["Status"]
    if status in ("running", "paused"):
        text = "Up " + human_duration(now - parse_rfc3339(st["StartedAt"]))
        return text + " (Paused)" if st["Paused"] else text + status_suffix(st)
    if status == "restarting":
        return f"Restarting ({st['ExitCode']}) {human_duration(now - parse_rfc3339(st['FinishedAt']))} ago"
    if status == "exited":
        return f"Exited ({st['ExitCode']}) {human_duration(now - parse_rfc3339(st['FinishedAt']))} ago"
    return str({"created": "Created", "dead": "Dead", "removing": "Removal In Progress"}.get(status, status))


def _ports(bindings: dict[str, Any]) -> str:
    out = []
    for port, binds in bindings.items():
        for b in binds or []:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{port}")
    return ", ".join(out)


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def ps_row(rec: Any, *, trunc: bool, now: float, image_size: int | None) -> dict[str, Any]:
    from dockyard.cli.format import created_since, ellipsis, go_time, human_size
    from dockyard.containers.view import published_ports

    cfg = rec.config
    volumes = [m for m in cfg.get("Mounts") or [] if m.get("Type") == "volume"]
    # the daemon's list: arguments with a space in single quotes, nothing else escaped
    command = " ".join([cfg["Path"], *(f"'{a}'" if " " in a else a for a in cfg["Args"])])
    labels = cfg["Config"].get("Labels") or {}
    row = {
        "ID": rec.id[:12] if trunc else rec.id, "Image": cfg["Config"]["Image"],
        "Command": json.dumps(ellipsis(command, 20) if trunc else command, ensure_ascii=False),
        "CreatedAt": go_time(cfg["Created"]), "RunningFor": created_since(cfg["Created"], now),
        "Ports": _ports(published_ports(rec)), "State": rec.state["State"]["Status"],
        "Status": _status(rec.state["State"], now), "Names": rec.name,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()), "Networks": "",
        "Mounts": ",".join(ellipsis(m["Name"], 15) if trunc else m["Name"] for m in volumes),
        "LocalVolumes": str(len(volumes)),
    }
    if image_size is not None:
        upper = _dir_size(rec.path / "rootfs" / "upper")
        row["Size"] = f"{human_size(upper)} (virtual {human_size(upper + image_size)})"
    return row


def _image_sizes(ctx: click.Context, records: Iterable[Any]) -> dict[str, int]:
    from dockyard.cli.image_cmds import make_client

    sizes: dict[str, int] = {}
    with make_client(ctx) as client:
        for rec in records:
            image = rec.config["Image"]
            if image not in sizes:
                try:
                    sizes[image] = int(client.inspect(image).get("Size") or 0)
                except DockyardError:
                    sizes[image] = 0
    return sizes


@click.command("ps", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", default="", help="Pretty-print containers using a Go template")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.option("-n", "--last", type=int, default=-1,
              help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.pass_context
def ps_cmd(ctx: click.Context, all_: bool, quiet: bool, filters: tuple[str, ...], fmt: str, no_trunc: bool,
           size: bool, last: int, latest: bool) -> None:
    """List containers."""
    from dockyard.cli.format import format_rows
    from dockyard.containers import view
    from dockyard.containers.store import ContainerStore
    from dockyard.imageops.filters import parse_filters

    try:
        flt = parse_filters(filters)
        view.check_filters(flt)
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
    records = ContainerStore(store_root(ctx)).all()
    records.sort(key=lambda r: r.config["Created"], reverse=True)
    if latest:
        last = 1
    if last >= 0:
        records = records[:last]
        all_ = True
    if not all_ and "status" not in flt and "exited" not in flt:
        records = [r for r in records if r.state["State"]["Status"] in ("running", "restarting", "paused")]
    records = [r for r in records if view.matches(r, flt)]
    now = time.time()
    if quiet and not fmt:
        for r in records:
            click.echo(r.id if no_trunc else r.id[:12])
        return
    sizes = _image_sizes(ctx, records) if size else {}
    rows = [ps_row(r, trunc=not no_trunc, now=now, image_size=sizes.get(r.config["Image"]) if size else None)
            for r in records]
    if not fmt or fmt == "table":
        fmt = DEFAULT_PS + ("\t{{.Size}}" if size else "")
    try:
        sys.stdout.write(format_rows(fmt, rows, headers=PS_HEADERS))
    except DockyardError as exc:
        fail(str(exc))


def _inspect_objects(ctx: click.Context, refs: Iterable[str], kind: str) -> tuple[list[Any], list[str]]:
    from dockyard.containers import view
    from dockyard.containers.store import ContainerStore

    cs = ContainerStore(store_root(ctx))
    found: list[Any] = []
    errors: list[str] = []
    client = None
    for ref in refs:
        try:
            found.append(view.inspect(cs.find(ref)))
            continue
        except DockyardError as exc:
            if kind == "container":
                errors.append(str(exc))
                continue
        try:
            if client is None:
                from dockyard.cli.image_cmds import make_client
                client = make_client(ctx)
            found.append(client.inspect(ref))
        except DockyardError:
            errors.append(f"No such object: {ref}")
    if client is not None:
        client.close()
    return found, errors


def _inspect(ctx: click.Context, refs: tuple[str, ...], fmt: str | None, kind: str) -> None:
    found, errors = _inspect_objects(ctx, refs, kind)
    print_inspected(found, errors, fmt)


def print_inspected(found: list[Any], errors: list[str], fmt: str | None) -> None:
    """``inspect``'s output: a JSON array (or ``--format`` per object), then each error; exit 1 if any."""
    from dockyard.cli.format import format_rows

    if fmt:
        try:
            sys.stdout.write(format_rows(fmt, found))
        except DockyardError as exc:
            fail(str(exc))
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False))
    for err in errors:
        click.echo(f"Error: {err}", err=True)
    if errors:
        sys.exit(1)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.option("--type", "kind", default="", type=click.Choice(["", "container", "image"]),
              help="Return JSON for specified type")
@click.pass_context
def inspect_cmd(ctx: click.Context, refs: tuple[str, ...], fmt: str | None, size: bool, kind: str) -> None:
    """Return low-level information on containers or images."""
    del size
    if kind == "image":
        from dockyard.cli.image_cmds import inspect_cmd as image_inspect_cmd

        ctx.invoke(image_inspect_cmd, images=refs, fmt=fmt)
        return
    _inspect(ctx, refs, fmt, kind or "any")


@click.command("inspect", context_settings=CONTEXT)
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.pass_context
def container_inspect_cmd(ctx: click.Context, refs: tuple[str, ...], fmt: str | None, size: bool) -> None:
    """Display detailed information on one or more containers."""
    del size
    _inspect(ctx, refs, fmt, "container")


def _stream(rec: Any, offset: int, *, timestamps: bool, follow: bool, since: float | None = None,
            until: float | None = None, tail: int | None = None) -> None:
    from dockyard.containers import logs
    from dockyard.containers.store import ContainerStore, monitor_alive

    cs = ContainerStore(rec.path.parent.parent)

    def show(entry: Any) -> None:
        out = sys.stdout if entry.stream == "stdout" else sys.stderr
        out.write((entry.time + " " if timestamps else "") + entry.text)
        out.flush()

    entries, offset = logs.read_entries(rec.log_path, offset)
    for entry in logs.select(entries, since=since, until=until, tail=tail):
        show(entry)
    if not follow:
        return

    def going() -> bool:
        try:
            current = cs.reload(rec)
        except DockyardError:
            return False
        st = current.state["State"]
        return bool(st["Running"] or st["Restarting"] or monitor_alive(current.state))

    for entry in logs.follow(rec.log_path, offset, going):
        if until is None or logs.parse_rfc3339(entry.time) <= until:
            show(entry)


@click.command("logs", context_settings=CONTEXT)
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", default="",
              help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
@click.option("--until", default="",
              help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
@click.option("-n", "--tail", default="all",
              help='Number of lines to show from the end of the logs (default "all")')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.pass_context
def logs_cmd(ctx: click.Context, container: str, follow: bool, since: str, until: str, tail: str,
             timestamps: bool, details: bool) -> None:
    """Fetch the logs of a container."""
    from dockyard.containers.store import ContainerStore
    from dockyard.imageops.filters import parse_timestamp

    del details
    try:
        rec = ContainerStore(store_root(ctx)).find(container)
        now = time.time()
        since_t = parse_timestamp(since, now) if since else None
        until_t = parse_timestamp(until, now) if until else None
    except DockyardError as exc:
        fail(str(exc))
        return
    tail_n = None if tail == "all" or not tail.lstrip("-").isdigit() or int(tail) < 0 else int(tail)
    try:
        _stream(rec, 0, timestamps=timestamps, follow=follow, since=since_t, until=until_t, tail=tail_n)
    except KeyboardInterrupt:
        pass


class _ContainerGroup(click.Group):
    """``container ...``: its commands here, and those of other modules imported on first use."""

    ELSEWHERE: ClassVar[dict[str, str]] = {
        **{name: f"dockyard.cli.file_cmds:{name}_cmd" for name in ("commit", "cp", "diff", "export")},
        "attach": "dockyard.cli.attach_cmd:attach_cmd"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.ELSEWHERE))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.ELSEWHERE and cmd_name not in self.commands:
            import importlib

            module, _, attr = self.ELSEWHERE[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return self.commands.get(cmd_name)


@click.group("container", cls=_ContainerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def container_group(ctx: click.Context) -> None:
    """Manage containers."""
    from dockyard.cli.group import enter_rootless

    enter_rootless(ctx.invoked_subcommand)


for _cmd, _name in ((create_cmd, "create"), (start_cmd, "start"), (stop_cmd, "stop"), (kill_cmd, "kill"),
                    (restart_cmd, "restart"), (rm_cmd, "rm"), (rename_cmd, "rename"), (wait_cmd, "wait"),
                    (prune_cmd, "prune"), (ps_cmd, "ls"), (container_inspect_cmd, "inspect"),
                    (logs_cmd, "logs")):
    container_group.add_command(_cmd, _name)


@click.command("exec", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables")
@click.option("--env-file", "env_files", multiple=True, help="Read in a file of environment variables")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.pass_context
def exec_cmd(ctx: click.Context, container: str, command: tuple[str, ...], detach: bool, env: tuple[str, ...],
             env_files: tuple[str, ...], interactive: bool, tty: bool, user: str | None,
             workdir: str) -> None:
    """Run a command in a running container."""
    import contextlib

    from dockyard.cli.run_cmd import _env_file
    from dockyard.cli.terminal import raw_mode
    from dockyard.containers.execute import exec_in
    from dockyard.errors import NotFound

    if tty and interactive and not sys.stdin.isatty():
        click.echo("the input device is not a TTY", err=True)
        sys.exit(1)
    all_env = [e for path in env_files for e in _env_file(path)] + list(env)
    if detach:
        interactive = tty = False
    raw = raw_mode(0) if tty and interactive else contextlib.nullcontext()
    try:
        with raw:
            code = exec_in(store_root(ctx), container, list(command), env=all_env, user=user, workdir=workdir,
                           tty=tty, interactive=interactive)
    except ExecutionError as exc:
        click.echo(f"OCI runtime exec failed: exec failed: {exc}: unknown", err=True)
        sys.exit(126)  # docker exec: 126 for any program that cannot start, found or not
    except NotFound as exc:
        fail(str(exc))
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
    sys.exit(code)


STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
DEFAULT_STATS = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                 "{{.BlockIO}}\t{{.PIDs}}")


def _stats_rows(records: list[Any], refs: tuple[str, ...], interval: float) -> list[dict[str, str]]:
    from dockyard.cli.format import bytes_size, human_size
    from dockyard.containers import cgroups

    first = {r.id: cgroups.usage(r.id) for r in records}
    sys_first = cgroups.system_cpu_ns()
    time.sleep(interval)  # CPU % is a rate: two samples, as docker's precpu/cpu
    sys_delta = cgroups.system_cpu_ns() - sys_first
    cpus = os.cpu_count() or 1
    rows = []
    for index, rec in enumerate(records):
        now = cgroups.usage(rec.id)
        running = rec.state["State"]["Running"]
        cpu = 0.0
        if sys_delta > 0 and running:
            cpu = (now.cpu_ns - first[rec.id].cpu_ns) / sys_delta * cpus * 100
        rx, tx = cgroups.network_io(int(rec.state["State"]["Pid"])) if running else (0, 0)
        used, limit = (now.memory, now.memory_limit) if running else (0, 0)
        mem_pct = used / limit * 100 if limit else 0.0
        rows.append({
            "Container": refs[index] if refs else rec.id[:12], "ID": rec.id[:12], "Name": rec.name,
            "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
            "MemPerc": f"{mem_pct:.2f}%", "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(now.block_read)} / {human_size(now.block_write)}",
            "PIDs": str(now.pids if running else 0),
        })
    return rows


@click.command("stats", context_settings=CONTEXT)
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--format", "fmt", default="", help="Pretty-print images using a Go template")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.pass_context
def stats_cmd(ctx: click.Context, containers: tuple[str, ...], all_: bool, fmt: str, no_stream: bool,
              no_trunc: bool) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    from dockyard.cli.format import format_rows
    from dockyard.containers.store import ContainerStore

    del no_trunc
    cs = ContainerStore(store_root(ctx))
    try:
        if containers:
            records = [cs.find(ref) for ref in containers]
        else:
            records = [r for r in cs.all() if all_ or r.state["State"]["Running"]]
    except DockyardError as exc:
        fail(str(exc))
        return
    fmt = fmt or DEFAULT_STATS
    try:
        while True:
            records = [cs.reload(r) for r in records]
            text = format_rows(fmt, _stats_rows(records, containers, 1.0 if no_stream else 0.5),
                               headers=STATS_HEADERS)
            if no_stream:
                sys.stdout.write(text)
                return
            sys.stdout.write("\x1b[2J\x1b[H" + text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return
    except DockyardError as exc:
        fail(str(exc))


@click.command("top", context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top_cmd(ctx: click.Context, container: str, ps_options: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    import subprocess

    from dockyard.containers import cgroups
    from dockyard.containers.store import ContainerStore

    try:
        rec = ContainerStore(store_root(ctx)).find(container)
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    if not rec.state["State"]["Running"]:
        fail(f"Container {rec.id} is not running", prefix=DAEMON)
    pids = set(cgroups.pids(rec.id)) or {int(rec.state["State"]["Pid"])}
    out = subprocess.run(["ps", *(ps_options or ("-ef",))], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        fail(f"ps: {out.stderr.strip()}", prefix=DAEMON)
    lines = out.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        fail("Couldn't find PID field in ps output", prefix=DAEMON)
    col = header.index("PID")
    rows = [line.split(None, len(header) - 1) for line in lines[1:]]
    chosen = [r for r in rows if len(r) > col and r[col].isdigit() and int(r[col]) in pids]
    click.echo(tabulate_rows([header, *chosen]), nl=False)


def tabulate_rows(rows: list[list[str]]) -> str:
    from dockyard.cli.format import tabwrite

    return tabwrite("".join("\t".join(r) + "\n" for r in rows))


@click.command("port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port_cmd(ctx: click.Context, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from dockyard.containers.store import ContainerStore
    from dockyard.containers.view import published_ports

    try:
        rec = ContainerStore(store_root(ctx)).find(container)
    except DockyardError as exc:
        fail(str(exc))
        return
    bindings = published_ports(rec)
    wanted = None
    if private_port:
        wanted = private_port if "/" in private_port else private_port + "/tcp"
    shown = False
    for port, binds in bindings.items():
        if wanted and port != wanted:
            continue
        for b in binds or []:
            where = f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}"
            click.echo(where if wanted else f"{port} -> {where}")
            shown = True
    if wanted and not shown:
        fail(f"No public port '{private_port}' published for {container}")  # as typed, as docker


for _cmd, _name in ((exec_cmd, "exec"), (stats_cmd, "stats"), (top_cmd, "top"), (port_cmd, "port")):
    container_group.add_command(_cmd, _name)


@click.command("pause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause_cmd(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.pause(root, ref, True))


@click.command("unpause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause_cmd(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    from dockyard.containers import lifecycle

    root = store_root(ctx)
    each_or_exit(containers, lambda ref: lifecycle.pause(root, ref, False))


container_group.add_command(pause_cmd, "pause")
container_group.add_command(unpause_cmd, "unpause")
