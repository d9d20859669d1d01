"""``builder prune``: drop build cache records (and, with ``all``, cache mounts), then collect garbage."""

from __future__ import annotations

import json
import shutil

from dockyard.imageops import Store
from dockyard.imageops.filters import until_matches
from dockyard.imageops.gc import collect
from dockyard.record import field, record
from dockyard.snapshot import tree_size


@record(frozen=True, slots=True)
class CacheUsage:
    """One row of ``builder du``: a cache record, or a ``RUN --mount=type=cache`` directory."""

    id: str
    size: int
    last_used: float
    description: str
    reclaimable: bool = True


def cache_usage(store: Store) -> list[CacheUsage]:
    """Build cache records (with their layer's size) and cache mounts, most recently used first."""
    rows: list[CacheUsage] = []
    for rec in store.meta.cache_records():
        try:
            created_by = str(json.loads(rec.data or "{}").get("created_by", ""))
        except (ValueError, AttributeError):
            created_by = ""
        rows.append(CacheUsage(rec.key.removeprefix("sha256:"), rec.size, rec.last_used, created_by))
    mounts = store.root / "cache-mounts"
    if mounts.is_dir():
        for entry in sorted(mounts.iterdir()):
            if entry.is_dir():
                rows.append(CacheUsage(f"cachemount:{entry.name}", tree_size(entry), entry.stat().st_mtime,
                                       f"cache mount {entry.name}"))
    rows.sort(key=lambda r: -r.last_used)
    return rows


@record(slots=True)
class PruneResult:
    removed: list[str] = field(default_factory=list)
    reclaimed: int = 0


def prune_cache(store: Store, *, all: bool = False, keep_storage: int = 0,
                until: float | None = None) -> PruneResult:
    """Remove build cache, least recently used first, until at most ``keep_storage`` bytes remain.

    ``until`` (unix seconds) keeps what was used since then. Cache mounts (``RUN --mount=type=cache``)
    go only with ``all``, as BuildKit keeps shared caches.
    """
    result = PruneResult()
    records = sorted((r for r in store.meta.cache_records() if until_matches(r.last_used, until)),
                     key=lambda r: r.last_used)
    remaining = sum(r.size for r in records)
    for rec in records:
        if keep_storage and remaining <= keep_storage:
            break
        store.meta.delete_cache(rec.key)
        result.removed.append(rec.key)
        remaining -= rec.size
    mounts = store.root / "cache-mounts"
    if all and mounts.is_dir() and not keep_storage:
        for entry in list(mounts.iterdir()):
            if entry.is_dir():
                result.reclaimed += tree_size(entry)
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    result.reclaimed += collect(store).bytes_freed
    return result
