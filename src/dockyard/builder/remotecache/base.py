"""What every build uses of the remote cache, without loading the registry client: the record of
a step (``Entry``), which records a spec exports (``select``), the shared registry client (made on
first use) and the error that restarts a build (``BrokenCacheBlob``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dockyard.builder.remotecache.spec import CacheSpec
from dockyard.record import record

if TYPE_CHECKING:
    from dockyard.registry.client import RegistryClient

__all__ = ["BrokenCacheBlob", "Entry", "SharedRegistry", "select"]

class BrokenCacheBlob(Exception):
    """A cache blob could not be fetched or was corrupt; the build is tried again without it."""

    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(f"cache blob {digest} unusable: {reason}")
        self.digest = digest


@record(frozen=True, slots=True)
class Entry:
    """One step of this build: its cache key, the config it left, and the stage it belongs to."""

    key: str
    config: str       # config digest in the local content store
    stage: int
    stage_name: str


def select(entries: Sequence[Entry], spec: CacheSpec, target_stages: set[int]) -> list[Entry]:
    """``mode=max``: every stage's steps; ``min``: those of the stages the exported image is built on."""
    if spec.mode == "max":
        return list(entries)
    return [e for e in entries if e.stage in target_stages]


class SharedRegistry:
    """One registry client for a build's cache imports and exports, made on first use."""

    def __init__(self, factory: Callable[[], RegistryClient] | None) -> None:
        self._factory = factory
        self._client: RegistryClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> RegistryClient:
        with self._lock:
            if self._client is None:
                if self._factory is not None:
                    self._client = self._factory()
                else:
                    from dockyard.registry.client import RegistryClient

                    self._client = RegistryClient()
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
