"""Lists as docker prints them (``images`` rows, tables, ``--format`` templates), without click:
``dockyard images`` is answered from here by ``cli.fast`` before click is loaded."""

from __future__ import annotations

import sys
import time

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` imports no typing and no re.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Protocol

    class ListedImage(Protocol):
        """What a listing row is made of: an ``ImageSummary``, or an image of the listing's copy."""

        @property
        def id(self) -> str: ...
        @property
        def repo_tags(self) -> Sequence[str]: ...
        @property
        def repo_digests(self) -> Sequence[str]: ...
        @property
        def created(self) -> float: ...
        @property
        def size(self) -> int: ...


# -- rendering: dockyard.cli.format does docker's templates, tables, units and filters ---------------


def _simple_actions(text: str) -> tuple[list[str], list[str]] | None:
    """A template made only of literal text and ``{{.Field}}`` actions (spaces allowed inside the
    braces): its literals and fields, interleaved as ``literals[0] fields[0] literals[1] ...``;
    None for any other action."""
    pieces = text.split("{{")
    literals, fields = [pieces[0]], []
    for piece in pieces[1:]:
        action, closed, literal = piece.partition("}}")
        action = action.strip()
        name = action[1:]
        if not (closed and action.startswith(".") and name[:1].isascii()
                and (name[:1].isalpha() or name[:1] == "_") and all(c.isalnum() or c == "_" for c in name)):
            return None
        fields.append(name)
        literals.append(literal)
    if any("}}" in lit for lit in literals):
        return None
    return literals, fields


def _fast_rows(fmt: str, records: Sequence[Mapping[str, Any]], headers: Mapping[str, str]) -> str | None:
    """The common ``{{.Field}}``-only templates over rows of strings, without the template engine.

    Returns None (use the engine) for anything else: other actions, a field some row lacks, a
    non-string value. ``dockyard images`` with thousands of rows spends most of its time here.
    """
    from dockyard.cli.format import header_for, tabwrite

    table = fmt.startswith("table")
    text = (fmt[len("table"):] if table else fmt).strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    parsed = _simple_actions(text)
    if parsed is None:
        return None
    literals, fields = parsed
    for rec in records:
        for f in fields:
            if type(rec.get(f)) is not str:
                return None
    out = []
    for rec in records:
        line = [literals[0]]
        for f, lit in zip(fields, literals[1:], strict=True):
            line.append(rec[f])
            line.append(lit)
        out.append("".join(line))
    body = "".join(line + "\n" for line in out)
    if not table:
        return body
    head = [literals[0]]
    for f, lit in zip(fields, literals[1:], strict=True):
        head.append(headers.get(f) or header_for(f))
        head.append(lit)
    text = "".join(head) + "\n" + body
    return _tabwrite_uniform(text) or tabwrite(text)


def _tabwrite_uniform(text: str, minwidth: int = 10, padding: int = 3) -> str | None:
    """Go's tabwriter (docker's settings) for the easy case: ASCII lines with the same number of
    tab-terminated cells, so every column spans all lines. None otherwise."""
    if not text.isascii():
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = [line.split("\t") for line in lines]
    ncells = len(rows[0])
    if any(len(r) != ncells for r in rows) or any(c in text for c in "\r\v\f\b"):
        return None
    widths = [max(minwidth, max(len(r[i]) for r in rows) + padding) for i in range(ncells - 1)]
    out = []
    for r in rows:
        out.append("".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[-1])
    return "\n".join(out) + "\n"


def write_formatted(records: Sequence[Mapping[str, Any]], fmt: str, headers: Mapping[str, str],
                    default: str = "") -> None:
    """Print records by a ``--format`` value: ``table [TEMPLATE]``, ``json`` or a raw template."""
    from dockyard.cli.format import format_rows

    if fmt in ("", "table"):
        fmt = default
    fast = _fast_rows(fmt, records, headers) if fmt != "json" else None
    sys.stdout.write(fast if fast is not None else format_rows(fmt, records, headers=headers))


def tabulate(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells through docker's tabwriter settings."""
    from dockyard.cli.format import tabwrite

    return tabwrite("".join("\t".join(r) + "\n" for r in rows))


def short_id(image_id: str, no_trunc: bool) -> str:
    # A plain str either way (not the Digest subclass): the table's fast path takes strings only.
    return str(image_id) if no_trunc else image_id.removeprefix("sha256:")[:12]


# -- images rows ----------------------------------------------------------------------------------------

IMAGE_COLUMNS = ("Repository", "Tag", "ID", "CreatedSince", "Size")


def image_rows(images: Sequence[ListedImage], *, digests: bool, no_trunc: bool,
               now: float | None = None, fields: str | None = None) -> list[dict[str, str]]:
    """One row per (repository, tag[, digest]) as ``docker images`` shows them.

    ``fields`` (a template) limits the costlier columns to those it names.
    """
    from dockyard.cli.format import created_since, go_time, human_size
    from dockyard.imageops.names import split_stored

    now = now or time.time()
    want_at = fields is None or "CreatedAt" in fields or "json" in fields
    want_virtual = fields is None or "VirtualSize" in fields or "json" in fields
    rows: list[dict[str, str]] = []
    for img in images:
        base = {
            "ID": short_id(img.id, no_trunc), "CreatedSince": created_since(img.created, now),
            "Size": human_size(img.size), "Containers": "N/A", "SharedSize": "N/A",
            "UniqueSize": "N/A",
        }
        if want_at:
            base["CreatedAt"] = go_time(img.created)
        if want_virtual:
            base["VirtualSize"] = human_size(img.size, 4)
        if not img.repo_tags and not img.repo_digests:
            rows.append({**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"})
            continue
        tags: dict[str, list[str]] = {}
        for t in img.repo_tags:
            repo, tag, _ = split_stored(t)
            tags.setdefault(repo, []).append(tag or "latest")
        dgs: dict[str, list[str]] = {}
        for d in img.repo_digests:
            repo, _, digest = split_stored(d)
            dgs.setdefault(repo, []).append(digest)
        for repo in sorted(tags):
            repo_digests = dgs.pop(repo, []) if digests else (dgs.pop(repo, None) and [])
            for tag in tags[repo]:
                for dg in repo_digests or ["<none>"]:
                    rows.append({**base, "Repository": repo, "Tag": tag, "Digest": dg})
        for repo in sorted(dgs):
            if digests:
                rows.extend({**base, "Repository": repo, "Tag": "<none>", "Digest": dg} for dg in dgs[repo])
            else:
                rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": ""})
    return rows
