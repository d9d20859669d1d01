"""Wasted bytes and efficiency per dive's definitions, computed from streamed layer tars.

dive builds one file tree per layer and, visiting the *leaves* of each tree in layer order, groups
nodes by path. A path's "discovered" size is the sum of its nodes' sizes and its "minimum" size the
smallest one; ``efficiency = sum(minimum) / sum(discovered)`` (1.0 for an empty image). A path with
two or more nodes is inefficient and wastes its whole cumulative size. A whiteout node counts 0
bytes, except that a whiteout of a directory (one with its own tar entry, not just a parent of
other paths: dive's quirk, kept) counts everything the layers below held under it.
Opaque-directory markers (``.wh..wh..opq``) are not nodes in dive: they only add their directory.
A layer's size is the sum of its tar headers' sizes (what dive shows), an image's the sum of its
layers', and user-wasted percent is wasted bytes over the size of all layers but the first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from dockyard.archive import TarEntry, TarReader
from dockyard.archive.whiteout import OPAQUE, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX
from dockyard.client import Client
from dockyard.record import field, record
from dockyard.tools.analyze.layers import ImageLayers, clean_path, image_layers, open_layer
from dockyard.tools.analyze.lines import dockerfile_lines
from dockyard.tools.analyze.waste import WasteReport, WasteTracker, digest_entries


class _Node:
    """A file-tree node (dive's FileNode, trimmed): size, children, and two directory flags.

    ``is_dir`` says the node may hold children; ``dir_info`` that a tar entry said "directory". Parents
    created only because a path passes through them have ``dir_info`` False, as dive's empty
    FileInfo does, and dive sizes a whiteout by the subtree below only when ``dir_info`` is set."""

    __slots__ = ("children", "dir_info", "is_dir", "size", "whiteout")

    def __init__(self, size: int = 0, is_dir: bool = False, whiteout: bool = False,
                 dir_info: bool = False) -> None:
        self.size = size
        self.is_dir = is_dir
        self.whiteout = whiteout
        self.dir_info = dir_info
        self.children: dict[str, _Node] = {}

    def subtree_size(self) -> int:
        total = self.size
        stack = list(self.children.values())
        while stack:
            node = stack.pop()
            total += node.size
            stack.extend(node.children.values())
        return total

    def leaves(self, prefix: str) -> Iterator[tuple[str, _Node]]:
        """(path, node) for every leaf below this node, depth first."""
        for name, child in self.children.items():
            path = f"{prefix}/{name}"
            if child.children:
                yield from child.leaves(path)
            else:
                yield path, child


def _add(root: _Node, parts: list[str], node: _Node) -> None:
    """Set the node at ``parts`` (creating bare parents); an existing node keeps its children."""
    cur = root
    for name in parts[:-1]:
        nxt = cur.children.get(name)
        if nxt is None:
            nxt = cur.children[name] = _Node(is_dir=True)
        cur = nxt
    old = cur.children.get(parts[-1])
    if old is not None and node.is_dir:
        old.size, old.is_dir, old.whiteout, old.dir_info = node.size, True, node.whiteout, node.dir_info
    else:
        cur.children[parts[-1]] = node


def _get(root: _Node, parts: list[str]) -> _Node | None:
    cur: _Node | None = root
    for name in parts:
        if cur is None:
            return None
        cur = cur.children.get(name)
    return cur


def _remove(root: _Node, parts: list[str]) -> _Node | None:
    parent = _get(root, parts[:-1])
    if parent is None:
        return None
    return parent.children.pop(parts[-1], None)


@record(slots=True)
class LayerReport:
    """One layer: its size (sum of tar header sizes), command and file changes against the layers below."""

    index: int
    diff_id: str
    command: str
    size: int = 0
    added: int = 0
    modified: int = 0
    removed: int = 0


@record(frozen=True, slots=True)
class WastedFile:
    """A path present in more than one layer: how many copies and their total bytes."""

    path: str
    count: int
    size: int


@record(slots=True)
class Analysis:
    """The result of ``analyze``: dive's numbers for one image."""

    image: str
    image_id: str
    layers: list[LayerReport]
    size: int
    user_size: int
    wasted: int
    efficiency: float
    wasted_files: list[WastedFile] = field(default_factory=list)
    waste: WasteReport | None = None  # the bytes removable, each counted once (beside dive's numbers)

    @property
    def user_wasted_percent(self) -> float:
        """Wasted bytes over the bytes of all layers but the first (dive: NaN/Inf when those are 0)."""
        if self.user_size == 0:
            return 0.0 if self.wasted == 0 else math.inf
        return self.wasted / self.user_size


class _Efficiency:
    """dive's per-path accumulator."""

    __slots__ = ("count", "cumulative", "minimum")

    def __init__(self) -> None:
        self.count = 0
        self.cumulative = 0
        self.minimum = -1


def analyze_layers(layers: Iterable[tuple[str, str, Iterable[TarEntry]]]) -> tuple[
        list[LayerReport], dict[str, _Efficiency]]:
    """Layer reports and per-path efficiency data from ``(diff_id, command, entries)``, oldest first."""
    stacked = _Node(is_dir=True)  # the union of the layers seen so far (whiteouts applied)
    paths: dict[str, _Efficiency] = {}
    reports: list[LayerReport] = []
    for index, (diff_id, command, entries) in enumerate(layers):
        report = LayerReport(index, diff_id, command)
        tree = _Node(is_dir=True)
        for entry in entries:
            path = clean_path(entry.name)
            if not path:
                continue
            report.size += entry.size if entry.isreg() else 0
            parts = path[1:].split("/")
            base = parts[-1]
            if base.startswith(WHITEOUT_META_PREFIX):
                if base == OPAQUE and len(parts) > 1:
                    _add(tree, parts[:-1], _Node(is_dir=True, dir_info=True))
                    below = _get(stacked, parts[:-1])
                    if below is not None:
                        report.removed += sum(1 for _ in below.leaves(""))
                continue
            if base.startswith(WHITEOUT_PREFIX):
                target = [*parts[:-1], base[len(WHITEOUT_PREFIX):]]
                _add(tree, target, _Node(whiteout=True))
                report.removed += 1
                continue
            node = _Node(entry.size if entry.isreg() else 0, entry.isdir(), dir_info=entry.isdir())
            _add(tree, parts, node)
            if not node.is_dir:
                if _get(stacked, parts) is None:
                    report.added += 1
                else:
                    report.modified += 1
        # Efficiency: visit this layer's leaves against the stack of the layers below.
        for path, node in tree.leaves(""):
            data = paths.get(path)
            if data is None:
                data = paths[path] = _Efficiency()
            size = node.size
            if node.whiteout:
                below = _get(stacked, path[1:].split("/"))
                size = below.subtree_size() if below is not None and below.dir_info else 0
            data.cumulative += size
            if data.minimum < 0 or size < data.minimum:
                data.minimum = size
            data.count += 1
        _stack(stacked, tree, [])
        reports.append(report)
    return reports, paths


def _stack(stacked: _Node, layer: _Node, prefix: list[str]) -> None:
    """Apply one layer's tree onto the stack: whiteouts delete, other nodes add or replace."""
    for name, node in layer.children.items():
        parts = [*prefix, name]
        if node.whiteout:
            _remove(stacked, parts)
            continue
        # as dive's Stack: every node's info is copied, so a parent this layer only passes through
        # loses its "directory" info (children stay)
        _add(stacked, parts, _Node(node.size, node.is_dir, dir_info=node.dir_info))
        _stack(stacked, node, parts)


def summarize(image: str, image_id: str, reports: list[LayerReport],
              paths: dict[str, _Efficiency]) -> Analysis:
    """Image totals, efficiency and the wasted-file list (biggest first) from ``analyze_layers``."""
    minimum = sum(d.minimum for d in paths.values())
    discovered = sum(d.cumulative for d in paths.values())
    efficiency = 1.0 if discovered == 0 else minimum / discovered
    wasted_files = [WastedFile(p, d.count, d.cumulative) for p, d in paths.items() if d.count >= 2]
    wasted_files.sort(key=lambda w: (-w.size, w.path))
    size = sum(r.size for r in reports)
    user_size = sum(r.size for r in reports[1:])
    wasted = sum(w.size for w in wasted_files)
    return Analysis(image, image_id, reports, size, user_size, wasted, efficiency, wasted_files)


def analyze_image(client: Client, ref: str, dockerfile: str | None = None,
                  target: str | None = None, dockerfile_name: str = "Dockerfile") -> Analysis:
    """Analyze an image of the local store, streaming each stored layer blob once: dive's numbers and
    the removable bytes (blamed on Dockerfile lines when its text is given: the ``target`` stage's, by
    default the last; see :mod:`.lines`)."""
    info = image_layers(client, ref)
    tracker = WasteTracker()
    analysis = summarize(ref, info.image_id, *analyze_layers(_entries(client, info, tracker)))
    analysis.waste = tracker.report()
    if dockerfile is not None:
        history = client.image_config(info.image_id).history or []
        commands = [layer.command for layer in info.layers]
        lines = dockerfile_lines(history, commands, dockerfile, target, dockerfile_name).layers
        for lw in analysis.waste.layers:
            lw.line = lines[lw.index]
    return analysis


def _entries(client: Client, info: ImageLayers,
             tracker: WasteTracker) -> Iterator[tuple[str, str, Iterable[TarEntry]]]:
    for layer in info.layers:
        with open_layer(client, layer) as reader:
            seen: list[tuple[TarEntry, str]] = []

            def tee(reader: TarReader = reader,
                    seen: list[tuple[TarEntry, str]] = seen) -> Iterator[TarEntry]:
                for entry, digest in digest_entries(reader):
                    seen.append((entry, digest))
                    yield entry

            yield layer.diff_id, layer.command, tee()
            tracker.add_layer(layer.index, layer.command, seen)
