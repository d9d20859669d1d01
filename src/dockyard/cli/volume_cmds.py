"""``volume create|ls|inspect|rm|prune`` with Docker 20.10's flags, columns and texts."""

from __future__ import annotations

import sys
from typing import Any

import click

from dockyard.cli.container_cmds import DAEMON, fail, print_inspected, store_root
from dockyard.errors import DockyardError, NotFound

CONTEXT = {"help_option_names": ["--help"]}
HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}
DEFAULT_LS = "table {{.Driver}}\t{{.Name}}"


def _store(ctx: click.Context) -> Any:
    from dockyard.containers.volumes import VolumeStore

    return VolumeStore(store_root(ctx))


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        out[key] = val
    return out


@click.group("volume", context_settings={"help_option_names": ["-h", "--help"]})
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create", context_settings=CONTEXT)
@click.argument("name", required=False, default="")
@click.option("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@click.option("--name", "name_flag", default="", help="Specify volume name")
@click.pass_context
def create_cmd(ctx: click.Context, name: str, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
               name_flag: str) -> None:
    """Create a volume."""
    if name and name_flag and name != name_flag:
        fail('conflicting options: either specify --name or provide positional arg, not both')
    try:
        info = _store(ctx).create(name or name_flag, _pairs(labels), _pairs(opts), driver)
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    click.echo(info["Name"])


@volume_group.command("ls", context_settings=CONTEXT)
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.option("--format", "fmt", default="", help="Pretty-print volumes using a Go template")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.pass_context
def ls_cmd(ctx: click.Context, filters: tuple[str, ...], fmt: str, quiet: bool) -> None:
    """List volumes."""
    from dockyard.cli.format import format_rows
    from dockyard.imageops.filters import parse_filters

    store = _store(ctx)
    try:
        found = store.matching(parse_filters(filters))
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    if quiet and not fmt:
        for info in found:
            click.echo(info["Name"])
        return
    users = store.users()
    rows = [{**info, "Labels": ",".join(f"{k}={v}" for k, v in (info.get("Labels") or {}).items()),
             "Links": "N/A", "Size": "N/A", "_links": len(users.get(info["Name"], []))} for info in found]
    try:
        sys.stdout.write(format_rows(fmt or DEFAULT_LS, rows, headers=HEADERS, default=DEFAULT_LS))
    except DockyardError as exc:
        fail(str(exc))


@volume_group.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template")
@click.pass_context
def inspect_cmd(ctx: click.Context, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more volumes."""
    store = _store(ctx)
    found, errors = [], []
    for name in names:
        try:
            found.append(store.get(name))
        except DockyardError:
            errors.append(f"No such volume: {name}")
    print_inspected(found, errors, fmt)


@volume_group.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.pass_context
def rm_cmd(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    store = _store(ctx)
    failed = False
    for name in names:
        try:
            store.remove(name, force)
        except NotFound:
            click.echo(f"Error: No such volume: {name}", err=True)
            failed = True
            continue
        except DockyardError as exc:
            click.echo(DAEMON + str(exc), err=True)
            failed = True
            continue
        click.echo(name)
    if failed:
        sys.exit(1)


@volume_group.command("prune", context_settings=CONTEXT)
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def prune_cmd(ctx: click.Context, filters: tuple[str, ...], force: bool) -> None:
    """Remove all unused local volumes."""
    from dockyard.cli.format import human_size
    from dockyard.imageops.filters import parse_filters

    if not force and not click.confirm("WARNING! This will remove all local volumes not used by at least one "
                                       "container.\nAre you sure you want to continue?", default=False):
        return
    try:
        gone, freed = _store(ctx).prune(parse_filters(filters))
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    if gone:
        click.echo("Deleted Volumes:")
        for name in gone:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")
