"""What the image operations of ``dockyard.imageops.images`` (and ``Client.system_prune``) report:
``rmi`` lines, history rows, prune reports, disk usage. Exported by ``dockyard.imageops.images``;
apart so that ``dockyard images`` creates no dataclass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.record import field, record

if TYPE_CHECKING:
    from dockyard.imageops.images import ImageSummary


@record(frozen=True, slots=True)
class DeleteItem:
    """One line of ``docker rmi`` output: exactly one of ``untagged``/``deleted`` is set."""

    untagged: str = ""
    deleted: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"Untagged": self.untagged} if self.untagged else {"Deleted": self.deleted}


@record(frozen=True, slots=True)
class HistoryItem:
    """One row of ``docker history`` (newest first); ``id`` is ``<missing>`` for non-local layers."""

    id: str
    created: float
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"Id": self.id, "Created": int(self.created), "CreatedBy": self.created_by,
                "Tags": list(self.tags) or None, "Size": self.size, "Comment": self.comment}


@record(slots=True)
class PruneReport:
    deleted: list[DeleteItem] = field(default_factory=list)
    space_reclaimed: int = 0


@record(slots=True)
class ImageUsage:
    summary: ImageSummary
    shared_size: int
    unique_size: int


@record(slots=True)
class DiskUsage:
    """What ``docker system df`` reports, for images and build cache (no containers or volumes here)."""

    images: list[ImageUsage]
    images_size: int
    build_cache_count: int
    build_cache_size: int
    content_size: int = 0
    snapshots_size: int = 0


@record(slots=True)
class SystemPruneReport:
    """``docker system prune``: the images pruned, the build cache records removed, the bytes freed."""

    images: PruneReport
    cache_records_removed: list[str] = field(default_factory=list)
    space_reclaimed: int = 0
