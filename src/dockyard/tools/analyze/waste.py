"""The bytes an image could lose, each counted once, blamed on the layer (and Dockerfile line) that made them.

dive sums every copy of a path that appears in two layers, the copy that stays included, and counts a
deleted file as nothing: a ``chown -R`` over N bytes shows 2N wasted, ``rm -rf`` of a lower directory
0. Here a lower copy is removable when a later layer replaces it (``overwritten``; ``duplicate`` if
the new copy is the same in every respect; ``metadata-only`` if only mode, owner or mtime changed, as
``chown``, ``chmod`` and ``touch`` do) or deletes it (``deleted``, whiteouts and opaque directories
alike, at the full size it had below). The copy that stays is never counted.

    tracker = WasteTracker()
    tracker.add_layer(index, command, changes)   # per layer, oldest first: (entry, content digest)
    report = tracker.report()                    # WasteReport: total, items, per-layer blame + fix
    blame_lines(report, dockerfile_text)         # fills each layer's Dockerfile line
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

from dockyard.archive import TarEntry, TarReader
from dockyard.archive.whiteout import OPAQUE, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX
from dockyard.record import field, record
from dockyard.tools.analyze.layers import clean_path

KINDS = ("overwritten", "duplicate", "metadata-only", "deleted")


@record(frozen=True, slots=True)
class _Copy:
    layer: int
    size: int
    digest: str
    mode: int
    uid: int
    gid: int
    mtime: int


@record(frozen=True, slots=True)
class Waste:
    """One removable lower copy: its path, why it is removable, its bytes, the layer that made it
    removable and the layer it lives in."""

    path: str
    kind: str
    size: int
    layer: int
    lower: int


@record(slots=True)
class LayerWaste:
    """What one layer made removable, by kind, with the history entry, the fix and (``-f``) the line."""

    index: int
    command: str
    removable: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    files: int = 0
    fix: str = ""
    line: int | None = None


@record(slots=True)
class WasteReport:
    """All removable bytes (each counted once), the items biggest first and the layers that caused them."""

    total: int
    items: list[Waste]
    layers: list[LayerWaste]
    layer_of: dict[str, int] = field(default_factory=dict)  # each file of the image -> the layer it is from
    # per layer, oldest first: (path, bytes, "added" | "modified" | "removed") for each regular file
    changes: list[list[tuple[str, int, str]]] = field(default_factory=list)


def digest_entries(reader: TarReader) -> Iterator[tuple[TarEntry, str]]:
    """Each entry of a layer with the digest of its content ('' for all but non-empty regular files)."""
    for entry in reader:
        digest = ""
        if entry.isreg() and entry.size:
            h = hashlib.blake2b(digest_size=16)
            for chunk in reader.chunks():
                h.update(chunk)
            digest = h.hexdigest()
        yield entry, digest


class WasteTracker:
    """Feed it the layers in order; it keeps the visible regular files and what replaced or removed them."""

    def __init__(self) -> None:
        self._visible: dict[str, _Copy] = {}
        self._items: list[Waste] = []
        self._commands: list[str] = []
        self._changes: list[list[tuple[str, int, str]]] = []

    def _drop(self, path: str, layer: int, kind: str, subtree: bool) -> None:
        gone = [path] if path in self._visible else []
        if subtree:
            prefix = path.rstrip("/") + "/"
            gone += [p for p in self._visible if p.startswith(prefix)]
        for p in gone:
            copy = self._visible.pop(p)
            self._items.append(Waste(p, kind, copy.size, layer, copy.layer))
            self._changes[-1].append((p, copy.size, "removed"))

    def add_layer(self, index: int, command: str, changes: Iterable[tuple[TarEntry, str]]) -> None:
        """Apply one layer: its deletions act on the layers below, then its files replace theirs."""
        self._commands.append(command)
        self._changes.append([])
        deletions: list[tuple[str, bool]] = []  # (path, whole subtree)
        files: list[tuple[str, TarEntry, str]] = []
        for entry, digest in changes:
            path = clean_path(entry.name)
            if not path:
                continue
            head, _, base = path.rpartition("/")
            if base == OPAQUE:
                deletions.append((head or "/", True))
            elif base.startswith(WHITEOUT_PREFIX) and not base.startswith(WHITEOUT_META_PREFIX):
                deletions.append((f"{head}/{base[len(WHITEOUT_PREFIX):]}", True))
            elif not base.startswith(WHITEOUT_META_PREFIX):
                files.append((path, entry, digest))
        for path, subtree in deletions:
            if path == "/":
                for p in list(self._visible):
                    self._drop(p, index, "deleted", False)
            else:
                self._drop(path, index, "deleted", subtree)
        for path, entry, digest in files:
            if not entry.isreg():
                # a directory, link or device where a file was: the file below is gone
                self._drop(path, index, "deleted", False)
                continue
            new = _Copy(index, entry.size, digest, entry.mode & 0o7777, entry.uid, entry.gid, entry.mtime)
            old = self._visible.get(path)
            if old is not None:
                if old.digest != new.digest or old.size != new.size:
                    kind = "overwritten"
                elif (old.mode, old.uid, old.gid, old.mtime) == (new.mode, new.uid, new.gid, new.mtime):
                    kind = "duplicate"
                else:
                    kind = "metadata-only"
                self._items.append(Waste(path, kind, old.size, index, old.layer))
            self._changes[-1].append((path, new.size, "added" if old is None else "modified"))
            self._visible[path] = new

    def report(self) -> WasteReport:
        """The totals, the items (biggest first) and each layer's blame with the fix that removes it."""
        items = sorted((w for w in self._items if w.size > 0), key=lambda w: (-w.size, w.path))
        layers: dict[int, LayerWaste] = {}
        lowers: dict[int, set[int]] = {}
        for w in items:
            lw = layers.setdefault(w.layer, LayerWaste(w.layer, self._commands[w.layer]))
            lw.removable += w.size
            lw.files += 1
            lw.by_kind[w.kind] = lw.by_kind.get(w.kind, 0) + w.size
            lowers.setdefault(w.layer, set()).add(w.lower)
        for index, lw in layers.items():
            lw.fix = _fix(lw, [self._commands[i] for i in sorted(lowers[index])])
        ordered = sorted(layers.values(), key=lambda lw: (-lw.removable, lw.index))
        owners = {path: copy.layer for path, copy in self._visible.items()}
        return WasteReport(sum(w.size for w in items), items, ordered, owners, self._changes)


def plain_command(command: str) -> str:
    """A history entry without BuildKit's decoration: ``RUN /bin/sh -c x # buildkit`` -> ``RUN x``."""
    text = re.sub(r"\s*# buildkit$", "", command.strip())
    text = re.sub(r"^/bin/sh -c #\(nop\)\s*", "", text)
    text = re.sub(r"^(RUN\s+)?(\|\d+(\s+\S+=\S*)*\s+)?/bin/sh -c\s+", "RUN ", text)
    return " ".join(text.split())


_FIXES = {
    "chown": "use COPY --chown=USER:GROUP (or chown in the step that creates the files) instead of "
             "RUN chown -R",
    "chmod": "use COPY --chmod=MODE (or chmod in the step that creates the files) instead of RUN chmod -R",
    "metadata-only": "set modes, owners and times in the step that creates the files (a later touch copies "
                     "them all)",
    "ignore": "keep these files out of the image: add them to .dockerignore (or COPY only what is needed)",
    "deleted": "delete the files in the same RUN that creates them, or build them in a stage of their own "
               "(multi-stage build) and COPY --from only the result",
    "duplicate": "drop the step that writes the same files again, or merge it with the one that first "
                 "writes them",
    "overwritten": "merge the RUN steps that write these files, or use a multi-stage build and COPY --from "
                   "the final files",
}


def _fix(lw: LayerWaste, lower_commands: list[str]) -> str:
    """The change to the Dockerfile that makes this layer's waste go away."""
    kind = max(lw.by_kind, key=lambda k: lw.by_kind[k])
    own = plain_command(lw.command)
    if kind == "metadata-only":
        tool = next((t for t in ("chown", "chmod") if re.search(rf"\b{t}\b", own)), "metadata-only")
        return _FIXES[tool]
    if kind == "deleted" and any(plain_command(c).startswith(("COPY", "ADD")) for c in lower_commands):
        return _FIXES["ignore"]
    return _FIXES[kind]


def _instruction_texts(dockerfile: str) -> list[tuple[int, str]]:
    """(line, normalised text) of each instruction that can make a layer (RUN, COPY, ADD, WORKDIR)."""
    from dockyard.dockerfile import parse

    out = []
    for node in parse(dockerfile).children:
        kind = node.value.upper()
        if kind in ("RUN", "COPY", "ADD", "WORKDIR"):
            body = re.sub(r"^\s*\S+\s*", "", node.original)
            body = " ".join(w for w in body.split() if not w.startswith("--") or kind == "RUN")
            out.append((node.start_line, f"{kind} {body}".strip()))
    return out


def layer_lines(commands: list[str], dockerfile: str) -> list[int | None]:
    """The Dockerfile line of each layer: the latest instruction whose text matches its history entry
    (RUN commands compared without the shell prefix, COPY/ADD without their flags); ``None`` for the
    base image's layers and anything else that matches nothing."""
    texts = []
    for line, text in _instruction_texts(dockerfile):
        if text.startswith("RUN "):
            text = "RUN " + " ".join(w for w in text[4:].split() if not w.startswith("--"))
        texts.append((line, text))
    out: list[int | None] = []
    for command in commands:
        wanted = plain_command(command)
        if wanted.startswith("RUN "):
            wanted = "RUN " + " ".join(w for w in wanted[4:].split() if not w.startswith("--mount="))
        out.append(next((line for line, text in reversed(texts)
                         if wanted == text or (len(text) > 4 and (wanted in text or text in wanted))), None))
    return out


def blame_lines(report: WasteReport, commands: list[str], dockerfile: str) -> None:
    """Set each blamed layer's Dockerfile line (see :func:`layer_lines`)."""
    lines = layer_lines(commands, dockerfile)
    for lw in report.layers:
        lw.line = lines[lw.index]
