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
