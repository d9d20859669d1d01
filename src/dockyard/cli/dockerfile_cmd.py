"""``dockyard dockerfile``: look at a Dockerfile the way the builder reads it."""

from __future__ import annotations

import json
import os
import sys

import click

from dockyard.dockerfile import parse
from dockyard.errors import NotFound


def _read(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "-"
    try:
        with open(path, "rb") as fh:
            return fh.read(), path
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotFound(f"{path}: is a directory, not a Dockerfile") from None


@click.group("dockerfile")
def dockerfile() -> None:
    """Inspect Dockerfiles (parse them exactly as the builder does)."""


@dockerfile.command("parse")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, metavar="FILE",
              help="Dockerfile to read ('-' for stdin).")
@click.option("--format", "fmt", type=click.Choice(["dump", "json"]), default="dump", show_default=True,
              help="dump: BuildKit's syntax tree dump; json: one object per instruction.")
def parse_cmd(path: str, fmt: str) -> None:
    """Print the syntax tree of a Dockerfile."""
    data, name = _read(path)
    result = parse(data, filename=name)
    for warning in result.warnings:
        click.echo(f"WARNING: {name}:{warning.line}: {warning.short}", err=True)
    if fmt == "dump":
        click.echo(result.dump())
    else:
        click.echo(json.dumps([node.to_json() for node in result.children], indent=2, ensure_ascii=False))


@dockerfile.command("stages")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, metavar="FILE",
              help="Dockerfile to read ('-' for stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE",
              help="Set a build-time variable (as docker build does).")
@click.option("--platform", "platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="Target platform (default: this machine's).")
@click.option("--target", default=None, metavar="STAGE", help="Show only the stages this one needs.")
def stages_cmd(path: str, build_args: tuple[str, ...], platform: str | None, target: str | None) -> None:
    """List the build stages with ARGs resolved: index, name, base, platform, stages needed."""
    from dockyard.dockerfile import Platform, needed_stages, parse_stages

    args: dict[str, str] = {}
    for item in build_args:
        key, eq, value = item.partition("=")
        if not eq:
            # docker build takes the value from the environment when only a name is given
            env_value = os.environ.get(key)
            if env_value is None:
                continue
            value = env_value
        args[key] = value
    data, name = _read(path)
    target_platform = Platform.parse(platform) if platform else None
    plan = parse_stages(parse(data, filename=name), args, target_platform=target_platform)
    stages = plan.stages if target is None else needed_stages(plan, plan.stage(target))
    for st in stages:
        deps = ",".join(str(d) for d in sorted(st.deps)) or "-"
        click.echo(f"{st.index}\t{st.name or '-'}\t{st.base_name}\t{st.platform or '-'}\t{deps}")
    warning = plan.unused_args_warning()
    if warning:
        click.echo(warning, err=True)
