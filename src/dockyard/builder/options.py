"""What a build is asked to do, and what it gives back."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.builder.remotecache.spec import CacheSpec
from dockyard.progress import ProgressSink, discard
from dockyard.record import field, record

if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.builder.remotecache.export import Entry
    from dockyard.registry.client import RegistryClient

# Pull an image by reference for a platform ("" = default) and return its image ID.
Puller = Callable[[str, str], str]


@record(frozen=True, slots=True)
class Output:
    """``--output type=...,dest=...``: ``docker``/``oci`` (image tars), ``tar``/``local`` (the rootfs)."""

    type: str
    dest: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@record(frozen=True, slots=True)
class BuildOptions:
    """A build's request, never changed once made: derive another with ``dockyard.record.replace``."""

    context_dir: str
    dockerfile: str = ""             # path; "" = <context>/Dockerfile
    dockerfile_text: str | None = None  # given directly (e.g. -f - on stdin)
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    no_cache: bool = False
    pull: bool = False
    secrets: dict[str, bytes] = field(default_factory=dict)
    ssh: dict[str, str] = field(default_factory=dict)     # id -> agent socket path
    network: str = "default"  # RUN steps: default (the private network), host or none
    outputs: list[Output] = field(default_factory=list)
    source_date_epoch: int | None = None
    progress: ProgressSink = discard
    puller: Puller | None = None
    max_parallel: int = 4
    build_contexts: dict[str, str] = field(default_factory=dict)  # name -> dir | docker-image://ref
    runtime: str = "builtin"          # or "runc" (an OCI bundle per RUN)
    isolation: str = "namespaces"     # or "chroot" (no namespaces or mounts), "auto" (probe; logged)
    push: bool = False                # push the tags when done (Client.build)
    cache_from: list[CacheSpec] = field(default_factory=list)   # --cache-from
    cache_to: list[CacheSpec] = field(default_factory=list)     # --cache-to
    # Makes the registry client for remote caches (Client.build passes its own: logins, mirrors).
    registry: Callable[[], RegistryClient] | None = None
    explain_cache: bool = False       # say why each step that ran missed the cache
    # One platform of a multi-platform build: its records go back in the result, and the build
    # exports one cache holding every platform's (the caller does it).
    defer_cache_export: bool = False
    # Step titles name the stage's platform (buildx's ``[linux/amd64->arm64 2/3]``): multi-platform.
    platform_titles: bool = False
    # Privileged entitlements granted (buildx's --allow): RUN --security=insecure needs security.insecure.
    allow: frozenset[str] = frozenset()


@record(slots=True)
class BuildResult:
    image_id: str
    tags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: int = 0
    cached: int = 0
    # (step title, "cached" or "ran", why it missed) per shown step, with explain_cache or --cache-from.
    explanations: list[tuple[str, str, str]] = field(default_factory=list)
    # What --cache-to exports: every step's record, the exported image's stages, the cache mounts used.
    cache_entries: list[Entry] = field(default_factory=list)
    target_stages: set[int] = field(default_factory=set)
    cache_mounts: list[tuple[Path, str]] = field(default_factory=list)
