"""``system df``, ``system prune`` and ``system check``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from dockyard.cli.format import (
    BUILD_CACHE_HEADERS,
    DF_HEADERS,
    IMAGE_HEADERS,
    created_since,
    human_size,
    reclaimable,
)
from dockyard.cli.image_cmds import confirm, make_client
from dockyard.cli.listing import image_rows, tabulate, write_formatted


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.option("--format", "fmt", default=None, metavar="STRING", help="Format output using a custom template")
@click.pass_context
def df_cmd(ctx: click.Context, verbose: bool, fmt: str | None) -> None:
    """Show dockyard disk usage."""
    usage = make_client(ctx).disk_usage()
    # No containers exist in a daemonless store: every image is reclaimable.
    summary = [
        {"Type": "Images", "TotalCount": str(len(usage.images)), "Active": "0",
         "Size": human_size(usage.images_size, 4),
         "Reclaimable": reclaimable(usage.images_size, usage.images_size)},
        {"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Build Cache", "TotalCount": str(usage.build_cache_count), "Active": "0",
         "Size": human_size(usage.build_cache_size, 4), "Reclaimable": human_size(usage.build_cache_size, 4)},
    ]
    if not verbose:
        write_formatted(summary, fmt or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                        "{{.Reclaimable}}", DF_HEADERS)
        return
    now = time.time()
    click.echo("Images space usage:\n")
    rows: list[dict[str, Any]] = []
    for u in usage.images:
        for row in image_rows([u.summary], digests=False, no_trunc=False, now=now):
            row.update({"Size": human_size(u.summary.size, 4), "SharedSize": human_size(u.shared_size, 4),
                        "UniqueSize": human_size(u.unique_size, 4),
                        "Containers": "0"})
            rows.append(row)
    write_formatted(rows, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
                    "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", IMAGE_HEADERS)
    click.echo("\nContainers space usage:\n")
    sys.stdout.write(tabulate([["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED",
                                "STATUS", "NAMES"]]))
    click.echo("\nLocal Volumes space usage:\n")
    sys.stdout.write(tabulate([["VOLUME NAME", "LINKS", "SIZE"]]))
    click.echo(f"\nBuild cache usage: {human_size(usage.build_cache_size, 4)}\n")
    cache = [{"ID": rec.key[:12], "CacheType": rec.kind, "Size": human_size(rec.size, 4),
              "CreatedSince": created_since(rec.created, now),
              "LastUsedSince": created_since(rec.last_used, now),
              "UsageCount": "0", "Shared": "false"}
             for rec in make_client(ctx).store.meta.cache_records()]
    write_formatted(cache, "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                    "{{.UsageCount}}\t{{.Shared}}", BUILD_CACHE_HEADERS)


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "label=<key>=<value>")')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def system_prune_cmd(ctx: click.Context, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused data."""
    from dockyard.imageops.filters import PRUNE_FILTERS, parse_filters

    parsed = parse_filters(filters)
    parsed.validate(PRUNE_FILTERS)
    images = "all images without at least one container associated to them" if all_ else "all dangling images"
    warning = f"WARNING! This will remove:\n  - {images}\n  - all build cache\n"
    if not confirm(warning, force):
        return
    report = make_client(ctx).system_prune(all=all_, filters=parsed)
    if report.images.deleted:
        click.echo("Deleted Images:")
        for item in report.images.deleted:
            click.echo(f"untagged: {item.untagged}" if item.untagged else f"deleted: {item.deleted}")
        click.echo("")
    if report.cache_records_removed:
        click.echo("Deleted build cache objects:")
        for key in report.cache_records_removed:
            click.echo(key)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report.space_reclaimed, 4)}")


@click.command("check")
@click.option("--repair", is_flag=True,
              help="Fix what is broken: quarantine corrupt blobs, fetch lost ones again, drop dead records")
@click.pass_context
def check_cmd(ctx: click.Context, repair: bool) -> None:
    """Verify every blob's digest and every reference in the store."""
    report = make_client(ctx).check(repair=repair)
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for note in report.notes:
        click.echo(f"note: {note}")
    for fixed in report.repaired:
        click.echo(f"repaired: {fixed}")
    for left in report.unrepaired:
        click.echo(f"not repaired: {left}")
    state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    if repair and not report.ok:
        state += f", {len(report.unrepaired)} not repaired" if report.unrepaired else " repaired"
    click.echo(f"checked {report.blobs_checked} blobs and {report.images_checked} images: {state}")
    if report.problems and (not repair or report.unrepaired):
        sys.exit(1)  # not ctx.exit: main() drops the code click returns in non-standalone mode


@click.group("system")
def system_group() -> None:
    """Manage dockyard."""


system_group.add_command(df_cmd)
system_group.add_command(system_prune_cmd)
system_group.add_command(check_cmd)
