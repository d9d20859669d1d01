"""Running the registry: in-process on a background thread (tests, fixtures) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import InvalidArgument, StoreError
from dockyard.record import record

from . import blobcache, s3config
from .app import ACCESS_LOG_FORMAT, Registry, Settings, make_app
from .auth import Authorizer, Htpasswd, Policy, TokenIssuer
from .blobcache import BlobCache
from .gc import GcReport, collect, expire_uploads
from .s3config import is_s3_url
from .storage import FilesystemStorage, Storage
from .team.hooks import TeamHooks
from .team.service import Team

T = TypeVar("T")
log = logging.getLogger("dockyard.registry")
access_log = logging.getLogger("dockyard.registry.access")


@record
class ServerConfig:
    """Everything ``dockyard registry serve`` can be told; the defaults suit a test fixture."""

    storage: str | os.PathLike[str] = ""
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    htpasswd: str | None = None
    token_policy: str | None = None
    token_service: str = "dockyard-registry"
    token_realm: str = ""  # default: <scheme>://<Host the client used>/token
    token_key: str | None = None  # PEM EC P-256 key: replicas sharing it accept each other's tokens
    tls_cert: str | None = None
    tls_key: str | None = None
    proxy_remote: str | None = None
    proxy_username: str | None = None
    proxy_password: str | None = None
    proxy_tag_ttl: float = 300
    delete_enabled: bool = True
    read_only: bool = False
    auto_mount: bool = True  # mount without "from" (only ever done when auth is off)
    cross_mount: bool = True  # False: never mount across repositories (tenants stay apart)
    gc_interval: float = 0  # seconds between online collections; 0 = never
    gc_grace: float = 3600
    upload_ttl: float = 24 * 3600
    janitor_interval: float = 600  # how often abandoned uploads are looked for
    access_log: bool = False
    shutdown_timeout: float = 10  # how long SIGTERM waits for requests in flight
    # S3 storage (``storage="s3://bucket/prefix"``): a flag given here wins over s3_config (a TOML
    # file), which wins over the AWS_* variables; redirect sends blob GETs to pre-signed URLs.
    s3_config: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    redirect: bool | None = None
    # ``DIR[,size=N]``: keep blobs pulled from an object store on this replica's disk (off when None).
    blob_cache: str | None = None
    # What "now" is for blob and session times, GC grace, upload expiry and the mirror's tag TTL
    # (default: time.time; the tag TTL uses time.monotonic). Tests pass a clock they move on.
    clock: Callable[[], float] | None = None
    # Projects, accounts, robots, policies, audit and webhooks (``team/``), stored beside the blobs;
    # replaces htpasswd and token_policy (tokens are issued by role). Webhooks retry after 1, 2, 4...
    # times webhook_backoff seconds.
    team: bool = False
    ui: bool = False  # the web UI at / (needs team)
    webhook_backoff: float = 1.0
    webhook_attempts: int = 5
    replication_tick: float = 30  # how often scheduled replication rules are looked at
    replication_backoff: float = 2.0  # a failed copy is tried again after 2, 4 ... seconds


def open_storage(storage: str | os.PathLike[str], clock: Callable[[], float] = time.time,
                 s3_config: str | None = None, **s3_flags: Any) -> Storage:
    """A directory, or ``s3://bucket/prefix`` (settings: ``s3_flags`` > ``s3_config`` > AWS_* variables)."""
    if not is_s3_url(storage):
        return FilesystemStorage(storage, clock)
    try:
        from .s3storage import S3Storage  # boto3 loads only when it is used
    except ImportError as exc:
        raise StoreError(f"--storage {storage}: the S3 driver needs boto3 ({exc}); "
                         "install it with: pip install 'dockyard[s3]'") from exc
    return S3Storage(s3config.resolve(str(storage), s3_config, **s3_flags), clock)


def load_token_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The token signing key from a PEM file (``openssl ecparam -name prime256v1 -genkey -noout``)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise InvalidArgument(f"--token-key {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"--token-key {path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidArgument(f"--token-key {path}: tokens are ES256: the key must be EC P-256")
    return key


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:5000`` for IPv6) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid listen address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class RegistryServer:
    """An OCI registry served by aiohttp; ``start()`` runs it on its own thread and event loop.

    ``async_start()``/``async_stop()`` run it on the caller's loop instead (the CLI does that).
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config or ServerConfig(**options)
        if not self.config.storage:
            raise InvalidArgument("the registry needs a storage directory")
        if bool(self.config.tls_cert) != bool(self.config.tls_key):
            raise InvalidArgument("--tls-cert and --tls-key must be given together")
        self.clock = self.config.clock or time.time
        self.storage: Storage = self._open_storage()
        self.blob_cache: BlobCache | None = None
        if self.config.blob_cache:
            if not getattr(self.storage, "remote", False):
                raise InvalidArgument("--blob-cache is for s3:// storage (a directory is served from disk)")
            self.blob_cache = BlobCache(*blobcache.parse_option(self.config.blob_cache))
            if self.blob_cache.peer_url is not None:  # other replicas may ask this one's cache
                self.storage.origin = self.blob_cache.peer_url  # type: ignore[attr-defined]
        self.team: Team | None = None
        if self.config.team:
            self.team = Team(self.storage, self.clock, self.config.webhook_backoff,
                             self.config.webhook_attempts, self.config.replication_backoff)
        self.hooks: TeamHooks | None = TeamHooks(self.team) if self.team is not None else None
        if self.config.ui and self.team is None:
            raise InvalidArgument("--ui signs users in from the team store: add --team")
        self.port = self.config.port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ssl = self._ssl_context()
        self._auth = self._authorizer()  # load htpasswd and policy now: bad files fail before binding
        self.registry: Registry | None = None

    def _open_storage(self) -> Storage:
        cfg = self.config
        return open_storage(cfg.storage, self.clock, s3_config=cfg.s3_config, endpoint=cfg.s3_endpoint,
                            region=cfg.s3_region, access_key=cfg.s3_access_key,
                            secret_key=cfg.s3_secret_key, redirect=cfg.redirect)

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    @property
    def address(self) -> str:
        """``host:port`` as clients name the registry (e.g. in ``127.0.0.1:5000/repo:tag``)."""
        host = self.config.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"TLS certificate {self.config.tls_cert} / key {self.config.tls_key}: "
                                  f"{exc}") from exc
        return ctx

    def _authorizer(self) -> Authorizer:
        cfg = self.config
        key = load_token_key(cfg.token_key) if cfg.token_key else None
        if self.team is not None:
            if cfg.htpasswd or cfg.token_policy:
                raise InvalidArgument("--team keeps its own users and roles: drop --htpasswd and "
                                      "--token-policy")
            directory = self.team.directory
            return Authorizer(directory, directory, TokenIssuer(cfg.token_service, key=key),
                              realm=cfg.token_realm)
        htpasswd = Htpasswd(cfg.htpasswd) if cfg.htpasswd else None
        if not cfg.token_policy:
            return Authorizer(htpasswd)
        policy = Policy.load(cfg.token_policy)
        return Authorizer(htpasswd, policy, TokenIssuer(cfg.token_service, key=key), realm=cfg.token_realm)

    # -- lifecycle on the caller's loop -----------------------------------------------------------

    async def async_start(self) -> None:
        cfg = self.config
        upstream = None
        if cfg.proxy_remote:
            from .proxy import Upstream

            upstream = Upstream(cfg.proxy_remote, cfg.proxy_username, cfg.proxy_password, cfg.proxy_tag_ttl,
                                clock=cfg.clock or time.monotonic)
        remote = bool(getattr(self.storage, "remote", False))
        redirect = bool(getattr(getattr(self.storage, "settings", None), "redirect", False))
        settings = Settings(delete_enabled=cfg.delete_enabled, read_only=cfg.read_only,
                            auto_mount=cfg.auto_mount, cross_mount=cfg.cross_mount, redirect=redirect)
        # An object store is latency-bound: more calls in flight, not more CPU.
        self.registry = Registry(self.storage, settings, self._auth, upstream, io_workers=32 if remote else 8,
                                 hooks=self.hooks, blob_cache=self.blob_cache)
        if self.blob_cache is not None and self.blob_cache.peer_url is not None:
            peer_key = getattr(self.storage, "peer_key", None)
            self.registry.peer_key = await asyncio.get_running_loop().run_in_executor(None, peer_key) \
                if peer_key is not None else None
        app = make_app(self.registry)
        if cfg.ui and self.team is not None:
            from .team.ui import UI

            UI(self.team, self.registry).install(app)
        if upstream is not None:
            app.on_cleanup.append(lambda _app: upstream.close())
        self._runner = web.AppRunner(
            app, access_log=access_log if cfg.access_log else None, access_log_format=ACCESS_LOG_FORMAT,
            handle_signals=False, shutdown_timeout=cfg.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=self._ssl, backlog=1024,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise StoreError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from exc
        self._site = site
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        if cfg.gc_interval > 0:
            self._tasks.append(loop.create_task(self._gc_loop()))
        if cfg.janitor_interval > 0:
            self._tasks.append(loop.create_task(self._janitor()))
        if self.team is not None and cfg.replication_tick > 0:
            self._tasks.append(loop.create_task(self._replication_loop(self.team)))
        log.info("registry listening on %s (storage %s)", self.url, cfg.storage)

    async def _gc_loop(self) -> None:
        holder = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        lease, release = getattr(self.storage, "lease", None), getattr(self.storage, "release", None)
        while True:
            await asyncio.sleep(self.config.gc_interval)
            if lease is None or release is None:
                # Local disk, one process: on the event loop, no request handler interleaves with it.
                report = self._collect()
            else:
                # Shared bucket: one replica at a time (the lease); the others keep serving, and the
                # grace period protects what their pushes have written but not yet referenced.
                assert self.registry is not None
                if not await self.registry.io.run(lease, holder, self.config.gc_interval * 2 + 600):
                    continue
                try:
                    report = await self.registry.io.run(self._collect)
                finally:
                    await self.registry.io.run(release, holder)
            log.info("gc: %d blobs deleted (%d bytes), %d uploads expired", len(report.deleted_blobs),
                     report.freed_bytes, len(report.deleted_uploads))

    def _collect(self, dry_run: bool = False) -> GcReport:
        report = collect(self.storage, grace=self.config.gc_grace, upload_ttl=self.config.upload_ttl,
                         dry_run=dry_run, now=self.clock())
        if self.registry is not None and not dry_run:
            self.registry.forget_uploads(report.deleted_uploads)
        return report

    def _expire(self) -> list[str]:
        expired = expire_uploads(self.storage, self.config.upload_ttl, now=self.clock())
        if self.registry is not None:
            self.registry.forget_uploads(expired)
        return expired

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(self.config.janitor_interval)
            expired = self._expire()
            if expired:
                log.info("expired %d abandoned uploads", len(expired))

    async def _replication_loop(self, team: Team) -> None:
        """Run scheduled replication rules when due (each replica may: copies are idempotent)."""
        while True:
            await asyncio.sleep(self.config.replication_tick)
            for rule in await asyncio.to_thread(team.replication.due):
                outcomes = await asyncio.to_thread(team.replication.run, rule)
                failed = sum(not o.ok for o in outcomes)
                log.info("replication %s to %s: %d copied, %d failed", rule.id, rule.target,
                         len(outcomes) - failed, failed)

    async def async_stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._site is not None:
            await self._site.stop()  # no new connections
            self._site = None
            # aiohttp's own shutdown stops reading request bodies at once, which would cut uploads
            # in flight; so first wait (bounded) for the handlers still running to finish.
            deadline = asyncio.get_running_loop().time() + self.config.shutdown_timeout
            while self.registry is not None and self.registry.inflight > 0 and \
                    asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.hooks is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hooks.drain(), self.config.shutdown_timeout)
            await self.hooks.team.webhooks.close()
        if self.registry is not None:
            self.registry.sender.close()
            await self.registry.relay.close()
            self.registry.io.close()

    async def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully (used by the CLI)."""
        await self.async_start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.async_stop()

    # -- lifecycle on a background thread ---------------------------------------------------------

    def start(self) -> RegistryServer:
        """Serve on a daemon thread; returns once the port is bound (``self.url`` is then valid)."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.async_start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.async_stop())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"registry-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self.config.shutdown_timeout + 5)
        self._thread = None

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop when it serves on a thread (no handler runs meanwhile)."""
        if self._loop is None or self._thread is None:
            return fn()

        async def on_loop() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result()

    def settle(self, timeout: float = 60) -> None:
        """Wait until the work requests left running in the background (audit lines, pull counts,
        webhook deliveries with their retries) is done."""
        if self.hooks is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.hooks.drain(), self._loop).result(timeout)

    def gc(self, dry_run: bool = False) -> GcReport:
        """Run one garbage collection now."""
        return self._on_loop(lambda: self._collect(dry_run))

    def expire_uploads(self) -> list[str]:
        """Do the janitor's round now: remove sessions idle for ``upload_ttl``; returns their ids."""
        return self._on_loop(self._expire)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def default_storage() -> Path:
    return Path(os.environ.get("DOCKYARD_REGISTRY_STORAGE", "/var/lib/dockyard-registry"))
