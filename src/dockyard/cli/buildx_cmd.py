"""``dockyard buildx``: the buildx lines of Docker's guides, run unchanged on dockyard.

Every build runs in this process, for any platform qemu can run; ``create``/``use``/``rm``/
``inspect``/``ls`` keep builder instances (``builder.instances``) for what they mean to a build's
result (``--builder``, ``--load``); ``build`` is ``dockyard build``; ``imagetools`` reads and
combines manifests in a registry.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from dockyard.cli.build_cmd import AttestFlagsCommand, build_cmd
from dockyard.cli.manifest_cmd import imagetools_group
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.builder.instances import Instances

BUILDER = "dockyard"
NO_INSTANCE = ("dockyard needs no builder instance: builds run in-process for every platform "
               "(foreign ones under qemu); the name is kept for --builder and buildx use")
NO_OUTPUT = ("WARNING: No output specified with {driver} driver. Build result will only remain in the build "
             "cache. To push result image into registry use --push or to load image into docker use --load")
MANIFEST_LISTS = "ERROR: docker exporter does not currently support exporting manifest lists"


def _instances(ctx: click.Context) -> Instances:
    from dockyard.builder.instances import load
    from dockyard.config import resolve_root

    return load(resolve_root(getattr(ctx.find_root().obj, "root", None)))


def _fail(exc: DockyardError) -> NoReturn:
    click.echo(f"ERROR: {exc}", err=True)
    sys.exit(1)


@click.group("buildx", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--builder", default="", envvar="BUILDX_BUILDER",
              help="Override the configured builder instance")
@click.pass_context
def buildx_group(ctx: click.Context, builder: str) -> None:
    """Docker Buildx's commands (builds run in dockyard itself)."""
    ctx.meta["buildx.builder"] = builder


@buildx_group.command("build", params=[*build_cmd.params,
                                       click.Option(["--load"], is_flag=True,
                                                    help='Shorthand for "--output=type=docker"'),
                                       click.Option(["--builder"], default="",
                                                    help="Override the configured builder instance")],
                      cls=AttestFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def buildx_build(ctx: click.Context, /, load: bool, builder: str, **kwargs: Any) -> None:
    """Start a build (``dockyard build``). The default builder loads the result into the image
    store; a builder made by ``buildx create`` does so only with ``--load``."""
    from dockyard.builder.multiplatform import split_platforms

    try:
        instance = _instances(ctx).get(builder or ctx.meta.get("buildx.builder", ""))
        several = len(split_platforms(kwargs["platform"])) > 1 if kwargs["platform"] else False
    except DockyardError as exc:
        _fail(exc)
    if load and several:
        # As buildx with the docker exporter (Docker 20.10's store): an index cannot be loaded.
        click.echo(MANIFEST_LISTS, err=True)
        sys.exit(1)
    if not (load or instance.loads_by_default):
        if not kwargs["push"] and not kwargs["outputs"]:
            click.echo(NO_OUTPUT.format(driver=instance.driver), err=True)
        if not kwargs["push"]:
            kwargs["tags"] = ()  # built into the cache only: no name in the image store
    ctx.invoke(build_cmd, **kwargs)


@buildx_group.command("create")
@click.argument("context", required=False)
@click.option("--use", is_flag=True, help="Set the current builder instance")
@click.option("--name", default="", help="Builder instance name")
@click.option("--driver", default="",
              help='Driver to use (available: "docker", "docker-container", "kubernetes", "remote")')
@click.option("--platform", "platforms", multiple=True, help="Fixed platforms for current node (recorded)")
@click.option("--bootstrap", is_flag=True, help="Boot builder after creation (accepted).")
@click.option("--driver-opt", multiple=True, hidden=True)
@click.option("--buildkitd-flags", default="", hidden=True)
@click.pass_context
def buildx_create(ctx: click.Context, context: str | None, use: bool, name: str, driver: str,
                  platforms: tuple[str, ...], bootstrap: bool, driver_opt: tuple[str, ...],
                  buildkitd_flags: str) -> None:
    """Create a new builder instance (recorded; builds still run in-process)."""
    try:
        instances = _instances(ctx)
        made = instances.create(name, driver, [p for v in platforms for p in v.split(",") if p], use=use)
        instances.save()
    except DockyardError as exc:
        _fail(exc)
    click.echo(NO_INSTANCE, err=True)
    click.echo(made.name)


@buildx_group.command("use")
@click.argument("name")
@click.option("--default", is_flag=True, hidden=True)
@click.option("--global", "global_", is_flag=True, hidden=True)
@click.pass_context
def buildx_use(ctx: click.Context, name: str, default: bool, global_: bool) -> None:
    """Set the current builder instance."""
    try:
        instances = _instances(ctx)
        instances.use(name)
        instances.save()
    except DockyardError as exc:
        _fail(exc)


@buildx_group.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all-inactive", is_flag=True, hidden=True)
@click.option("-f", "--force", is_flag=True, hidden=True)
@click.pass_context
def buildx_rm(ctx: click.Context, names: tuple[str, ...], all_inactive: bool, force: bool) -> None:
    """Remove one or more builder instances (the current one when none is named)."""
    try:
        instances = _instances(ctx)
        for name in names or (ctx.meta.get("buildx.builder") or instances.current,):
            instances.remove(name)
            click.echo(f"{name} removed", err=True)
        instances.save()
    except DockyardError as exc:
        _fail(exc)


@buildx_group.command("inspect")
@click.argument("name", required=False)
@click.option("--bootstrap", is_flag=True, help="Ensure builder has booted (accepted).")
@click.pass_context
def buildx_inspect(ctx: click.Context, name: str | None, bootstrap: bool) -> None:
    """Inspect a builder instance (the current one by default)."""
    from dockyard.oci.platform import host

    try:
        instance = _instances(ctx).get(name or ctx.meta.get("buildx.builder", ""))
    except DockyardError as exc:
        _fail(exc)
    shown = BUILDER if instance.name == "default" else instance.name
    platforms = ", ".join(instance.platforms) or _platforms(str(host()))
    click.echo(f"Name:          {shown}\nDriver:        {instance.driver}\n\nNodes:\n"
               f"Name:          {shown}0\nStatus:        running\n"
               f"Platforms:     {platforms}")


@buildx_group.command("ls")
@click.pass_context
def buildx_ls(ctx: click.Context) -> None:
    """List builder instances (the default one: dockyard itself)."""
    from dockyard.oci.platform import host

    instances = _instances(ctx)
    native = _platforms(str(host()))
    rows = [("NAME/NODE", "DRIVER/ENDPOINT", "STATUS", "PLATFORMS")]
    for name, driver, platforms in [(BUILDER, "docker", native),
                                    *((i.name, i.driver, ", ".join(i.platforms) or native)
                                      for i in instances.created.values())]:
        current = instances.current == name or (name == BUILDER and instances.current == "default")
        rows.append((f"{name}{' *' if current else ''}", driver, "", ""))
        rows.append((f"  {name}0", "in-process", "running", platforms))
    width = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
    for r in rows:
        click.echo("".join(f"{c:<{w}}" for c, w in zip(r, width, strict=False)) + r[3])


def _platforms(native: str) -> str:
    """This host's platform, then those binfmt_misc hands to qemu."""
    import os

    names = {"qemu-aarch64": "linux/arm64", "qemu-x86_64": "linux/amd64", "qemu-arm": "linux/arm/v7",
             "qemu-riscv64": "linux/riscv64", "qemu-ppc64le": "linux/ppc64le", "qemu-s390x": "linux/s390x"}
    out = [native]
    for entry, platform in names.items():
        if os.path.exists(f"/proc/sys/fs/binfmt_misc/{entry}") and platform not in out:
            out.append(platform)
    return ", ".join(out)


buildx_group.add_command(imagetools_group)
