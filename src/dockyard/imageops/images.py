"""Image management with Docker's rules: list, resolve, tag, remove, inspect, history, prune, disk usage.

    list_images(store, all=False) -> list[ImageSummary]
    resolve(store, ref_or_id) -> Digest                 full/short ID, name, name:tag, name@digest
    tag(store, source, target) -> str                   the full target name
    remove(store, ref_or_id, force=False, prune=True, collect=True) -> list[DeleteItem]
    inspect(store, ref_or_id) -> dict                   docker's ``image inspect`` JSON object
    history(store, ref_or_id) -> list[HistoryItem]
    prune(store, all=False, filters=None) -> PruneReport
    disk_usage(store) -> DiskUsage

Errors use docker's texts: ``No such image: x``, ``conflict: unable to delete <id> (must be forced) -
image is referenced in multiple repositories``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.image import EMPTY_LAYER, ImageRecord, chain_ids
from dockyard.imageops import Store
from dockyard.imageops.names import familiar, split_stored
from dockyard.oci.digest import Digest
from dockyard.record import record

# Not ``typing.TYPE_CHECKING``: listing images imports no typing, json, re or dataclasses (the reports
# of the other operations are in ``dockyard.imageops.reports``, imported on first use).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import Any

    from dockyard.imageops.reports import DeleteItem as DeleteItem
    from dockyard.imageops.reports import DiskUsage as DiskUsage
    from dockyard.imageops.reports import HistoryItem as HistoryItem
    from dockyard.imageops.reports import ImageUsage as ImageUsage
    from dockyard.imageops.reports import PruneReport as PruneReport
    from dockyard.oci.config import ImageConfig
    from dockyard.oci.reference import Reference

_REPORTS = ("DeleteItem", "DiskUsage", "HistoryItem", "ImageUsage", "PruneReport")


def __getattr__(name: str) -> object:
    if name in _REPORTS:
        from dockyard.imageops import reports

        return getattr(reports, name)
    raise AttributeError(f"module 'dockyard.imageops.images' has no attribute {name!r}")


def parse_normalized(s: str) -> Reference:
    """The reference parser, imported on first use (listing images never needs it)."""
    from dockyard.oci.reference import parse_normalized as parse

    return parse(s)


__all__ = [
    "DeleteItem",
    "DiskUsage",
    "HistoryItem",
    "ImageSummary",
    "PruneReport",
    "disk_usage",
    "familiar",
    "history",
    "inspect",
    "list_images",
    "listing",
    "normalize_repo_digest",
    "normalize_tag",
    "parse_created",
    "prune",
    "remove",
    "resolve",
    "split_stored",
    "tag",
]


def _hex_prefix(s: str) -> bool:
    """``s`` could be (a prefix of) an image ID: 1 to 64 lowercase hex digits, ``sha256:`` allowed."""
    import re

    return re.fullmatch(r"(?:sha256:)?[0-9a-f]{1,64}", s) is not None


def normalize_tag(name: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``; a digest is refused (tags only)."""
    ref = parse_normalized(name)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
    return str(ref.tag_or_latest())


def normalize_repo_digest(value: str) -> tuple[str, str]:
    """``busybox@sha256:...`` -> (``docker.io/library/busybox``, ``sha256:...``)."""
    ref = parse_normalized(value)
    if ref.digest is None:
        raise InvalidArgument(f"not a canonical reference (name@digest): {value}")
    return ref.name, ref.digest


def parse_created(value: str) -> float:
    """RFC 3339 (with nanoseconds, ``Z`` or an offset) -> epoch seconds; 0 when empty or malformed."""
    if not value:
        return 0.0
    try:  # the common case (seconds or microseconds, Z) parses directly
        dt = datetime.fromisoformat(value)
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        pass
    import re

    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m:
        frac = (m.group(2) or "")[:7]  # Python takes at most microseconds
        text = m.group(1) + frac + m.group(3)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@record(slots=True)
class ImageSummary:
    """One image as ``docker images`` lists it (names familiar, ``created`` in epoch seconds)."""

    id: Digest
    repo_tags: list[str]
    repo_digests: list[str]
    created: float
    size: int
    labels: dict[str, str]
    parent: str = ""
    containers: int = 0

    @property
    def dangling(self) -> bool:
        return not self.repo_tags


def _summaries(store: Store) -> tuple[list[ImageSummary], dict[str, ImageRecord]]:
    records = {str(r.id): r for r in store.meta.images()}
    tags: dict[str, list[str]] = {}
    for name, image_id in store.meta.tags():
        tags.setdefault(image_id, []).append(familiar(name))
    digests: dict[str, list[str]] = {}
    for name, digest, image_id in store.meta.repo_digests():
        digests.setdefault(image_id, []).append(f"{familiar(name)}@{digest}")
    for names in (*tags.values(), *digests.values()):
        names.sort()  # docker sorts references by their familiar string
    sizes = store.meta.layer_sizes()
    out = [ImageSummary(r.id, tags.get(i, []), digests.get(i, []), parse_created(r.created),
                        image_size(r, sizes), r.labels, r.parent) for i, r in records.items()]
    return out, records


def image_size(record: ImageRecord, sizes: Mapping[str, int]) -> int:
    """Sum of the layers' sizes as docker reports them (learnt sizes win over the commit-time one)."""
    total = 0
    for diff_id in record.diff_ids:
        size = sizes.get(diff_id)
        if size is None:
            return record.size
        total += size
    return total


def list_images(store: Store, all: bool = False) -> list[ImageSummary]:
    """Images newest first; without ``all``, untagged images that are parents of others are hidden."""
    return [s for s, parent in listing(store) if all or not parent]


def listing(store: Store) -> list[tuple[ImageSummary, bool]]:
    """Every image ``images -a`` lists, newest first, each with whether plain ``images`` hides it (an
    untagged parent of another image)."""
    out, records = _summaries(store)
    # The other platforms of a multi-platform tag are listed under it (``images --tree``), not alone.
    members = store.meta.indexed_images()
    out = [s for s in out if s.repo_tags or str(s.id) not in members]
    parents = {r.parent for r in records.values() if r.parent}
    out.sort(key=lambda s: (s.created, str(s.id)), reverse=True)
    return [(s, not s.repo_tags and str(s.id) in parents) for s in out]


def resolve(store: Store, ref_or_id: str) -> Digest:
    """The image ID that ``ref_or_id`` names, by docker's rules; ``NotFound`` ("No such image: x")."""
    found = _resolve(store, ref_or_id)
    if found is None:
        raise NotFound(f"No such image: {ref_or_id}")
    return found


def _resolve(store: Store, s: str) -> Digest | None:
    if not s:
        raise NotFound("No such image: ")
    import re

    # A full ID, bare or with its algorithm.
    full = s if s.startswith("sha256:") else f"sha256:{s}"
    if re.fullmatch(r"sha256:[0-9a-f]{64}", full):
        return Digest(full) if store.meta.get_image(full) else None
    ref: Reference | None = None
    try:
        ref = parse_normalized(s)
    except InvalidArgument:
        if not _hex_prefix(s):
            raise
    if ref is not None:
        if ref.digest is not None:
            found = store.meta.get_repo_digest(ref.name, ref.digest)
            if found is not None:
                return found
        else:
            found = store.meta.get_tag(str(ref.tag_or_latest()))
            if found is not None:
                return found
    # Last, a unique ID prefix (docker's digest set lookup).
    if _hex_prefix(s):
        matches = store.meta.find_images(full)
        if len(matches) == 1:
            return matches[0]
    return None


def tag(store: Store, source: str, target: str) -> str:
    """Point ``target`` at the image ``source`` names; return the full target name."""
    try:
        image_id = resolve(store, source)
    except NotFound:
        # docker tag names the normalised source: "No such image: busybox:latest".
        if _hex_prefix(source):
            raise
        ref = parse_normalized(source)
        raise NotFound(f"No such image: {ref.tag_or_latest().familiar()}") from None
    name = normalize_tag(target)
    source_tag = ""
    if not _hex_prefix(source):
        ref = parse_normalized(source)
        source_tag = str(ref.tag_or_latest()) if ref.digest is None else ""
    with store.meta.transaction():
        held = store.meta.tag_platforms(source_tag) if source_tag else []
        if held:  # a multi-platform tag: the new name gets every platform and the same index
            store.meta.set_tag_index(name, image_id, store.meta.tag_index(source_tag), held)
        else:
            store.meta.set_tag(name, image_id)
    return name


def _refs_of(store: Store, image_id: str) -> list[Reference]:
    refs = [parse_normalized(n) for n in store.meta.tags_for(image_id)]
    refs += [parse_normalized(n) for n in store.meta.repo_digests_for(image_id)]
    return refs


def _untag(store: Store, ref: Reference) -> None:
    if ref.digest is not None:
        store.meta.remove_repo_digest(ref.name, ref.digest)
    else:
        store.meta.remove_tag(str(ref))


def _is_id_prefix(image_id: str, s: str) -> bool:
    return image_id.startswith(s) or image_id.removeprefix("sha256:").startswith(s)


def _is_single_reference(refs: Sequence[Reference]) -> bool:
    """At most one tag, and every reference in one repository (docker's isSingleReference)."""
    tags = [r for r in refs if r.digest is None]
    return len(tags) <= 1 and len({r.name for r in refs}) <= 1


def remove(store: Store, ref_or_id: str, *, force: bool = False, prune: bool = True,
           collect: bool = True) -> list[DeleteItem]:
    """Untag or delete an image as ``docker rmi`` does; then (with ``collect``) collect garbage."""
    from dockyard.imageops import gc
    from dockyard.imageops.reports import DeleteItem

    image_id = resolve(store, ref_or_id)
    items: list[DeleteItem] = []
    with store.meta.transaction():
        refs = _refs_of(store, image_id)
        if not _is_id_prefix(image_id, ref_or_id):
            parsed = parse_normalized(ref_or_id)
            if parsed.digest is None:
                parsed = parsed.tag_or_latest()
            others = [m.image_id for m in store.meta.tag_platforms(str(parsed)) if m.image_id != image_id]
            _untag(store, parsed)
            items.append(DeleteItem(untagged=parsed.familiar()))
            for other in others:  # the tag's other platforms go with it unless still named
                if not _refs_of(store, other) and other not in store.meta.indexed_images():
                    _delete(store, other, items, force=force, prune=prune, quiet=True)
            remaining = [r for r in refs if str(r) != str(parsed)]
            same_repo_tag = any(r.digest is None and r.name == parsed.name for r in remaining)
            if parsed.digest is None and not same_repo_tag:
                # The last tag of a repository went: its digest references go with it.
                for r in [r for r in remaining if r.digest is not None and r.name == parsed.name]:
                    _untag(store, r)
                    items.append(DeleteItem(untagged=r.familiar()))
                    remaining.remove(r)
            if remaining:
                return items
            _delete(store, image_id, items, force=force, prune=prune, quiet=True)
        else:
            if refs and _is_single_reference(refs):
                _check_conflict(store, image_id, soft=False)
                for r in refs:
                    _untag(store, r)
                    items.append(DeleteItem(untagged=r.familiar()))
            _delete(store, image_id, items, force=force, prune=prune, quiet=False)
    if collect and any(i.deleted for i in items):
        gc.collect(store)
    return items


def remove_platform(store: Store, ref: str, platform: str, *, prune: bool = True) -> list[DeleteItem]:
    """``rmi --platform``: drop one platform of a tag, and its image when nothing else names it."""
    from dockyard.imageops import gc, platforms
    from dockyard.imageops.reports import DeleteItem

    parsed = parse_normalized(ref)
    if parsed.digest is not None:
        raise InvalidArgument(f"--platform needs a tag, not a digest reference: {ref}")
    parsed = parsed.tag_or_latest()
    resolve(store, ref)
    items: list[DeleteItem] = []
    with store.meta.transaction():
        gone = platforms.remove_platform(store, str(parsed), platform, parsed.familiar())
        items.append(DeleteItem(untagged=f"{parsed.familiar()} ({Digest(gone).short}, {platform})"))
        if not _refs_of(store, gone) and gone not in store.meta.indexed_images():
            _delete(store, gone, items, force=False, prune=prune, quiet=True)
    if any(i.deleted for i in items):
        gc.collect(store)
    return items


def _check_conflict(store: Store, image_id: str, *, soft: bool) -> None:
    short = Digest(image_id).short
    if store.meta.children(image_id):
        raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has dependent "
                       "child images")
    if soft and (store.meta.tags_for(image_id) or store.meta.repo_digests_for(image_id)):
        raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in "
                       "multiple repositories")


def _delete(store: Store, image_id: str, items: list[DeleteItem], *, force: bool, prune: bool,
            quiet: bool) -> None:
    from dockyard.imageops.reports import DeleteItem

    record = store.meta.get_image(image_id)
    if record is None:
        return
    try:
        _check_conflict(store, image_id, soft=not force)
    except Conflict:
        if quiet:
            return
        raise
    for r in _refs_of(store, image_id):
        _untag(store, r)
        items.append(DeleteItem(untagged=r.familiar()))
    store.meta.delete_image(image_id)
    items.append(DeleteItem(deleted=str(image_id)))
    # Docker releases (and reports) layers from the top down: those no other image stacks the same way.
    chains = chain_ids(record.diff_ids)
    for k in range(len(chains), 0, -1):
        if store.meta.stack_users(record.diff_ids[:k]) == 0:
            items.append(DeleteItem(deleted=str(chains[k - 1])))
    parent = record.parent
    if (prune and parent and store.meta.get_image(parent) is not None
            and not store.meta.tags_for(parent) and not store.meta.repo_digests_for(parent)):
        _delete(store, parent, items, force=False, prune=True, quiet=True)


# -- inspect and history ------------------------------------------------------------------------------

def load_config(store: Store, image_id: str) -> tuple[ImageConfig, dict[str, Any]]:
    """The parsed config and its raw JSON object."""
    import json

    from dockyard.oci.config import ImageConfig

    raw = store.content.read(image_id)
    doc = json.loads(raw)
    return ImageConfig.from_dict(doc, f"config of image {image_id}"), doc


def inspect(store: Store, ref_or_id: str) -> dict[str, Any]:
    """``docker image inspect``'s object for one image."""
    image_id = resolve(store, ref_or_id)
    record = store.meta.get_image(image_id)
    assert record is not None
    config, doc = load_config(store, image_id)
    chains = [c for c, d in zip(chain_ids(record.diff_ids), record.diff_ids, strict=True) if d != EMPTY_LAYER]
    snapshots = [store.snapshots.path(c) for c in chains]  # an empty layer has none (unpack_layers)
    graph: dict[str, Any] = {"Data": None, "Name": "overlay2"}
    if snapshots and all(store.snapshots.exists(c) for c in chains):
        lower = ":".join(str(p) for p in reversed(snapshots[:-1]))
        graph["Data"] = {"LowerDir": lower, "UpperDir": str(snapshots[-1])} if lower else {
            "UpperDir": str(snapshots[-1])}
    out: dict[str, Any] = {
        "Id": str(image_id),
        "RepoTags": sorted(familiar(n) for n in store.meta.tags_for(image_id)),
        "RepoDigests": sorted(familiar(n) for n in store.meta.repo_digests_for(image_id)),
        "Parent": record.parent,
        "Comment": doc.get("comment", "") or "",
        "Created": config.created or "0001-01-01T00:00:00Z",
        "Container": doc.get("container", "") or "",
        "ContainerConfig": _docker_run_config(doc.get("container_config") or {}),
        "DockerVersion": doc.get("docker_version", "") or "",
        "Author": config.author,
        "Config": _docker_run_config(config.config),
        "Architecture": config.architecture,
    }
    if config.variant:
        out["Variant"] = config.variant
    out.update({
        "Os": config.os,
        "Size": image_size(record, store.meta.layer_sizes()),
        "VirtualSize": image_size(record, store.meta.layer_sizes()),
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in config.diff_ids]},
        "Metadata": {"LastTagTime": _last_tag_time(store, image_id)},
    })
    if doc.get("os.version"):
        out["OsVersion"] = doc["os.version"]
    return out


# docker's container.Config fields in its JSON order; None marks "omitempty" ones.
_RUN_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False),
    ("StdinOnce", False), ("Env", ...), ("Cmd", ...), ("Healthcheck", None), ("ArgsEscaped", None),
    ("Image", ""), ("Volumes", ...), ("WorkingDir", ""), ("Entrypoint", ...), ("NetworkDisabled", None),
    ("MacAddress", None), ("OnBuild", ...), ("Labels", ...), ("StopSignal", None), ("StopTimeout", None),
    ("Shell", None),
)


def _docker_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """An image's run config as docker prints it: every field in order (null for unset lists/maps),
    "omitempty" ones only when set, unknown keys kept at the end."""
    out: dict[str, Any] = {}
    for key, default in _RUN_CONFIG_FIELDS:
        value = config.get(key)
        if default is None:  # omitempty
            if value:
                out[key] = value
        elif default is ...:  # a slice or map: null when unset
            out[key] = value
        else:
            out[key] = value if value is not None else default
    out.update({k: v for k, v in config.items() if k not in out and k not in dict(_RUN_CONFIG_FIELDS)})
    return out


def _last_tag_time(store: Store, image_id: str) -> str:
    rows = store.meta.conn.execute("SELECT MAX(added) FROM tags WHERE image_id = ?", (image_id,)).fetchone()
    if not rows or rows[0] is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(float(rows[0]), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history(store: Store, ref_or_id: str) -> list[HistoryItem]:
    """The image's history, newest first, with each layer's uncompressed size."""
    from dockyard.imageops.reports import HistoryItem

    image_id = resolve(store, ref_or_id)
    config, _ = load_config(store, image_id)
    sizes = store.meta.layer_sizes()
    layer_index = 0
    rows: list[HistoryItem] = []
    entries = config.history or []
    for h in entries:
        size = 0
        if not h.empty_layer and layer_index < len(config.diff_ids):
            size = max(sizes.get(str(config.diff_ids[layer_index]), 0), 0)
            layer_index += 1
        rows.append(HistoryItem("<missing>", parse_created(h.created), h.created_by, size, h.comment))
    if not entries:  # an image without history: one row per layer, as docker shows
        rows = [HistoryItem("<missing>", 0.0, "", max(sizes.get(str(d), 0), 0), "") for d in config.diff_ids]
    rows.reverse()
    # Name the rows that are local images: this one, then its parents along the build chain.
    image: ImageRecord | None = store.meta.get_image(image_id)
    position = 0
    while image is not None and position < len(rows):
        names = tuple(familiar(n) for n in store.meta.tags_for(image.id))
        row = rows[position]
        rows[position] = HistoryItem(str(image.id), row.created, row.created_by, row.size, row.comment, names)
        parent = store.meta.get_image(image.parent) if image.parent else None
        if parent is None:
            break
        try:
            parent_len = len(load_config(store, parent.id)[0].history)
        except (NotFound, InvalidArgument):
            break
        position = len(rows) - parent_len
        if position <= 0 or parent_len <= 0:
            break
        image = parent
    return rows


# -- prune and disk usage ---------------------------------------------------------------------------

def prune(store: Store, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None,
          now: float | None = None, keep: Collection[str] = ()) -> PruneReport:
    """``docker image prune``: remove dangling images (or every unused image with ``all``); the ids in
    ``keep`` (images containers use) are never removed.

    ``filters`` as ``dockyard.imageops.filters.prune_filter`` reads them; ``now`` anchors ``until=``.
    """
    from dockyard.imageops import gc
    from dockyard.imageops.filters import Filters, prune_filter
    from dockyard.imageops.reports import PruneReport

    flt = prune_filter(Filters.of(filters), all=all, now=now)
    all = not flt.dangling_only
    report = PruneReport()
    summaries, records = _summaries(store)
    # Space is counted per removed layer (reported by chain ID), as docker does.
    layer_sizes = store.meta.layer_sizes()
    chain_sizes: dict[str, int] = {}
    for r in records.values():
        for diff_id, chain in zip(r.diff_ids, chain_ids(r.diff_ids), strict=True):
            chain_sizes[str(chain)] = max(layer_sizes.get(str(diff_id), 0), 0)
    parents = {r.parent for r in records.values() if r.parent}
    members = store.meta.indexed_images()
    for s in summaries:
        if not all and str(s.id) in parents:
            continue  # docker prunes "heads" only when pruning dangling images
        if str(s.id) in members:
            continue  # a platform of a multi-platform tag: in use
        if not flt.match(created=s.created, labels=s.labels):
            continue
        if store.meta.get_image(s.id) is None or str(s.id) in keep:
            continue  # removed already as a parent of an earlier one, or in use
        if s.repo_tags and not all:
            continue
        refs = _refs_of(store, s.id)
        try:
            if refs:
                for ref in refs:
                    if store.meta.get_image(s.id) is not None:
                        report.deleted.extend(remove(store, str(ref), prune=True, collect=False))
            else:
                report.deleted.extend(remove(store, str(s.id), prune=True, collect=False))
        except (Conflict, NotFound):
            continue
    for item in report.deleted:
        if item.deleted:
            report.space_reclaimed += chain_sizes.get(item.deleted, 0)
    gc.collect(store)
    return report


def disk_usage(store: Store) -> DiskUsage:
    from dockyard.imageops.reports import DiskUsage, ImageUsage

    summaries, records = _summaries(store)
    sizes = store.meta.layer_sizes()
    users: dict[str, int] = {}
    for r in records.values():
        for d in set(r.diff_ids):
            users[str(d)] = users.get(str(d), 0) + 1
    usage: list[ImageUsage] = []
    for s in summaries:
        diffs = set(records[str(s.id)].diff_ids)
        shared = sum(max(sizes.get(str(d), 0), 0) for d in diffs if users.get(str(d), 0) > 1)
        usage.append(ImageUsage(s, shared, s.size - shared))
    total = sum(max(sizes.get(d, 0), 0) for d in users)
    cache = store.meta.cache_records()
    content = sum(b.size for b in store.content.walk())
    snaps = sum(s.size for s in store.snapshots.walk())
    usage.sort(key=lambda u: (u.summary.created, str(u.summary.id)), reverse=True)
    return DiskUsage(usage, total, len(cache), sum(c.size for c in cache), content, snaps)
