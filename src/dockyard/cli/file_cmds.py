"""``cp``, ``diff``, ``export`` and ``commit``: a container's files, with Docker 20.10's flags and texts."""

from __future__ import annotations

import os
import sys

import click

from dockyard.cli.container_cmds import DAEMON, fail, store_root
from dockyard.errors import Conflict, DockyardError, NotFound

CONTEXT = {"help_option_names": ["--help"]}


def _split(arg: str) -> tuple[str, str] | None:
    """``CONTAINER:PATH`` as (container, path); None for a local path (one with a / before any colon,
    as Docker reads it)."""
    if arg.startswith("/") or arg.startswith("."):
        return None
    name, sep, path = arg.partition(":")
    if not sep or "/" in name:
        return None
    return name, path


@click.command("cp", context_settings=CONTEXT)
@click.argument("source")
@click.argument("dest")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", "follow", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.pass_context
def cp_cmd(ctx: click.Context, source: str, dest: str, archive: bool, follow: bool) -> None:
    """Copy files/folders between a container and the local filesystem."""
    from dockyard.containers import files

    src, dst = _split(source), _split(dest)
    if src and dst:
        fail("copying between containers is not supported", prefix="")
    if not src and not dst:
        fail("must specify at least one container source", prefix="")
    root = store_root(ctx)
    try:
        if src:
            if dest == "-":
                if sys.stdout.isatty():
                    fail("cowardly refusing to save to a terminal. Use the -o flag or redirect", prefix="")
                sys.stdout.flush()
                files.copy_from(root, src[0], src[1], dest, follow=follow, out=1)
            else:
                files.copy_from(root, src[0], src[1], dest, follow=follow)
        elif dst:
            if source == "-":
                files.copy_to(root, dst[0], "-", dst[1], archive=archive, stdin=sys.stdin.buffer)
            else:
                files.copy_to(root, dst[0], source, dst[1], archive=archive, follow=follow)
    except NotFound as exc:  # Docker 20.10's texts: "No such container:path: CONTAINER:PATH"
        fail(str(exc))
    except Conflict as exc:  # what Docker's daemon refuses
        fail(str(exc), prefix=DAEMON)
    except DockyardError as exc:  # what Docker's CLI refuses
        fail(str(exc), prefix="")


@click.command("diff", context_settings=CONTEXT)
@click.argument("container")
@click.pass_context
def diff_cmd(ctx: click.Context, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    from dockyard.containers import files

    try:
        found = files.changes(store_root(ctx), container)
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    for kind, path in found:
        click.echo(f"{kind} {path}")


@click.command("export", context_settings=CONTEXT)
@click.argument("container")
@click.option("-o", "--output", default="", help="Write to a file, instead of STDOUT")
@click.pass_context
def export_cmd(ctx: click.Context, container: str, output: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from dockyard.containers import files

    if not output and sys.stdout.isatty():
        fail("cowardly refusing to save to a terminal. Use the -o flag or redirect", prefix="")
    try:
        if output:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                files.export(store_root(ctx), container, fd)
            finally:
                os.close(fd)
        else:
            sys.stdout.flush()
            files.export(store_root(ctx), container, 1)
    except OSError as exc:
        fail(f"failed to export container: {exc.strerror}")
    except NotFound as exc:
        fail(str(exc), prefix=DAEMON)
    except DockyardError as exc:
        fail(str(exc))


@click.command("commit", context_settings=CONTEXT)
@click.argument("container")
@click.argument("repository", required=False, default="")
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause", type=bool, default=True, help="Pause container during commit (default true)")
@click.pass_context
def commit_cmd(ctx: click.Context, container: str, repository: str, author: str, changes: tuple[str, ...],
               message: str, pause: bool) -> None:
    """Create a new image from a container's changes."""
    from dockyard.containers.commit import commit

    try:
        image = commit(store_root(ctx), container, repository, message=message, author=author,
                       changes=changes, pause=pause)
    except DockyardError as exc:
        fail(str(exc), prefix=DAEMON)
        return
    click.echo(str(image.id))
