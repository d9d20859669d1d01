"""``dockyard registry serve|gc``: run the embedded OCI registry, collect its garbage."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from dockyard.errors import InvalidArgument


@click.group("registry")
def registry() -> None:
    """Run an OCI distribution registry (spec 1.1) on a local directory or an S3 bucket."""


@registry.command("serve")
@click.option("--addr", default="127.0.0.1:5000", show_default=True, metavar="HOST:PORT",
              help="Listen address.")
@click.option("--storage", "storage_dir", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="Storage directory, or an S3 bucket (created when missing; several replicas may share "
                   "one). Default $DOCKYARD_REGISTRY_STORAGE or /var/lib/dockyard-registry.")
@click.option("--s3-config", type=click.Path(dir_okay=False), default=None,
              help="TOML file with endpoint, region, access_key, secret_key, redirect, redirect_ttl, "
                   "part_size (flags win over it; it wins over $AWS_ENDPOINT_URL, $AWS_REGION, "
                   "$AWS_ACCESS_KEY_ID, "
                   "$AWS_SECRET_ACCESS_KEY).")
@click.option("--s3-endpoint", default=None, metavar="URL", help="S3 endpoint (e.g. http://127.0.0.1:8333).")
@click.option("--s3-region", default=None, help="S3 region (default us-east-1).")
@click.option("--s3-access-key", default=None, help="S3 access key id.")
@click.option("--s3-secret-key", default=None, envvar="DOCKYARD_S3_SECRET_KEY",
              help="S3 secret key (or $DOCKYARD_S3_SECRET_KEY).")
@click.option("--redirect/--no-redirect", default=None,
              help="S3: answer blob GETs with a redirect to a pre-signed URL of the object.")
@click.option("--blob-cache", default=None, metavar="DIR[,size=N]",
              help="S3: keep pulled blobs in DIR on this replica's disk (least recently used go first "
                   "past N, default 10GiB), each verified against its digest; the bucket is still asked "
                   "on every GET whether the blob exists and the repository links it. Off by default.")
@click.option("--htpasswd", type=click.Path(dir_okay=False), default=None,
              help="bcrypt htpasswd file: require HTTP Basic auth (or: the users of --token-policy).")
@click.option("--token-policy", type=click.Path(dir_okay=False), default=None,
              help="JSON access policy: issue Bearer tokens at /token (Docker token auth).")
@click.option("--token-service", default="dockyard-registry", show_default=True,
              help="Service name in tokens and challenges.")
@click.option("--token-realm", default="", metavar="URL",
              help="Token endpoint to announce (default: /token on the address the client used).")
@click.option("--token-key", type=click.Path(dir_okay=False), default=None,
              help="PEM EC P-256 key to sign tokens with (default: a new one per process). Replicas behind "
                   "one address need the same key, so a token from one is accepted by all.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None, help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None, help="TLS private key (PEM).")
@click.option("--proxy-remote", default=None, metavar="URL",
              help="Serve as a pull-through cache of this upstream registry (read-only).")
@click.option("--proxy-username", default=None, help="Upstream user name.")
@click.option("--proxy-password", default=None, envvar="DOCKYARD_PROXY_PASSWORD",
              help="Upstream password (or $DOCKYARD_PROXY_PASSWORD).")
@click.option("--proxy-ttl", default=300.0, show_default=True, metavar="SECONDS",
              help="How long a mirrored tag is served before asking upstream again.")
@click.option("--no-delete", is_flag=True, help="Refuse DELETE of manifests, tags and blobs.")
@click.option("--read-only", is_flag=True, help="Refuse every write.")
@click.option("--no-cross-mount", is_flag=True, help="Never mount blobs across repositories (202 instead).")
@click.option("--no-auto-mount", is_flag=True,
              help="Do not mount without ?from= (done only when auth is off, as every blob is public then).")
@click.option("--gc-interval", default=0.0, metavar="SECONDS",
              help="Collect garbage online every SECONDS (0: never).")
@click.option("--gc-grace", default=3600.0, show_default=True, metavar="SECONDS",
              help="Never collect a blob written or referenced less than SECONDS ago.")
@click.option("--upload-ttl", default=86400.0, show_default=True, metavar="SECONDS",
              help="Expire upload sessions abandoned for SECONDS.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request on stderr.")
@click.option("--team", is_flag=True,
              help="Projects, users, roles, robot accounts, policies, webhooks and an audit log, kept in the "
                   "storage (manage them with registry project|user|robot|webhook; tokens at /token).")
@click.option("--ui", is_flag=True, help="Serve the web UI at / (with --team; same port, same accounts).")
def serve(addr: str, storage_dir: str | None, htpasswd: str | None, token_policy: str | None,
          token_service: str, token_realm: str, tls_cert: str | None, tls_key: str | None,
          proxy_remote: str | None, proxy_username: str | None, proxy_password: str | None,
          proxy_ttl: float, no_delete: bool, read_only: bool, no_cross_mount: bool, no_auto_mount: bool,
          gc_interval: float, gc_grace: float,
          upload_ttl: float, access_log: bool, s3_config: str | None, s3_endpoint: str | None,
          s3_region: str | None, s3_access_key: str | None, s3_secret_key: str | None,
          redirect: bool | None, token_key: str | None, team: bool, ui: bool,
          blob_cache: str | None) -> None:
    """Serve the registry until SIGTERM or Ctrl-C (then finish requests in flight and exit)."""
    from dockyard.registry.server import RegistryServer, ServerConfig, parse_addr
    from dockyard.registry.server.server import default_storage

    host, port = parse_addr(addr)
    if proxy_remote and not proxy_remote.startswith(("http://", "https://")):
        raise InvalidArgument(f"--proxy-remote {proxy_remote!r}: expected an http:// or https:// URL")
    config = ServerConfig(
        storage=storage_dir or default_storage(), host=host, port=port, htpasswd=htpasswd,
        token_policy=token_policy, token_service=token_service, token_realm=token_realm,
        tls_cert=tls_cert, tls_key=tls_key,
        proxy_remote=proxy_remote, proxy_username=proxy_username, proxy_password=proxy_password,
        proxy_tag_ttl=proxy_ttl, delete_enabled=not no_delete, read_only=read_only,
        cross_mount=not no_cross_mount, auto_mount=not no_auto_mount,
        gc_interval=gc_interval, gc_grace=gc_grace, upload_ttl=upload_ttl, access_log=access_log,
        s3_config=s3_config, s3_endpoint=s3_endpoint, s3_region=s3_region, s3_access_key=s3_access_key,
        s3_secret_key=s3_secret_key, redirect=redirect, token_key=token_key, team=team, ui=ui,
        blob_cache=blob_cache)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("dockyard.registry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    server = RegistryServer(config)
    asyncio.run(server.serve_forever())


@registry.command("gc")
@click.option("--storage", "storage_dir", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="Storage directory or S3 bucket (default $DOCKYARD_REGISTRY_STORAGE or "
                   "/var/lib/dockyard-registry).")
@click.option("--s3-config", type=click.Path(dir_okay=False), default=None,
              help="S3 settings file, as for serve (else the AWS_* variables).")
@click.option("--dry-run", "-n", is_flag=True, help="Only report what would be deleted.")
@click.option("--grace", default=3600.0, show_default=True, metavar="SECONDS",
              help="Keep blobs written or referenced less than SECONDS ago (protects pushes in flight).")
@click.option("--upload-ttl", default=86400.0, show_default=True, metavar="SECONDS",
              help="Delete upload sessions older than SECONDS.")
def gc(storage_dir: str | None, s3_config: str | None, dry_run: bool, grace: float,
       upload_ttl: float) -> None:
    """Delete blobs no manifest references (safe while the registry is serving)."""
    import os

    from dockyard.errors import StoreError
    from dockyard.registry.server import collect
    from dockyard.registry.server.server import default_storage, open_storage

    storage = open_storage(storage_dir or default_storage(), s3_config=s3_config)
    lease, release = getattr(storage, "lease", None), getattr(storage, "release", None)
    holder = f"gc-cli:{os.uname().nodename}:{os.getpid()}"
    if lease is not None and not lease(holder, 3600):
        raise StoreError("another replica is collecting garbage in this bucket now (its lease holds)")
    try:
        report = collect(storage, grace=grace, upload_ttl=upload_ttl, dry_run=dry_run)
    finally:
        if release is not None:
            release(holder)
    verb = "would delete" if dry_run else "deleted"
    for digest in report.deleted_blobs:
        click.echo(f"{verb} blob {digest}")
    for upload in report.deleted_uploads:
        click.echo(f"{verb} upload {upload}")
    for session in report.swept_data:
        click.echo(f"{verb} the bytes of committed upload {session} (no blob names them)")
    click.echo(f"{len(report.deleted_blobs)} blobs {verb} ({report.freed_bytes} bytes), "
               f"{report.marked} referenced, {report.kept_young} unreferenced but younger than the grace "
               f"period, {len(report.deleted_uploads)} expired uploads")


def _add_team_commands() -> None:
    from .registry_events_cmd import audit, retention, webhook
    from .registry_replication_cmd import replication
    from .registry_team_cmd import project, robot, user

    for group in (project, user, robot, retention, webhook, audit, replication):
        registry.add_command(group)


_add_team_commands()
