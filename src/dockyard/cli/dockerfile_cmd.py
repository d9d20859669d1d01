"""``dockyard dockerfile``: look at a Dockerfile the way the builder reads it."""

from __future__ import annotations

import json
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
