"""``save``, ``load``, ``import`` and ``bootstrap``: images to and from tar archives and root filesystems."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

import click

from dockyard.errors import DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.client import Client
    from dockyard.progress import ProgressEvent


def _client(ctx: click.Context, *, show_progress: bool = False) -> Client:
    from dockyard.client import Client

    progress = _progress_lines if show_progress and sys.stderr.isatty() else None
    return Client(getattr(ctx.obj, "root", None), progress=progress)


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{size:.3g}GB"


def _progress_lines(event: ProgressEvent) -> None:
    """One line per finished layer on a terminal (docker draws bars; a line is enough here)."""
    from dockyard.progress import Event

    if isinstance(event, Event) and event.status == "done" and event.total:
        name = event.id.split("/")[-1] if event.id.startswith("blobs/") else event.id.split("/")[0]
        click.echo(f"{event.name} {name[:12]}: {_human(event.total)}", err=True)


def _os_error(exc: OSError, path: str) -> DockyardError:
    reason = (exc.strerror or str(exc)).lower()
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"open {path}: {reason}")
    return InvalidArgument(f"open {path}: {reason}")


@contextlib.contextmanager
def _input(path: str | None) -> Iterator[tuple[BinaryIO, str]]:
    if path is None or path == "-":
        yield sys.stdin.buffer, "stdin"
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _os_error(exc, path) from None
    with f:
        yield f, path


class _HttpBody:
    """A readable over a streamed HTTP response body (``read(n)`` may return fewer bytes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if n < 0 or n >= len(self._pending):
            out, self._pending = self._pending, b""
            return out
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


@contextlib.contextmanager
def _url_input(url: str) -> Iterator[tuple[BinaryIO, str]]:
    from dockyard.registry.client import httpclient
    from dockyard.registry.client.trust import verifying_context

    try:
        with httpclient.Client(verify=verifying_context(), timeout=60.0) as client, \
                client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code != 200:
                raise NotFound(f"import {url}: HTTP {response.status_code} {response.reason_phrase}")
            yield _HttpBody(response.iter_raw()), url  # type: ignore[misc]
    except httpclient.TransportError as exc:
        raise InvalidArgument(f"import {url}: {exc}") from None


@click.command("save")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker", show_default=True,
              help="docker: for any docker load (OCI layout + manifest.json); oci: OCI layout only.")
@click.pass_context
def save_cmd(ctx: click.Context, images: tuple[str, ...], output: str | None, fmt: str) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    client = _client(ctx)
    if output is None or output == "-":
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        client.save(list(images), sys.stdout.fileno(), fmt=fmt)
        return
    client.save(list(images), output, fmt=fmt)


@click.command("load")
@click.option("-i", "--input", "input_path", metavar="FILE",
              help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.option("--platform", default=None, metavar="OS/ARCH",
              help="Load only this platform of a multi-platform archive.")
@click.pass_context
def load_cmd(ctx: click.Context, input_path: str | None, quiet: bool, platform: str | None) -> None:
    """Load images from a tar archive (docker save or OCI layout, gzip'd or not) or STDIN."""
    from dockyard.oci.platform import parse as parse_platform

    if platform:
        parse_platform(platform)
    if input_path is None and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    client = _client(ctx, show_progress=not quiet)
    with _input(input_path) as (stream, source):
        results = client.load(stream, source=source, platform=platform)
    names: list[str] = []  # each once: the platforms of a multi-platform image share their name
    for result in results:
        for name, old in result.replaced:
            click.echo(f"The image {name} already exists, renaming the old one with ID {old} to empty string")
        names += [name for name in result.names if name not in names]
        if not result.names:
            click.echo(f"Loaded image ID: {result.image_id}")
    for name in names:
        click.echo(f"Loaded image: {name}")


@click.command("import")
@click.argument("source")
@click.argument("repository", required=False)
@click.option("-c", "--change", "changes", multiple=True, metavar="LINE",
              help="Apply a Dockerfile instruction to the image (CMD ENTRYPOINT ENV EXPOSE LABEL ONBUILD "
                   "USER VOLUME WORKDIR).")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option("--platform", default=None, metavar="OS/ARCH", help="The image platform (default: the host).")
@click.pass_context
def import_cmd(ctx: click.Context, source: str, repository: str | None, changes: tuple[str, ...],
               message: str, platform: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image (SOURCE: a file, or - for STDIN)."""
    from dockyard.imageops.importer import apply_changes
    from dockyard.oci.platform import parse as parse_platform

    if platform:
        parse_platform(platform)
    apply_changes({}, changes)  # bad --change lines fail before reading any input
    client = _client(ctx)
    opener = _url_input if source.startswith(("http://", "https://")) else _input
    with opener(source) as (stream, _):
        rec = client.import_image(stream, source=source, changes=changes, message=message, platform=platform,
                                  names=[repository] if repository else [])
    click.echo(str(rec.id))


@click.command("bootstrap")
@click.argument("what", metavar="busybox|debian:SUITE")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name the image (default busybox:latest or debian:SUITE).")
@click.option("--variant", default="minbase", show_default=True, help="debootstrap variant (debian only).")
@click.option("--platform", default=None, metavar="OS/ARCH", help="Target platform (e.g. linux/arm64).")
@click.option("--mirror", default=None, metavar="URL", help="Debian mirror (debian only).")
@click.option("--progress", "progress", default="auto", show_default=True,
              type=click.Choice(["auto", "plain", "tty", "quiet"]), help="How to show the stages.")
@click.pass_context
def bootstrap_cmd(ctx: click.Context, what: str, tags: tuple[str, ...], variant: str, platform: str | None,
                  mirror: str | None, progress: str) -> None:
    """Make an offline base image from Debian packages: busybox (busybox-static) or debian:SUITE."""
    from dockyard.cli.progress_render import make_renderer
    from dockyard.client import Client

    # The stages go to stderr as build steps do; stdout keeps only the image ID.
    with make_renderer(progress, sys.stderr, phase="Bootstrapping") as renderer:
        client = Client(getattr(ctx.obj, "root", None), progress=renderer)
        rec = client.bootstrap(what, names=tags, variant=variant, platform=platform, mirror=mirror)
    click.echo(str(rec.id))
