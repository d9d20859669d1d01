"""What the web UI shows, read from storage and the team store (plain data; ``ui_pages`` renders it).

Each function is synchronous and does all its reads at once: the UI calls it on a worker thread."""

from __future__ import annotations

import json
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.record import field, record

from ..storage import Storage
from .accounts import Directory
from .artifacts import SCAN_TYPES
from .kv import KV
from .retention import MANIFESTS, PUSHES

PAGE_SIZE = 20


@record
class TagRow:
    tag: str
    digest: str
    media_type: str
    platforms: list[str]
    size: int
    pushed: float | None
    pulls: int


@record
class Layer:
    digest: str
    size: int
    media_type: str
    command: str


@record
class ManifestView:
    repo: str
    ref: str
    digest: str
    media_type: str
    raw: str
    tags: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)  # an index's platform manifests
    referrers: list[dict[str, Any]] = field(default_factory=list)
    vulnerabilities: dict[str, int] | None = None
    size: int = 0


def visible_repositories(storage: Storage, directory: Directory, user: str | None, query: str = "",
                         page: int = 1) -> tuple[list[str], int]:
    """The repositories the user may pull whose name contains ``query``: one page, and the page count."""
    repos = [r for r in storage.repositories() if query in r and "pull" in directory.allowed(user, r)]
    pages = max(1, -(-len(repos) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    return repos[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], pages


def _json(storage: Storage, digest: str) -> dict[str, Any]:
    try:
        data = json.loads(storage.blob_read(digest))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _platform(p: dict[str, Any]) -> str:
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return text + (f"/{p['variant']}" if p.get("variant") else "")


def _summary(storage: Storage, digest: str, media_type: str) -> tuple[list[str], int]:
    """Platforms and total size of a manifest (an index: of its children)."""
    body = _json(storage, digest)
    if media_type in mt.INDEXES:
        children = [m for m in body.get("manifests", []) if isinstance(m, dict)]
        platforms = [_platform(m["platform"]) for m in children if isinstance(m.get("platform"), dict)
                     and m["platform"].get("os") != "unknown"]
        size = sum(_summary(storage, str(m["digest"]), str(m.get("mediaType", "")))[1] for m in children)
        return platforms, size
    config = body.get("config") or {}
    layers = [d for d in body.get("layers", []) if isinstance(d, dict)]
    size = int(config.get("size") or 0) + sum(int(d.get("size") or 0) for d in layers)
    cfg = _json(storage, str(config.get("digest", ""))) if config.get("digest") else {}
    return ([_platform(cfg)] if cfg.get("os") else []), size


def tag_rows(storage: Storage, kv: KV, repo: str) -> list[TagRow]:
    rows = []
    for tag, digest in sorted(storage.tags(repo).items()):
        media_type = storage.manifest_media_type(repo, digest) or ""
        platforms, size = _summary(storage, digest, media_type)
        pushed = kv.get(PUSHES, f"{repo}:{tag}")
        record = kv.get(MANIFESTS, f"{repo}@{digest}") or {}
        rows.append(TagRow(tag, digest, media_type, platforms, size,
                           float(pushed["time"]) if pushed else None, int(record.get("pulls") or 0)))
    return rows


def _vulnerabilities(storage: Storage, referrers: list[dict[str, Any]]) -> dict[str, int] | None:
    """Counts by severity from an attached scan report (SARIF levels or a ``vulnerabilities`` list)."""
    for desc in referrers:
        if desc.get("artifactType") not in SCAN_TYPES:
            continue
        layers = _json(storage, str(desc["digest"])).get("layers") or []
        for layer in layers:
            report = _json(storage, str(layer.get("digest", "")))
            counts: dict[str, int] = {}
            for run in report.get("runs", []):
                for result in run.get("results", []):
                    level = str(result.get("level", "warning"))
                    counts[level] = counts.get(level, 0) + 1
            for vuln in report.get("vulnerabilities", []):
                severity = str(vuln.get("severity", "unknown")).lower()
                counts[severity] = counts.get(severity, 0) + 1
            return counts
    return None


def manifest_view(storage: Storage, repo: str, ref: str) -> ManifestView | None:
    digest = ref if ":" in ref else storage.tag_get(repo, ref)
    media_type = storage.manifest_media_type(repo, digest) if digest else None
    if digest is None or media_type is None:
        return None
    try:
        raw = storage.blob_read(digest)
    except OSError:
        return None
    body = json.loads(raw)
    view = ManifestView(repo, ref, digest, media_type, json.dumps(body, indent=2),
                        sorted(t for t, d in storage.tags(repo).items() if d == digest))
    view.size = _summary(storage, digest, media_type)[1]
    view.referrers = storage.referrers(repo, digest)
    view.vulnerabilities = _vulnerabilities(storage, view.referrers)
    if media_type in mt.INDEXES:
        view.children = [m for m in body.get("manifests", []) if isinstance(m, dict)]
        return view
    config_desc = body.get("config") or {}
    view.config = _json(storage, str(config_desc.get("digest", ""))) if config_desc.get("digest") else {}
    # History entries that made a layer line up with the layers, in order (empty_layer ones do not).
    history = [h for h in view.config.get("history", []) if not h.get("empty_layer")]
    for i, desc in enumerate(d for d in body.get("layers", []) if isinstance(d, dict)):
        entry = history[i] if i < len(history) else {}
        command = str(entry.get("created_by") or entry.get("comment") or "")
        view.layers.append(Layer(str(desc.get("digest")), int(desc.get("size") or 0),
                                 str(desc.get("mediaType", "")), command))
    return view
