"""``dockyard builder prune``: docker's build cache command."""

from __future__ import annotations

import click

from dockyard.errors import InvalidArgument

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(value: str) -> int:
    """``512MB``, ``2g``, ``1GiB`` -> bytes (docker's RAMInBytes accepts both families)."""
    text = value.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):]
    if not number or unit not in _UNITS:
        raise InvalidArgument(f"invalid size: '{value}'")
    return int(float(number) * _UNITS[unit])


@click.group("builder")
def builder_group() -> None:
    """Manage builds."""


@builder_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused build cache, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "until=24h")')
@click.option("--keep-storage", default="", help="Amount of disk space to keep for cache.")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, force: bool, filters: tuple[str, ...],
              keep_storage: str) -> None:
    """Remove build cache."""
    from dockyard.builder.prune import prune_cache
    from dockyard.cli.format import human_size
    from dockyard.client import Client
    from dockyard.imageops.filters import cache_until, parse_filters

    until = cache_until(parse_filters(filters))

    if not force:
        click.echo("WARNING! This will remove all dangling build cache. "
                   "Are you sure you want to continue? [y/N] ", nl=False)
        if input().strip().lower() not in ("y", "yes"):
            return
    keep = parse_size(keep_storage) if keep_storage else 0
    client = Client(getattr(ctx.find_root().obj, "root", None))
    result = prune_cache(client.store, all=all_, keep_storage=keep, until=until)
    if result.removed:
        click.echo("Deleted build cache objects:")
        for key in result.removed:
            click.echo(key.removeprefix("sha256:")[:25])
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.reclaimed)}")


@builder_group.command("du")
@click.option("--verbose", is_flag=True, help="Provide a more verbose output (what made each record).")
@click.pass_context
def du_cmd(ctx: click.Context, verbose: bool) -> None:
    """Disk usage of the build cache (as ``docker buildx du``)."""
    import time

    from dockyard.builder.prune import cache_usage
    from dockyard.cli.format import human_duration, human_size, tabwrite
    from dockyard.client import Client

    client = Client(getattr(ctx.find_root().obj, "root", None))
    rows = cache_usage(client.store)
    now = time.time()
    lines = ["ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED" + ("\tDESCRIPTION" if verbose else "")]
    for row in rows:
        ago = f"{human_duration(max(0.0, now - row.last_used))} ago" if row.last_used else ""
        line = f"{row.id[:25]}\t{str(row.reclaimable).lower()}\t{human_size(row.size)}\t{ago}"
        lines.append(line + (f"\t{row.description}" if verbose else ""))
    click.echo(tabwrite("\n".join(lines) + "\n", minwidth=0, padding=2), nl=False)
    total = sum(r.size for r in rows)
    reclaim = sum(r.size for r in rows if r.reclaimable)
    click.echo(tabwrite(f"Reclaimable:\t{human_size(reclaim)}\nTotal:\t{human_size(total)}\n", padding=1),
               nl=False)
