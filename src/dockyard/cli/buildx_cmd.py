"""``dockyard buildx``: the buildx lines of Docker's guides, run unchanged on dockyard.

There is no builder instance to create or select (every build runs in this process, for any
platform qemu can run), so ``create``/``use``/``rm``/``inspect``/``ls`` are accepted and say so;
``build`` is ``dockyard build``; ``imagetools`` reads and combines manifests in a registry.
"""

from __future__ import annotations

from typing import Any

import click

from dockyard.cli.build_cmd import AttestFlagsCommand, build_cmd
from dockyard.cli.manifest_cmd import imagetools_group

BUILDER = "dockyard"
NO_INSTANCE = ("dockyard needs no builder instance: builds run in-process for every platform "
               "(foreign ones under qemu), so there is nothing to create or select")


@click.group("buildx", context_settings={"help_option_names": ["-h", "--help"]})
def buildx_group() -> None:
    """Docker Buildx's commands (builds run in dockyard itself)."""


@buildx_group.command("build", params=[*build_cmd.params,
                                       click.Option(["--load"], is_flag=True,
                                                    help="Load the result into the store (always done)."),
                                       click.Option(["--builder"], default="", help="Ignored: no builders.")],
                      cls=AttestFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def buildx_build(ctx: click.Context, /, load: bool, builder: str, **kwargs: Any) -> None:
    """Start a build (``dockyard build``; the image always lands in the local store)."""
    ctx.invoke(build_cmd, **kwargs)


@buildx_group.command("create")
@click.argument("context", required=False)
@click.option("--use", is_flag=True, help="Set the current builder instance (accepted).")
@click.option("--name", default="", help="Builder instance name (accepted).")
@click.option("--driver", default="", help="Driver to use (accepted).")
@click.option("--platform", default="", help="Fixed platforms (accepted: any platform builds).")
@click.option("--bootstrap", is_flag=True, help="Boot builder after creation (accepted).")
@click.option("--driver-opt", multiple=True, hidden=True)
@click.option("--buildkitd-flags", default="", hidden=True)
def buildx_create(context: str | None, use: bool, name: str, driver: str, platform: str, bootstrap: bool,
                  driver_opt: tuple[str, ...], buildkitd_flags: str) -> None:
    """Create a builder instance (nothing to do: dockyard builds in-process)."""
    click.echo(NO_INSTANCE, err=True)
    click.echo(name or BUILDER)


@buildx_group.command("use")
@click.argument("name")
@click.option("--default", is_flag=True, hidden=True)
@click.option("--global", "global_", is_flag=True, hidden=True)
def buildx_use(name: str, default: bool, global_: bool) -> None:
    """Set the current builder instance (nothing to do)."""
    click.echo(NO_INSTANCE, err=True)


@buildx_group.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all-inactive", is_flag=True, hidden=True)
@click.option("-f", "--force", is_flag=True, hidden=True)
def buildx_rm(names: tuple[str, ...], all_inactive: bool, force: bool) -> None:
    """Remove a builder instance (nothing to do)."""
    click.echo(NO_INSTANCE, err=True)


@buildx_group.command("inspect")
@click.argument("name", required=False)
@click.option("--bootstrap", is_flag=True, help="Ensure builder has booted (accepted).")
def buildx_inspect(name: str | None, bootstrap: bool) -> None:
    """Inspect the current builder (dockyard itself)."""
    from dockyard.oci.platform import host

    click.echo(f"Name:          {BUILDER}\nDriver:        dockyard (in-process)\n\nNodes:\n"
               f"Name:          {BUILDER}0\nStatus:        running\n"
               f"Platforms:     {_platforms(str(host()))}")


@buildx_group.command("ls")
def buildx_ls() -> None:
    """List builder instances (the one: dockyard)."""
    from dockyard.oci.platform import host

    click.echo(f"NAME/NODE     DRIVER/ENDPOINT   STATUS    PLATFORMS\n{BUILDER} *    dockyard\n"
               f"  {BUILDER}0   in-process        running   {_platforms(str(host()))}")


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
