"""``images --tree`` as Docker 27's CLI prints it: one entry per image index (or image) with its
names, then one row per platform it holds, with ID, disk usage, content size and "in use"."""

from __future__ import annotations

import os

from dockyard.cli.format import human_size
from dockyard.cli.terminal import terminal_size
from dockyard.client import Client
from dockyard.errors import DockyardError
from dockyard.imageops import platforms
from dockyard.imageops.images import ImageSummary, image_size, normalize_tag
from dockyard.record import field, record

WARNING = "WARNING: This is an experimental feature. The output may change and shouldn't be depended on."
SPACING = 3


@record
class _Details:
    id: str
    disk: int
    content: int
    in_use: bool


@record
class _Entry:
    names: list[str]
    details: _Details
    children: list[tuple[str, _Details]] = field(default_factory=list)


@record(frozen=True)
class _Column:
    title: str
    width: int
    align: str  # "l", "c" or "r"

    def print(self, value: str) -> str:
        n = len(value)
        if n > self.width:
            return value[: self.width - 3] + "..."
        fill = self.width - n
        if self.align == "r":
            return " " * fill + value
        if self.align == "c":
            return " " * (fill // 2) + value + " " * (fill - fill // 2)
        return value + " " * fill


def _entries(client: Client, images: list[ImageSummary]) -> list[_Entry]:
    store = client.store
    sizes = store.meta.layer_sizes()
    used = client.images_in_use()

    def details(image_id: str) -> _Details:
        rec = store.meta.get_image(image_id)
        unpacked = image_size(rec, sizes) if rec is not None else 0
        try:
            content = platforms.content_size(store, image_id)
        except DockyardError:  # a layer blob gone (only its snapshot left): nothing to count
            content = 0
        return _Details(image_id, content + unpacked, content, image_id in used)

    out: list[_Entry] = []
    for img in images:
        # Tags naming the same index (or the same single image) are one entry, as Docker's.
        groups: dict[str, list[str]] = {}
        for tag in img.repo_tags:
            full = normalize_tag(tag)
            groups.setdefault(str(platforms.index_for(store, full) or img.id), []).append(tag)
        if not groups:
            groups[str(img.id)] = []
        for top_id, names in groups.items():
            held = platforms.members(store, normalize_tag(names[0])) if names else []
            children = [(m.platform, details(str(m.image_id))) for m in held]
            if not children:
                children = [(str(platforms.platform_of(store, str(img.id))), details(str(img.id)))]
            top = _Details(top_id, sum(d.disk for _, d in children), sum(d.content for _, d in children),
                           any(d.in_use for _, d in children))
            out.append(_Entry(names, top, children))
    return out


def render_tree(client: Client, images: list[ImageSummary]) -> str:
    """The whole ``images --tree`` output (Docker 27's layout; 80 columns when not a terminal; IDs
    always short, as Docker's)."""
    entries = _entries(client, images)
    size = terminal_size(1)
    width = max(20, size[1] if size is not None and os.isatty(1) else 80)
    columns = [_Column("Image", 0, "l"), _Column("ID", 12, "l"),
               _Column("Disk usage", 10, "r"), _Column("Content size", 12, "r"), _Column("In Use", 6, "c")]
    name_width = width
    for i, col in enumerate(columns[1:], 1):
        need = col.width + SPACING
        if name_width - need < 12:  # the first column would get too narrow: drop the rest
            columns = columns[:i]
            break
        name_width -= need
    # As Docker measures it: the tree prefix "└─ " counts its UTF-8 bytes (7).
    widest = max([len("Image"), *(len(n) for e in entries for n in e.names),
                  *(len(p) + len("└─ ".encode()) for e in entries for p, _ in e.children)])
    first = _Column("Image", min(name_width, widest), "l")
    columns[0] = first

    def values(d: _Details) -> list[str]:
        mark = "✔" if d.in_use else " "
        return [d.id.removeprefix("sha256:")[:12], human_size(d.disk), human_size(d.content), mark]

    def row(label: str, d: _Details) -> str:
        cells = [first.print(label)]
        cells += [" " * SPACING + col.print(v) for col, v in zip(columns[1:], values(d), strict=False)]
        return "".join(cells)

    lines = [WARNING, ""]
    lines.append((" " * SPACING).join(col.print(col.title.upper()) for col in columns))
    spacing = any(e.children for e in entries)
    for e in entries:
        names = e.names or ["<untagged>"]
        lines.extend(first.print(n) for n in names[:-1])
        lines.append(row(names[-1], e.details))
        for i, (platform, d) in enumerate(e.children):
            lines.append(row(("├─ " if i < len(e.children) - 1 else "└─ ") + platform, d))
        if e.children or spacing:  # a blank line after each entry once any has platforms
            lines.append("")
    return "\n".join(lines) + "\n"
