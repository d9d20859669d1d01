"""The metadata store's record types that listing images never builds (exported by
``dockyard.metadata``; apart so that ``dockyard images`` creates no dataclass)."""

from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.record import record


@record(frozen=True, slots=True)
class CacheRecord:
    """A build cache entry: ``key`` -> a ``kind`` (blob/snapshot/image) ``ref``; ``data`` is free JSON."""

    key: str
    kind: str
    ref: str
    size: int = 0
    created: float = 0.0
    last_used: float = 0.0
    data: str = "{}"


@record(frozen=True, slots=True)
class TagPlatform:
    """One member of a multi-platform tag: its platform (``linux/arm64``), image and manifest."""

    platform: str
    image_id: Digest
    manifest_digest: Digest


@record(frozen=True, slots=True)
class SnapshotLayer:
    """A layer kept only as the snapshot a build committed (no blob): the snapshot of ``chain_id``
    holds its files, and the layer tar is that directory written again as an overlay diff with
    ``mtime_clamp``; ``size`` is the tar's length (its digest is ``diff_id``), ``content_size``
    docker's size of the layer."""

    diff_id: Digest
    chain_id: Digest
    mtime_clamp: int | None
    size: int
    content_size: int = -1
