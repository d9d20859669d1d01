"""A build cache shared between machines: ``--cache-to`` / ``--cache-from`` (buildx's syntax).

Modules: ``spec`` (the flag values), ``document`` (the versioned cache document, see
docs/cache-format.md), ``backends`` (a registry repository or an OCI layout directory),
``remote`` (import: records by cache key, layer blobs fetched on demand), ``export``
(the records of a build as an OCI artifact, or inline in the image config).
"""

from dockyard.builder.remotecache.remote import BrokenCacheBlob, RemoteCache
from dockyard.builder.remotecache.spec import CacheSpec, parse_cache_spec

__all__ = ["BrokenCacheBlob", "CacheSpec", "RemoteCache", "parse_cache_spec"]
