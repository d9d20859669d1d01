"""A build cache shared between machines: ``--cache-to`` / ``--cache-from`` (buildx's syntax).

Modules: ``spec`` (the flag values), ``document`` (the versioned cache document, see
docs/cache-format.md), ``backends`` (a registry repository or an OCI layout directory),
``remote`` (import: records by cache key, layer blobs fetched on demand), ``export``
(the records of a build as an OCI artifact, or inline in the image config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.builder.remotecache.base import BrokenCacheBlob
from dockyard.builder.remotecache.spec import CacheSpec, parse_cache_spec

if TYPE_CHECKING:
    from dockyard.builder.remotecache.remote import RemoteCache

__all__ = ["BrokenCacheBlob", "CacheSpec", "RemoteCache", "parse_cache_spec"]


def __getattr__(name: str) -> Any:
    # The remote cache needs the registry client (http.client); a build without --cache-from never loads it.
    if name == "RemoteCache":
        from dockyard.builder.remotecache.remote import RemoteCache

        return RemoteCache
    raise AttributeError(name)
