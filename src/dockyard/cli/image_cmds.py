"""Image management commands: ``images``, ``image ls|inspect|history|tag|rm|prune``, ``history``,
``tag``, ``rmi``, with docker's flags, columns and exit codes.

Kept light: this module imports neither the registry client, rich nor aiohttp, so ``dockyard images``
starts fast.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.listing import IMAGE_COLUMNS, image_rows, short_id, write_formatted
from dockyard.cli.supplychain_cmds import attestations_cmd
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.client import Client
    from dockyard.imageops.images import DeleteItem, ImageSummary


def make_client(ctx: click.Context) -> Client:
    from dockyard.client import Client

    root = getattr(ctx.find_root().obj, "root", None)
    return Client(root)


def filter_images(client: Client, images: list[ImageSummary], values: Sequence[str],
                  now: float | None = None) -> list[ImageSummary]:
    """Docker's ``images --filter`` (dangling, label, before, since, until, reference)."""
    from dockyard.imageops.filters import image_filter, parse_filters
    from dockyard.imageops.images import parse_created

    def created_of(ref: str) -> float:
        record = client.store.meta.get_image(client.resolve(ref))
        assert record is not None
        return parse_created(record.created)

    flt = image_filter(parse_filters(values), created_of=created_of, now=now)
    kept: list[ImageSummary] = []
    for img in images:
        if not flt.match(created=img.created, labels=img.labels, refs=img.repo_tags):
            continue
        if flt.references:
            img.repo_tags = flt.refs(img.repo_tags)
            img.repo_digests = flt.refs(img.repo_digests)
        kept.append(img)
    return kept


def _images(ctx: click.Context, all_: bool, quiet: bool, digests: bool, no_trunc: bool,
            filters: tuple[str, ...], fmt: str | None, repository: str | None, tree: bool = False) -> None:
    from dockyard.cli.format import IMAGE_HEADERS

    client = make_client(ctx)
    values = list(filters) + ([f"reference={repository}"] if repository else [])
    # dangling=true lists only "heads" (images without children), even with -a, as docker does.
    dangling_only = any(v.replace(" ", "").lower() in ("dangling=true", "dangling=1") for v in values)
    images = client.images(all=all_ and not dangling_only)
    if values:
        images = filter_images(client, images, values)
    if tree:
        from dockyard.cli.image_tree import render_tree

        click.echo(render_tree(client, images), nl=False)
        return
    if quiet:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        cols = list(IMAGE_COLUMNS)
        if digests:
            cols.insert(2, "Digest")
        fmt = "table " + "\t".join("{{." + c + "}}" for c in cols)
    rows = image_rows(images, digests=digests, no_trunc=no_trunc, fields=fmt)
    write_formatted(rows, fmt, IMAGE_HEADERS)


_images_options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("-a", "--all", "all_", is_flag=True,
                 help="Show all images (default hides intermediate images)"),
    click.option("-q", "--quiet", is_flag=True, help="Only show image IDs"),
    click.option("--digests", is_flag=True, help="Show digests"),
    click.option("--no-trunc", is_flag=True, help="Don't truncate output"),
    click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
                 help="Filter output based on conditions provided"),
    click.option("--format", "fmt", default=None, metavar="STRING",
                 help="Format output using a custom template: 'table', 'table TEMPLATE', 'json', "
                      "or TEMPLATE"),
    click.option("--tree", is_flag=True, help="List multi-platform images as a tree"),
    click.argument("repository", required=False),
]


def _with_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_images_options):
        f = option(f)
    return f


@click.command("images")
@_with_options
@click.pass_context
def images_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """List images."""
    _images(ctx, **kw)


@click.command("ls")
@_with_options
@click.pass_context
def ls_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """List images."""
    _images(ctx, **kw)


# -- inspect ------------------------------------------------------------------------------------------

@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, metavar="STRING",
              help="Format output using a custom template")
@click.option("--platform", default="", metavar="OS/ARCH", help="Inspect a specific platform of the image")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, platform: str, images: tuple[str, ...]) -> None:
    """Display detailed information on one or more images."""
    client = make_client(ctx)
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in images:
        try:
            found.append(client.inspect(name, platform))
        except DockyardError as exc:
            errors.append(str(exc))
    if fmt and fmt != "json":
        from dockyard.cli.format import format_rows

        sys.stdout.write(format_rows(fmt, found))
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False) if found else "[]")
    if errors:
        for e in errors:
            click.echo(f"Error: {e}", err=True)
        sys.exit(1)  # not ctx.exit: main() drops the code click returns in non-standalone mode


# -- history ------------------------------------------------------------------------------------------

class _GoBoolFlagCommand(click.Command):
    """Accepts Go's ``-H=false`` / ``--human=false`` spelling of boolean flags, as docker does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        for arg in args:
            m = re.fullmatch(r"(-H|--human)=(.*)", arg)
            if m is None:
                out.append(arg)
                continue
            value = m.group(2).lower()
            if value in ("1", "t", "true"):
                out.append("--human")
            elif value in ("0", "f", "false"):
                out.append("--no-human")
            else:
                raise click.BadParameter(f'invalid argument "{m.group(2)}" for "-H, --human" flag: '
                                         f'strconv.ParseBool: parsing "{m.group(2)}": invalid syntax')
        return super().parse_args(ctx, out)


@click.command("history", cls=_GoBoolFlagCommand)
@click.option("-H", "--human/--no-human", default=True, show_default=True,
              help="Print sizes and dates in human readable format")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", default=None, metavar="STRING", help="Format output using a custom template")
@click.argument("image")
@click.pass_context
def history_cmd(ctx: click.Context, human: bool, no_trunc: bool, quiet: bool, fmt: str | None,
                image: str) -> None:
    """Show the history of an image."""
    from dockyard.cli.format import (
        DEFAULT_HISTORY_TABLE,
        HISTORY_HEADERS,
        created_since,
        history_created_by,
        human_size,
        rfc3339,
    )

    client = make_client(ctx)
    now = time.time()
    rows = []
    for h in client.history(image):
        at = rfc3339(h.created) if h.created > 0 else "0001-01-01T00:00:00Z"
        rows.append({
            "ID": h.id if h.id == "<missing>" else short_id(h.id, no_trunc),
            "CreatedSince": created_since(h.created, now) if human else at,
            "CreatedAt": at,
            "CreatedBy": history_created_by(h.created_by, trunc=not no_trunc),
            "Size": human_size(h.size) if human else str(h.size),
            "Comment": h.comment,
        })
    if quiet:
        fmt = "{{.ID}}"
    write_formatted(rows, fmt or "", HISTORY_HEADERS, DEFAULT_HISTORY_TABLE)


# -- tag, rmi, prune -------------------------------------------------------------------------------------

@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    make_client(ctx).tag(source, target)


def _print_deleted(items: Sequence[DeleteItem], *, prefix_case: str = "title") -> None:
    for item in items:
        if item.untagged:
            click.echo(f"{'Untagged' if prefix_case == 'title' else 'untagged'}: {item.untagged}")
        else:
            click.echo(f"{'Deleted' if prefix_case == 'title' else 'deleted'}: {item.deleted}")


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.option("--platform", default="", metavar="OS/ARCH",
              help="Remove only this platform of a multi-platform image")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rmi_cmd(ctx: click.Context, force: bool, no_prune: bool, platform: str, images: tuple[str, ...]) -> None:
    """Remove one or more images."""
    client = make_client(ctx)
    failed = False
    for name in images:
        try:
            _print_deleted(client.remove(name, force=force, no_prune=no_prune, platform=platform))
        except DockyardError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
    if failed:
        sys.exit(1)  # not ctx.exit: main() drops the code click returns in non-standalone mode


def confirm(message: str, force: bool) -> bool:
    """Docker's prompt: anything but y/Y (or -f) declines."""
    if force:
        return True
    click.echo(f"{message}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "until=<timestamp>")')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused images."""
    from dockyard.imageops.filters import PRUNE_FILTERS, parse_filters

    parsed = parse_filters(filters)
    parsed.validate(PRUNE_FILTERS)
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not confirm(warning, force):
        return
    report = make_client(ctx).prune(all=all_, filters=parsed)
    if report.deleted:
        click.echo("Deleted Images:")
        _print_deleted(report.deleted, prefix_case="lower")
        click.echo("")
    from dockyard.cli.format import human_size

    click.echo(f"Total reclaimed space: {human_size(report.space_reclaimed, 4)}")


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.option("--platform", default="", metavar="OS/ARCH",
              help="Remove only this platform of a multi-platform image")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, no_prune: bool, platform: str, images: tuple[str, ...]) -> None:
    """Remove one or more images."""
    ctx.invoke(rmi_cmd, force=force, no_prune=no_prune, platform=platform, images=images)


# ``image build|import|load|pull|push|save`` are the top-level commands of other modules.
_BORROWED = ("build", "import", "load", "pull", "push", "save")


class _ImageGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from dockyard.cli.main import COMMANDS

        return sorted(set(self.commands) | {n for n in _BORROWED if n in COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in _BORROWED:
            from dockyard.cli.group import cli

            return cli.get_command(ctx, cmd_name)
        return None


@click.group("image", cls=_ImageGroup)
def image_group() -> None:
    """Manage images."""


image_group.add_command(ls_cmd)
image_group.add_command(ls_cmd, "list")
image_group.add_command(inspect_cmd)
image_group.add_command(history_cmd)
image_group.add_command(tag_cmd)
image_group.add_command(rm_cmd)
image_group.add_command(rm_cmd, "remove")
image_group.add_command(prune_cmd)
image_group.add_command(attestations_cmd)
