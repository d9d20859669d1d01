"""The composition root (layer L5): ``Client`` wires the local store and the operations on it.

    client = Client(root=None, progress=None)     # root: --root / $DOCKYARD_ROOT / default
    client.store                                  # imageops.Store: .content .meta .snapshots .lease()

    # images (docker's rules and error texts)
    client.images(all=False) -> list[ImageSummary]
    client.resolve(ref_or_id) -> Digest           # "No such image: x"
    client.inspect(ref_or_id) -> dict             # docker image inspect object
    client.history(ref_or_id) -> list[HistoryItem]
    client.tag(source, target) -> str
    client.remove(ref_or_id, force=False, no_prune=False) -> list[DeleteItem]
    client.prune(all=False, filters=None) -> PruneReport
    client.disk_usage() -> DiskUsage
    client.system_prune(all=False) -> SystemPruneReport
    client.check(repair=False) -> CheckReport
    client.gc() -> GcResult

    # for build, pull, load, import (see imageops.commit / imageops.unpack)
    client.store_layer(tar_stream, compression="none", lease=None) -> LayerBlob
    client.store_layer_blob(blob_stream, expected=None, size=None, diff_id=None, media_type="",
                            lease=None) -> LayerBlob
    client.layer_blob(diff_id, compression="gzip", lease=None) -> LayerBlob
    client.commit_image(config, names=(), repo_digests=(), manifest_digest="", parent="") -> ImageRecord
    client.unpack(ref_or_id, lease=None) -> list[Path]      # overlay lowerdirs, top first
    client.image_config(ref_or_id) -> ImageConfig
"""

from __future__ import annotations

import os

from dockyard.config import root_dir
from dockyard.imageops import Lease, Store
from dockyard.imageops import images as _images

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` (a Client and ``images()``) imports no typing,
# and creates no dataclass (progress events, reports: imported where used).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path
    from typing import Any, BinaryIO

    from dockyard.builder.options import BuildOptions, BuildResult
    from dockyard.executor.base import OnStart
    from dockyard.image import ImageRecord, LayerBlob
    from dockyard.imageops.check import CheckReport
    from dockyard.imageops.gc import GcResult
    from dockyard.imageops.images import DeleteItem, DiskUsage, HistoryItem, ImageSummary, PruneReport
    from dockyard.imageops.pull import PullResult
    from dockyard.imageops.push import PushResult
    from dockyard.imageops.reports import SystemPruneReport as SystemPruneReport
    from dockyard.imageops.run import RunOptions
    from dockyard.oci.config import ImageConfig
    from dockyard.oci.digest import Digest
    from dockyard.progress import ProgressSink
    from dockyard.registry.client import RegistryClient


def __getattr__(name: str) -> object:
    if name == "SystemPruneReport":
        from dockyard.imageops.reports import SystemPruneReport

        return SystemPruneReport
    raise AttributeError(f"module 'dockyard.client' has no attribute {name!r}")


class Client:
    """One local store and the operations on it; cheap to construct (nothing is opened until used)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, progress: ProgressSink | None = None,
                 *, fsync: bool = True) -> None:
        self._root = root_dir(root)
        self._progress = progress
        self.store = Store(self._root, fsync=fsync)

    @property
    def root(self) -> Path:
        """The store's directory (``config.resolve_root``: ``--root``, ``$DOCKYARD_ROOT`` or the default)."""
        return self.store.root

    @property
    def progress(self) -> ProgressSink:
        """Where progress events go (``progress.discard`` unless given; imported on first use)."""
        if self._progress is None:
            from dockyard.progress import discard

            self._progress = discard
        return self._progress

    @progress.setter
    def progress(self, sink: ProgressSink) -> None:
        self._progress = sink

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images ----------------------------------------------------------------------------------

    def images(self, all: bool = False) -> list[ImageSummary]:
        return _images.list_images(self.store, all=all)

    def resolve(self, ref_or_id: str) -> Digest:
        return _images.resolve(self.store, ref_or_id)

    def image_record(self, ref_or_id: str) -> ImageRecord:
        record = self.store.meta.get_image(self.resolve(ref_or_id))
        assert record is not None
        return record

    def image_config(self, ref_or_id: str) -> ImageConfig:
        return _images.load_config(self.store, self.resolve(ref_or_id))[0]

    def inspect(self, ref_or_id: str, platform: str = "") -> dict[str, Any]:
        """``image inspect``; with ``platform``, that platform's image of a multi-platform tag."""
        if platform:
            from dockyard.imageops.platforms import resolve_platform

            found = _images.inspect(self.store, str(resolve_platform(self.store, ref_or_id, platform)))
            found["RepoTags"] = found["RepoTags"] or [self._familiar_tag(ref_or_id)]
            return found
        return _images.inspect(self.store, ref_or_id)

    @staticmethod
    def _familiar_tag(ref: str) -> str:
        from dockyard.oci.reference import parse_normalized

        return parse_normalized(ref).tag_or_latest().familiar()

    def history(self, ref_or_id: str) -> list[HistoryItem]:
        return _images.history(self.store, ref_or_id)

    def tag(self, source: str, target: str) -> str:
        return _images.tag(self.store, source, target)

    def remove(self, ref_or_id: str, force: bool = False, no_prune: bool = False,
               platform: str = "") -> list[DeleteItem]:
        """``docker rmi``; with ``platform``, only that platform of a multi-platform tag. An image a
        container uses goes only with ``force`` (never while it runs)."""
        if platform:
            return _images.remove_platform(self.store, ref_or_id, platform, prune=not no_prune)
        from dockyard.containers.store import ContainerStore

        image_id = str(self.resolve(ref_or_id))
        users = [r for r in ContainerStore(self.root).all() if r.config["Image"] == image_id]
        if users:
            _check_in_use(ref_or_id, image_id, users, force, len(self.inspect(image_id)["RepoTags"] or []))
        return _images.remove(self.store, ref_or_id, force=force, prune=not no_prune)

    def images_in_use(self) -> set[str]:
        """The ids of the images that containers (running or not) were created from."""
        from dockyard.containers.store import ContainerStore

        return {str(r.config["Image"]) for r in ContainerStore(self.root).all()}

    def prune(self, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None,
              now: float | None = None) -> PruneReport:
        return _images.prune(self.store, all=all, filters=filters, now=now, keep=self.images_in_use())

    def disk_usage(self) -> DiskUsage:
        return _images.disk_usage(self.store)

    def system_prune(self, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None,
                     now: float | None = None) -> SystemPruneReport:
        """Remove dangling (or, with ``all``, unused) images and the build cache (``until=`` applies to
        both, labels to images only, as docker's build cache has none)."""
        from dockyard.imageops import gc
        from dockyard.imageops.filters import Filters, cache_until, until_matches
        from dockyard.imageops.reports import SystemPruneReport

        report = SystemPruneReport(_images.prune(self.store, all=all, filters=filters, now=now,
                                                 keep=self.images_in_use()))
        until = cache_until(Filters.of({k: v for k, v in (filters or {}).items() if k == "until"}), now=now)
        records = [r for r in self.store.meta.cache_records() if until_matches(r.last_used, until)]
        for rec in records:
            self.store.meta.delete_cache(rec.key)
            report.cache_records_removed.append(rec.key)
        freed = gc.collect(self.store)
        report.space_reclaimed = report.images.space_reclaimed + (
            sum(r.size for r in records) if records else 0)
        if not report.space_reclaimed:
            report.space_reclaimed = freed.bytes_freed
        return report

    def check(self, repair: bool = False) -> CheckReport:
        from dockyard.imageops.check import check

        if not repair:
            return check(self.store)
        with self.registry_client() as registry:  # repair fetches lost blobs again from their registry
            return check(self.store, repair=True, registry=registry)

    def gc(self, dry_run: bool = False) -> GcResult:
        from dockyard.imageops.gc import collect

        return collect(self.store, dry_run=dry_run)

    # -- building blocks for build, pull, load and import -------------------------------------------

    def lease(self, ttl: float = 24 * 3600.0) -> Lease:
        return self.store.lease(ttl)

    def store_layer(self, source: bytes | BinaryIO | Iterable[bytes], *, compression: str = "none",
                    lease: Lease | None = None) -> LayerBlob:
        from dockyard.imageops.commit import store_layer

        return store_layer(self.store, source, compression=compression, lease=lease)

    def store_layer_blob(self, source: BinaryIO | bytes, *, expected: str | None = None,
                         size: int | None = None, diff_id: str | None = None, media_type: str = "",
                         lease: Lease | None = None) -> LayerBlob:
        from dockyard.imageops.commit import store_layer_blob

        return store_layer_blob(self.store, source, expected=expected, size=size, diff_id=diff_id,
                                media_type=media_type, lease=lease)

    def layer_blob(self, diff_id: str, compression: str = "gzip", *, lease: Lease | None = None,
                   docker_media_type: bool = False) -> LayerBlob:
        from dockyard.imageops.commit import layer_blob

        return layer_blob(self.store, diff_id, compression, lease=lease, docker_media_type=docker_media_type)

    def commit_image(self, config: bytes | ImageConfig, *, names: Sequence[str] = (),
                     repo_digests: Sequence[str] = (), manifest_digest: str = "", parent: str = "",
                     require_layers: bool = True) -> ImageRecord:
        from dockyard.imageops.commit import commit_image

        return commit_image(self.store, config, names=names, repo_digests=repo_digests,
                            manifest_digest=manifest_digest, parent=parent, require_layers=require_layers)

    def unpack(self, ref_or_id: str, *, lease: Lease | None = None) -> list[Path]:
        from dockyard.imageops.unpack import unpack

        return unpack(self.store, self.resolve(ref_or_id), lease=lease, progress=self.progress)

    # -- archives and base images (imageops.save / load / importer / bootstrap) ----------------------

    def save(self, refs: Sequence[str], out: int | str, *, fmt: str = "docker") -> int:
        """Write images as one tar to a file descriptor or (atomically) a path; return its size."""
        from dockyard.imageops import save as _save

        items, indexes = _save.resolve_save(self.store, list(refs))
        if isinstance(out, int):
            return _save.save(self.store, items, out, fmt=fmt, progress=self.progress,  # type: ignore[arg-type]
                              indexes=indexes)
        return _save.save_to_file(self.store, items, out, fmt=fmt, progress=self.progress,  # type: ignore[arg-type]
                                  indexes=indexes)

    def load(self, stream: BinaryIO, *, source: str = "archive", platform: str | None = None) -> list[Any]:
        """Load a docker save / OCI layout tar; return ``imageops.load.LoadResult`` items."""
        from dockyard.imageops.load import load_into
        from dockyard.oci.platform import parse

        return list(load_into(self.store, stream, source=source, progress=self.progress,
                              platform=parse(platform) if platform else None))

    def import_image(self, stream: BinaryIO, *, source: str = "-", changes: Sequence[str] = (),
                     message: str = "", platform: str | None = None,
                     names: Sequence[str] = ()) -> ImageRecord:
        """Import a rootfs tarball as a one-layer image (``docker import``)."""
        from dockyard.imageops.importer import import_image
        from dockyard.oci.platform import parse

        return import_image(self.store, stream, source=source, changes=changes, message=message,
                            platform=parse(platform) if platform else None, names=names)

    def bootstrap(self, what: str, *, names: Sequence[str] = (), variant: str = "minbase",
                  platform: str | None = None, mirror: str | None = None) -> ImageRecord:
        """An offline base image: ``busybox`` (Debian's busybox-static) or ``debian:SUITE`` (debootstrap)."""
        from dockyard.errors import InvalidArgument
        from dockyard.imageops import bootstrap as _bs
        from dockyard.oci.platform import parse

        want = parse(platform) if platform else None
        kind, _, suite = what.partition(":")
        if kind == "busybox" and not suite:
            return _bs.bootstrap_busybox(self.store, names=list(names) or ["busybox:latest"], platform=want,
                                         progress=self.progress)
        if kind == "debian":
            return _bs.bootstrap_debian(self.store, suite or "bookworm", names=names, variant=variant,
                                        platform=want, mirror=mirror or _bs.DEBIAN_MIRROR,
                                        progress=self.progress)
        raise InvalidArgument(f"unknown base image {what!r}: use busybox or debian:SUITE (debian:bookworm)")

    # -- registries (imageops.pull / push; registry.client; Docker's config.json for logins) ----------

    def build(self, options: BuildOptions) -> BuildResult:
        """Build an image (``docker build``); a base image missing locally is pulled.

        Progress events go to ``options.progress`` or, when that is left as the default, this
        client's sink."""
        if options.no_cache and options.runtime == "builtin" and options.isolation != "chroot":
            # Every RUN step runs: the executor's helper starts while the build engine is imported.
            from dockyard.executor.helper import start_early

            start_early(self.store.root / "exec")
        from dockyard.builder import prehash

        # The context is hashed in a child process while the engine is loaded.
        prehash.start(self.store.root, options)
        try:
            return self._build(options)
        finally:
            prehash.discard(options)  # a build that failed before it took the child's checksums

    def _build(self, options: BuildOptions) -> BuildResult:
        from dockyard.builder.engine import build
        from dockyard.errors import NotFound, RegistryError
        from dockyard.progress import discard
        from dockyard.record import replace

        if options.progress is discard:
            options = replace(options, progress=self.progress)
        if options.puller is None:
            def puller(ref: str, platform: str) -> str:
                try:
                    return str(self.pull(ref, platform=platform or None).image_id)
                except (NotFound, RegistryError) as exc:
                    # Only asked when the store lacks it: say both places were looked at.
                    text = _base_missing(ref, platform, exc)
                    if isinstance(exc, RegistryError):
                        raise RegistryError(text, status=exc.status, code=exc.code) from exc
                    raise NotFound(text) from exc

            options = replace(options, puller=puller)
        if options.registry is None and (options.cache_from or options.cache_to):
            options = replace(options, registry=lambda: self.registry_client(localhost_plain_http=True))
        result = build(self.store, options)
        if options.push:
            images = list(getattr(result, "images", {}).values())
            from dockyard.progress import VertexCompleted, VertexStarted, VertexStatus

            own, self.progress = self.progress, options.progress  # push lines join the build's
            try:
                for tag in options.tags:
                    if not images:
                        self.push(tag)
                        continue
                    vid = f"push|{tag}"
                    options.progress(VertexStarted(vid, f"pushing {tag}"))
                    pushed = self.push_index(tag, images)
                    for member in pushed.manifests:  # the digests the registry holds (and the tag now)
                        options.progress(VertexStatus(vid, f"pushing manifest for {pushed.reference}@"
                                                      f"{member.digest} ({member.platform})", done=True))
                    options.progress(VertexStatus(vid, f"pushing manifest list for {pushed.reference}@"
                                                  f"{pushed.digest}", done=True))
                    options.progress(VertexCompleted(vid, f"pushing {tag}", "done"))
                    result.index_digest = str(pushed.digest)  # type: ignore[attr-defined]
            finally:
                self.progress = own
        return result

    def registry_client(self, config_path: str | None = None, *,
                        localhost_plain_http: bool = False) -> RegistryClient:
        """A ``registry.client.RegistryClient`` with this machine's mirrors, insecure registries and
        docker logins (``$DOCKER_CONFIG/config.json``); the caller closes it. ``localhost_plain_http``:
        a loopback registry is asked over plain HTTP first (a build's cache, as BuildKit)."""
        from dockyard.config import registry_options
        from dockyard.record import replace
        from dockyard.registry.auth.dockerconfig import DockerConfig
        from dockyard.registry.client import RegistryClient

        options = registry_options(config_path)
        if localhost_plain_http:
            options = replace(options, localhost_plain_http=True)
        return RegistryClient(options, credentials=DockerConfig.load().provider())

    def pull(self, ref: str, *, platform: str | None = None, unpack: bool = True) -> PullResult:
        """Pull ``ref`` (``docker pull``); progress goes to this client's sink."""
        from dockyard.imageops.pull import pull
        from dockyard.oci.platform import parse
        from dockyard.oci.reference import parse_normalized
        from dockyard.supplychain.policy import enforce

        parsed = parse_normalized(ref)
        want = parse(platform) if platform else None
        with self.registry_client() as registry:
            enforce(registry, parsed)  # config.toml's [[policy]]: a signature before any download
            return pull(self.store, registry, parsed, platform=want, progress=self.progress, unpack=unpack)

    def pull_platforms(self, ref: str, platforms: Sequence[str] | None = None, *,
                       unpack: bool = True) -> list[PullResult]:
        """Pull several platforms of ``ref`` under its tag (``None``: every platform it lists)."""
        from dockyard.imageops.pull import pull_platforms
        from dockyard.oci.platform import parse
        from dockyard.oci.reference import parse_normalized
        from dockyard.supplychain.policy import enforce

        wanted = [parse(p) for p in platforms] if platforms is not None else None
        with self.registry_client() as registry:
            enforce(registry, parse_normalized(ref))
            return pull_platforms(self.store, registry, parse_normalized(ref), platforms=wanted,
                                  progress=self.progress, unpack=unpack)

    def pull_all_tags(self, ref: str, *, platform: str | None = None,
                      unpack: bool = True) -> list[PullResult]:
        """Pull every tag of the repository ``ref`` names (``docker pull --all-tags``)."""
        from dockyard.imageops.pull import pull_all_tags
        from dockyard.oci.platform import parse
        from dockyard.oci.reference import parse_normalized
        from dockyard.supplychain.policy import refuse_all_tags

        parsed = parse_normalized(ref)
        refuse_all_tags(parsed)
        want = parse(platform) if platform else None
        with self.registry_client() as registry:
            return pull_all_tags(self.store, registry, parsed, platform=want, progress=self.progress,
                                 unpack=unpack)

    def push(self, ref: str, *, source: str | None = None, compression: str = "gzip",
             chunk_size: int = 0, attest_as_referrers: bool = False) -> PushResult:
        """Push the local image ``ref`` (or ``source`` as ``ref``); returns ``imageops.push.PushResult``.

        A tag's attestations go into the pushed index, or as OCI 1.1 referrers with
        ``attest_as_referrers``."""
        from dockyard.imageops.push import push
        from dockyard.oci.reference import parse_normalized

        with self.registry_client() as registry:
            return push(self.store, registry, parse_normalized(ref), source=source, compression=compression,
                        progress=self.progress, chunk_size=chunk_size,
                        attest_as_referrers=attest_as_referrers)

    def push_index(self, ref: str, images: Sequence[str], *, compression: str = "gzip") -> PushResult:
        """Push one image per platform and an index of them as ``ref`` (a multi-platform push)."""
        from dockyard.imageops.push import push_index
        from dockyard.oci.reference import parse_normalized

        with self.registry_client() as registry:
            return push_index(self.store, registry, parse_normalized(ref), images, compression=compression,
                              progress=self.progress)

    def _run_pull(self, platform: str) -> Callable[[str], str]:
        """How ``run`` pulls a missing image: the id of the image (of ``platform``) pulled."""
        from dockyard.imageops.platforms import resolve_platform

        def pull(ref: str) -> str:
            if not platform:
                return str(self.pull(ref).image_id)
            self.pull(ref, platform=platform)  # joins the tag's other platforms
            return str(resolve_platform(self.store, ref, platform))
        return pull

    def run_image(self, options: RunOptions) -> tuple[str, ImageConfig]:
        """The id and config of the image ``options`` runs, pulled first when missing (as :meth:`run`)."""
        from dockyard.imageops.run import run_image

        return run_image(self.store, options, self._run_pull(options.platform))

    def run(self, options: RunOptions, *, stdin: int | None = 0, stdout: int = 1, stderr: int = 2,
            on_start: OnStart | None = None) -> int:
        """Run a container in the foreground (``docker run``); pulls a missing image first."""
        from dockyard.imageops.run import run_container

        return run_container(self.store, options, stdin=stdin, stdout=stdout, stderr=stderr,
                             pull=self._run_pull(options.platform), on_start=on_start)

    def login(self, registry: str, username: str, password: str) -> None:
        """Check credentials against ``registry`` and save them in Docker's config.json (or its helper)."""
        from dockyard.registry.auth import Credentials
        from dockyard.registry.auth.dockerconfig import DockerConfig
        from dockyard.registry.client import RegistryClient

        creds = Credentials(username, password)
        with RegistryClient(self.registry_client().options, credentials=lambda _: creds) as client:
            stored = client.session(registry).login()
        DockerConfig.load().store(registry, stored or creds)

    def logout(self, registry: str) -> bool:
        """Forget the login for ``registry``; False if there was none."""
        from dockyard.registry.auth.dockerconfig import DockerConfig

        return bool(DockerConfig.load().erase(registry))


def _base_missing(ref: str, platform: str, exc: Exception) -> str:
    """``busybox:latest has no linux/arm64 variant locally and registry-1.docker.io cannot be reached``."""
    from dockyard.oci.platform import parse
    from dockyard.oci.reference import parse_normalized

    parsed = parse_normalized(ref)
    name = parsed.familiar() if parsed.digest else parsed.tag_or_latest().familiar()
    local = f"{name} is not in the local store"
    if platform:
        local = f"{name} has no {parse(platform)} variant locally"
    if "cannot reach" in str(exc) or "connect" in str(exc).lower():
        return f"{local} and {parsed.domain} cannot be reached ({exc})"
    return f"{local} and pulling it failed: {exc}"


def _check_in_use(ref: str, image_id: str, users: Sequence[Any], force: bool, tags: int) -> None:
    """Docker's conflicts for removing an image that containers use (``users``: container records)."""
    from dockyard.errors import Conflict

    short = image_id.removeprefix("sha256:")[:12]
    by_id = image_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
    if not by_id:
        if not force and tags <= 1:
            raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                           f"container {users[0].id[:12]} is using its referenced image {short}")
        return
    running = [u for u in users if u.state["State"]["Running"]]
    if running:
        raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                       f"running container {running[0].id[:12]}")
    if not force:
        raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is being used by "
                       f"stopped container {users[0].id[:12]}")
