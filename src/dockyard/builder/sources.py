"""What a build reads besides its own stages: images by reference (local, or pulled when missing),
``--build-context`` names, and URLs for ADD (each fetched once per build)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from dockyard.builder.options import BuildOptions
from dockyard.builder.workspace import Workspace
from dockyard.dockerfile import Platform
from dockyard.errors import BuildError, NotFound
from dockyard.imageops import Lease, Store
from dockyard.imageops.images import load_config, resolve
from dockyard.oci.config import ImageConfig
from dockyard.progress import ProgressEvent, VertexCompleted, VertexStarted

Download = tuple[Path, str, str, float | None]  # (file, sha256 digest, file name, Last-Modified)


class Sources:
    """One build's external inputs; thread-safe (stages resolve them side by side)."""

    def __init__(self, store: Store, options: BuildOptions, lease: Lease, workspace: Workspace,
                 emit: Callable[[ProgressEvent], None]) -> None:
        self.store = store
        self.options = options
        self.lease = lease
        self.workspace = workspace
        self._emit = emit
        self._images: dict[str, tuple[str, ImageConfig]] = {}
        self._image_lock = threading.Lock()
        self._urls: dict[str, Download] = {}
        self._url_lock = threading.Lock()

    def image(self, ref: str, platform: str) -> tuple[str, ImageConfig]:
        """An image by reference: from the local store, pulled when missing (or always with --pull).

        ``platform`` ("" when the Dockerfile and the command line name none) must match the local
        image, as Docker requires; a mismatch pulls the right one when a registry is reachable.
        """
        wanted = platform or self.options.platform
        cache_key = f"{ref}|{wanted}"
        with self._image_lock:
            known = self._images.get(cache_key)
        if known is not None:
            return known
        image_id = ""
        if not self.options.pull:
            with contextlib.suppress(NotFound):
                image_id = str(resolve(self.store, ref))
            if image_id and self.store.meta.tag_platforms(_tag_name(ref)):
                # A multi-platform tag: the wanted (or this host's) platform, when it holds that one.
                try:
                    from dockyard.imageops.platforms import resolve_platform  # a multi-platform tag

                    image_id = str(resolve_platform(self.store, ref, wanted or str(Platform.host())))
                except NotFound:
                    if self.options.puller is None:
                        raise BuildError(f"{ref} has no {Platform.parse(wanted)} variant locally") from None
                    image_id = ""
        if image_id and wanted:
            local, _raw = load_config(self.store, image_id)
            want = Platform.parse(wanted)
            if (local.os, local.architecture) != (want.os, want.architecture) or (
                    want.variant and local.variant and want.variant != local.variant):
                if self.options.puller is None:
                    have = "/".join(p for p in (local.os, local.architecture, local.variant) if p)
                    raise BuildError(f"image with reference {ref} was found but does not match the specified "
                                     f"platform: wanted {want}, actual: {have}")
                image_id = ""
        if not image_id:
            if self.options.puller is None:
                raise BuildError(f"failed to resolve source metadata for {ref}: no such image in the local "
                                 "store (pull it first, or import it)")
            title = f"[internal] load metadata for {ref}"
            self._emit(VertexStarted(f"pull:{ref}", title))
            try:
                image_id = self.options.puller(ref, wanted)
            except BaseException as exc:
                self._emit(VertexCompleted(f"pull:{ref}", title, "error", str(exc).split("\n")[0]))
                raise
            self._emit(VertexCompleted(f"pull:{ref}", title, "done"))
        config, _raw = load_config(self.store, image_id)
        self.lease.add_image(image_id)
        with self._image_lock:
            self._images[cache_key] = (image_id, config)
        return image_id, config

    def named(self, ref: str) -> tuple[str, str] | None:
        """A ``--build-context`` of that name: ("dir", path) or ("image", reference)."""
        value = self.options.build_contexts.get(ref)
        if value is None:
            return None
        if value.startswith("docker-image://"):
            return "image", value.removeprefix("docker-image://")
        if "://" in value:
            raise BuildError(f"build context {ref}={value}: only local directories and docker-image:// "
                             "are supported")
        if not os.path.isdir(value):
            raise BuildError(f'build context {ref}: path "{value}" not found')
        return "dir", os.path.realpath(value)

    def url(self, url: str, checksum: str) -> Download:
        """A URL's download (fetched once per build); ``checksum`` (ADD --checksum) must match."""
        with self._url_lock:
            known = self._urls.get(url)
            if known is None:
                known = download(url, self.workspace.new_dir("url"))
                self._urls[url] = known
        if checksum and known[1] != checksum:
            raise BuildError(f"digest mismatch {known[1]}: {checksum}")
        return known


def _tag_name(ref: str) -> str:
    """The stored name of a tag reference ("" for an ID or a digest reference)."""
    from dockyard.errors import InvalidArgument
    from dockyard.oci.reference import parse_normalized

    try:
        parsed = parse_normalized(ref)
    except InvalidArgument:
        return ""
    return "" if parsed.digest is not None else str(parsed.tag_or_latest())


def download(url: str, dest_dir: Path) -> Download:
    """Fetch ``url``: (file, sha256 digest, file name, Last-Modified time)."""
    from dockyard.registry.client import httpclient
    from dockyard.registry.client.trust import verifying_context

    name = os.path.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
    path = dest_dir / hashlib.sha256(url.encode()).hexdigest()
    h = hashlib.sha256()
    try:
        with httpclient.Client(verify=verifying_context(), timeout=60) as client, \
                client.stream("GET", url, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise BuildError(f"failed to load {url}: invalid response status {resp.status_code}")
            disposition = resp.headers.get("content-disposition", "")
            if "filename=" in disposition:
                name = disposition.split("filename=", 1)[1].strip('"; ') or name
            modified = resp.headers.get("last-modified")
            with open(path, "wb") as out:
                for chunk in resp.iter_raw():
                    h.update(chunk)
                    out.write(chunk)
    except httpclient.TransportError as exc:
        raise BuildError(f"failed to load {url}: {exc}") from None
    mtime = None
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            import email.utils  # only ADD of a URL needs it

            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    return path, "sha256:" + h.hexdigest(), name, mtime
