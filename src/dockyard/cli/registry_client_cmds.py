"""``pull``, ``push``, ``login`` and ``logout``, with docker's wording and per-layer progress."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from dockyard.errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    from dockyard.cli.progress_render import Renderer
    from dockyard.client import Client

HUB_SERVER = "https://index.docker.io/v1/"


def _client(ctx: click.Context, progress: Renderer | None = None) -> Client:
    from dockyard.client import Client

    return Client(getattr(ctx.obj, "root", None), progress=progress)


def _progress(quiet: bool) -> Renderer:
    """docker's per-layer display on stdout: live bars on a terminal, status lines otherwise."""
    from dockyard.cli.progress_render import make_renderer

    return make_renderer("quiet" if quiet else "auto", sys.stdout)


@click.command("pull")
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("--platform", default=None, metavar="OS/ARCH[,OS/ARCH]",
              help="Set platform if server is multi-platform capable (several: one tag holds them all).")
@click.option("--all-platforms", is_flag=True, help="Pull every platform of a multi-platform image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True)
@click.pass_context
def pull_cmd(ctx: click.Context, name: str, all_tags: bool, platform: str | None, all_platforms: bool,
             quiet: bool, disable_content_trust: bool) -> None:
    """Download an image from a registry."""
    from dockyard.oci.platform import parse as parse_platform
    from dockyard.oci.reference import parse_normalized

    ref = parse_normalized(name)
    several = [p.strip() for p in (platform or "").split(",") if p.strip()]
    for p in several:
        parse_platform(p)
    if all_platforms and platform:
        raise InvalidArgument("--platform and --all-platforms cannot be used together")
    if all_tags and (all_platforms or len(several) > 1):
        raise InvalidArgument("--all-tags takes one --platform")
    if all_tags and (ref.tag is not None or ref.digest is not None):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    echo = (lambda s: None) if quiet else click.echo
    if not all_tags and ref.tag is None and ref.digest is None:
        echo("Using default tag: latest")
        ref = ref.tag_or_latest()
    with _progress(quiet) as render, _client(ctx, render) as client:
        if all_tags:
            results = client.pull_all_tags(str(ref), platform=platform)
        elif all_platforms or len(several) > 1:
            results = client.pull_platforms(str(ref), None if all_platforms else several)[-1:]
        else:
            results = [client.pull(str(ref), platform=platform)]
    for result in results:
        if not all_tags:
            echo(f"Digest: {result.digest}")
        shown = result.reference.familiar()
        status = "Downloaded newer image for" if result.new else "Image is up to date for"
        echo(f"Status: {status} {shown}")
    click.echo(str(ref.name_only()) if all_tags else str(ref))


@click.command("push")
@click.argument("name", metavar="NAME[:TAG]")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default="gzip", show_default=True,
              help="Compression of layers not yet compressed (kept for the next push).")
@click.option("--chunk-size", type=int, default=0, hidden=True, help="Upload in PATCH chunks of this size.")
@click.option("--disable-content-trust", is_flag=True, default=True, hidden=True)
@click.pass_context
def push_cmd(ctx: click.Context, name: str, all_tags: bool, quiet: bool, compression: str, chunk_size: int,
             disable_content_trust: bool) -> None:
    """Upload an image to a registry."""
    from dockyard.oci.reference import parse_normalized

    ref = parse_normalized(name)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    if all_tags and ref.tag is not None:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    echo = (lambda s: None) if quiet else click.echo
    with _client(ctx) as client:
        if all_tags:
            prefix = f"{ref.name_only()}:"
            refs = sorted(t for t, _ in client.store.meta.tags() if t.startswith(prefix))
            if not refs:
                raise InvalidArgument(f"An image does not exist locally with the tag: {ref.familiar_name()}")
        else:
            if ref.tag is None:
                echo("Using default tag: latest")
            refs = [str(ref.tag_or_latest())]
        echo(f"The push refers to repository [{ref.name_only()}]")
        for one in refs:
            with _progress(quiet) as render:
                client.progress = render
                result = client.push(one, compression=compression, chunk_size=chunk_size)
            echo(f"{result.tag}: digest: {result.digest} size: {result.size}")
    if quiet:
        click.echo(str(ref.name_only()) if all_tags else str(ref.tag_or_latest()))


def _server(server: str | None) -> tuple[str, str]:
    """(registry name to contact, name as docker shows it)."""
    from dockyard.registry.client import canonical_host

    if not server:
        return "docker.io", HUB_SERVER
    host = canonical_host(server)
    return host, HUB_SERVER if host == "docker.io" else host


@click.command("login")
@click.argument("server", required=False, metavar="[SERVER]")
@click.option("-u", "--username", default=None, help="Username")
@click.option("-p", "--password", default=None, help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.pass_context
def login_cmd(ctx: click.Context, server: str | None, username: str | None, password: str | None,
              password_stdin: bool) -> None:
    """Log in to a registry (Docker Hub if no server is given); saved in Docker's config.json."""
    from dockyard.registry.auth.dockerconfig import DockerConfig

    if password is not None and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    registry, shown = _server(server)
    config = DockerConfig.load()
    client = _client(ctx)
    if username is None and password is None:
        stored = config.get(registry)
        if stored:
            click.echo("Authenticating with existing credentials...")
            try:
                _verify(client, registry, stored)
                click.echo("Login Succeeded")
                return
            except DockyardError:  # refused or unreachable: ask, as docker does
                pass
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username", default=(stored.username if stored else None) or None)
    if password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True)
    if not username:
        raise InvalidArgument("Error: Non-null Username Required")
    try:
        client.login(registry, username, password)
    except Exception as exc:
        from dockyard.errors import AuthenticationError, RegistryError

        if isinstance(exc, AuthenticationError):
            raise AuthenticationError(f"login to {shown} failed: {exc}") from None
        if isinstance(exc, RegistryError):
            raise RegistryError(f"login to {shown} failed: {exc}") from None
        raise
    if not DockerConfig.load().helper_for(registry):
        click.echo(f"WARNING! Your password will be stored unencrypted in {config.path}.", err=True)
        click.echo("Configure a credential helper to remove this warning. See", err=True)
        click.echo("https://docs.docker.com/engine/reference/commandline/login/#credentials-store", err=True)
        click.echo("", err=True)
    click.echo("Login Succeeded")


def _verify(client: Client, registry: str, creds: object) -> None:
    from dockyard.registry.auth import Credentials
    from dockyard.registry.client import RegistryClient

    assert isinstance(creds, Credentials)
    with RegistryClient(client.registry_client().options, credentials=lambda _: creds) as rc:
        rc.session(registry).login()


@click.command("logout")
@click.argument("server", required=False, metavar="[SERVER]")
@click.pass_context
def logout_cmd(ctx: click.Context, server: str | None) -> None:
    """Log out from a registry (Docker Hub if no server is given)."""
    registry, shown = _server(server)
    if _client(ctx).logout(registry):
        click.echo(f"Removing login credentials for {shown}")
    else:
        click.echo(f"Not logged in to {shown}")
