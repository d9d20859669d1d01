"""Docker-style output for every command: ``--format`` templates, tables, humanised values.

The template engine is ``dockyard.gotemplate``; this module adds docker's template functions
(``json``, ``split``, ``join``, ``title``, ``lower``, ``upper``, ``pad``, ``truncate``), its table
header pass and error prefix (in ``dockyard.cli.templates``, imported on first use: ``dockyard images``
must start fast, and its default table needs no template engine). The API, in the
order a command needs it::

    # rows: dicts (Go maps) or Context (a docker formatter row: unknown fields are errors)
    out = format_rows(fmt, rows, headers=IMAGE_HEADERS, default=DEFAULT_IMAGE_TABLE, raw=IMAGE_RAW)
    # fmt "" / "table" -> default; "raw" -> raw; "table {{.A}}\\t{{.B}}" -> tabwriter table with headers;
    # "json" -> one JSON object per row; anything else -> one template execution per row.
    render(text, data, *, missing_key="default") -> str     # one template, docker's funcs
    parse_template(text) -> Template; Template.execute(data) -> str
    tabwrite(text) -> str                                     # Go tabwriter, docker settings (10, 1, 3, ' ')

    human_size(n) "1.98MB" (precision 3, images)   human_size(n, 4) "1.984MB" (system df)
    bytes_size(n) "1.5KiB"   human_duration(seconds) "About a minute"   created_since(ts) "2 weeks ago"
    go_time(ts) "2026-11-27 21:12:15 +0000 UTC"   rfc3339(ts)   short_id(id)   ellipsis(s, n)
    history_created_by(s, trunc=True) (45 columns + "…")   reclaimable(r, total) "1.984MB (100%)"

    ``--filter`` semantics live in ``dockyard.imageops.filters``.

Template values follow Go (see ``dockyard.gotemplate``). Every template error is an ``InvalidArgument``
whose message is docker's: ``template parsing error: template: :1:2: executing "" at <.Foo>: ...``.
"""

from __future__ import annotations

import math
import time as _time

from dockyard.errors import InvalidArgument

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` (its default table) imports no typing, re,
# unicodedata or goformat; they are imported where used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Iterable, Mapping
    from typing import Any

    from dockyard.cli.templates import DOCKER_FUNCS, HEADER_FUNCS, Template, parse_template, render
    from dockyard.gotemplate import Context, go_str

__all__ = ["BUILD_CACHE_HEADERS", "DEFAULT_BUILD_CACHE_TABLE", "DEFAULT_DF_TABLE", "DEFAULT_HISTORY_TABLE",
    "DEFAULT_IMAGE_TABLE", "DEFAULT_IMAGE_TABLE_DIGEST", "DF_HEADERS", "DOCKER_FUNCS", "HEADER_FUNCS",
    "HISTORY_HEADERS", "IMAGE_HEADERS", "IMAGE_RAW", "IMAGE_RAW_DIGEST", "Context", "Template",
    "bytes_size", "created_since", "ellipsis", "format_rows", "go_str", "go_time", "header_for",
    "history_created_by", "human_duration", "human_size", "parse_template", "reclaimable", "render",
    "rfc3339", "short_id", "tabwrite"]

_LAZY = {"DOCKER_FUNCS": "dockyard.cli.templates", "HEADER_FUNCS": "dockyard.cli.templates",
         "Template": "dockyard.cli.templates", "parse_template": "dockyard.cli.templates",
         "render": "dockyard.cli.templates", "Context": "dockyard.gotemplate",
         "go_str": "dockyard.gotemplate"}


def __getattr__(name: str) -> Any:
    # The template names load the engine on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dockyard.cli.format' has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------
# Tables


def _cell_width(s: str) -> int:
    """Display width as docker's tabwriter measures it (East Asian wide = 2, combining = 0)."""
    if s.isascii():
        return len(s)
    import unicodedata

    w = 0
    for ch in s:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def tabwrite(text: str, *, minwidth: int = 10, padding: int = 3, padchar: str = " ") -> str:
    """Align tab-terminated cells like Go's text/tabwriter (docker: minwidth 10, tabwidth 1, padding 3).

    Columns are blocks of consecutive lines that have a cell in that column; the text after a line's
    last tab is not part of any column and is never padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(padchar * (widths[j] - _cell_width(c)))
            out.append("".join(parts))
            if i + 1 < len(lines):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, _cell_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


IMAGE_HEADERS: dict[str, str] = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
HISTORY_HEADERS: dict[str, str] = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
    "Size": "SIZE", "Comment": "COMMENT",
}
DF_HEADERS: dict[str, str] = {
    "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
}
BUILD_CACHE_HEADERS: dict[str, str] = {
    "ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE", "Type": "CACHE TYPE", "Size": "SIZE",
    "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "InUse": "IN USE",
    "Shared": "SHARED", "Description": "DESCRIPTION",
}
DEFAULT_DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DEFAULT_BUILD_CACHE_TABLE = ("table {{.ID}}\t{{.Type}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                             "{{.UsageCount}}\t{{.Shared}}\t{{.Description}}")
DEFAULT_IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DEFAULT_IMAGE_TABLE_DIGEST = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}"
                              "\t{{.Size}}")
IMAGE_RAW = ("repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\n"
             "virtual_size: {{.Size}}\n")
IMAGE_RAW_DIGEST = ("repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\n"
                    "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
DEFAULT_HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def header_for(field: str) -> str:
    """Docker-style column name for a field without a declared header: ``CreatedAt`` -> ``CREATED AT``."""
    import re

    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", field)
    return " ".join(words).upper() if words else field.upper()


def _prepare(fmt: str) -> tuple[str, bool]:
    """docker's preFormat: strip ``table``, map ``json``, trim spaces, literal \\t \\n -> tab, newline."""
    table = fmt.startswith("table")
    if table:
        text = fmt[len("table"):]
    elif fmt == "json":
        text = "{{json .}}"
    else:
        text = fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return text, table


class _Headers(dict[str, str]):
    """The header row's data: declared names first, then a derived name for any other field."""

    def __missing__(self, key: str) -> str:
        return header_for(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)


def format_rows(fmt: str, rows: Iterable[Any], *, headers: Mapping[str, str] | None = None,
                default: str = "", raw: str = "") -> str:
    """Render rows the way docker's formatter does; returns the text with a newline after each row.

    ``fmt`` "" or "table" means ``default``, "raw" means ``raw`` when the command has one; a ``table``
    prefix prints a header row (fields named by ``headers``, else ``header_for``) and aligns columns
    with ``tabwrite``; ``json`` prints one JSON object per row; anything else is a template executed
    once per row.
    """
    if fmt in ("", "table"):
        fmt = default
    elif fmt == "raw" and raw:
        fmt = raw
    from dockyard.cli.templates import Template

    text, table = _prepare(fmt)
    tmpl = Template(text)
    body = "".join(tmpl.execute(row) + "\n" for row in rows)
    if not table:
        return body
    # docker ignores errors in the header pass and keeps what was written before them.
    head = tmpl.execute(_Headers(headers or {}), header=True, partial=True)
    return tabwrite(head + "\n" + body)


# --------------------------------------------------------------------------------------------------
# Humanised values

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's %.Ng (Python's %g differs only in cases sizes never reach)."""
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: SI units, base 1000 (``docker images``: 3, ``system df``: 4)."""
    i = 0
    value = float(size)
    while value >= 1000.0 and i < len(_DECIMAL) - 1:
        value /= 1000.0
        i += 1
    return _go_g(value, precision) + _DECIMAL[i]


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, base 1024, 4 significant digits."""
    i = 0
    value = float(size)
    while value >= 1024.0 and i < len(_BINARY) - 1:
        value /= 1024.0
        i += 1
    return _go_g(value, 4) + _BINARY[i]


def reclaimable(amount: int, total: int) -> str:
    """``system df``'s RECLAIMABLE cell: ``1.984MB (100%)``, no percentage when the total is 0."""
    if total > 0:
        return f"{human_size(amount, 4)} ({amount * 100 // total}%)"
    return human_size(amount, 4)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)  # Go's math.Round (half away from zero; d > 0)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _timestamp(t: float | _dt.datetime | str) -> float:
    if type(t) is float or type(t) is int:  # the listings' epoch seconds, without loading datetime
        return float(t)
    import datetime as _dt

    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return t.timestamp()
    if isinstance(t, str):
        return _parse_rfc3339(t)
    return float(t)


def _parse_rfc3339(s: str) -> float:
    """An OCI config ``created`` time (RFC 3339, nanoseconds allowed) as unix seconds."""
    import datetime as _dt
    import re

    from dockyard import goformat

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s.strip(),
                     flags=re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"parsing time {goformat.quote(s)}: not an RFC 3339 timestamp")
    base = _dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3).upper() == "Z" else m.group(3)))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def created_since(created: float | _dt.datetime | str, now: float | None = None) -> str:
    """``CREATED`` column: HumanDuration(now - created) + " ago"; "N/A" for a missing (zero) time."""
    ts = _timestamp(created) if created not in ("", None) else 0.0
    if ts <= 0:
        return "N/A"
    current = _time.time() if now is None else now
    return human_duration(current - ts) + " ago"


def go_time(t: float | _dt.datetime | str, tz: _dt.tzinfo | None = None) -> str:
    """Go's time.Time.String(): ``2026-11-27 21:12:15.553393688 +0000 UTC`` (local zone by default)."""
    import datetime as _dt
    import re

    from dockyard import goformat

    if isinstance(t, str):
        m = re.search(r"\.(\d+)", t)
        nanos = int((m.group(1) + "000000000")[:9]) if m else 0
        return goformat.format_time(_dt.datetime.fromtimestamp(math.floor(_timestamp(t)), tz or _local_tz()),
                                    nanos)
    if isinstance(t, _dt.datetime):
        dt = t if t.tzinfo else t.replace(tzinfo=_dt.UTC)
        return goformat.format_time(dt.astimezone(tz) if tz else dt, dt.microsecond * 1000)
    whole = math.floor(float(t))
    return goformat.format_time(_dt.datetime.fromtimestamp(whole, tz or _local_tz()),
                                round((float(t) - whole) * 1e9))


def _local_tz() -> _dt.tzinfo:
    import datetime as _dt

    tz = _dt.datetime.now().astimezone().tzinfo
    return tz if tz is not None else _dt.UTC


def short_id(image_id: str) -> str:
    """stringid.TruncateID: drop an ``algo:`` prefix, keep 12 characters."""
    _, sep, rest = image_id.partition(":")
    return (rest if sep else image_id)[:12]


def ellipsis(s: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``max_width`` display columns, the last one being ``…``.

    As docker: a width of 1 keeps just the first character, East Asian wide characters count 2.
    """
    if max_width <= 0:
        return ""
    if max_width == 1:
        return s[:1]
    if s.isascii():
        return s if len(s) <= max_width else s[:max_width - 1] + "…"
    import unicodedata

    widths = [2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s]
    if sum(widths) <= max_width:
        return s
    total = 0
    for i, w in enumerate(widths):
        if total + w > max_width - 1:
            # docker returns the string whole when even the first character does not fit.
            return s[:i] + "…" if i > 0 else s
        total += w
    return s


def history_created_by(created_by: str, *, trunc: bool = True) -> str:
    """``docker history``'s CREATED BY cell: tabs become spaces; cut to 45 columns unless ``--no-trunc``."""
    text = created_by.replace("\t", " ")
    return ellipsis(text, 45) if trunc else text


def rfc3339(t: float | _dt.datetime | str) -> str:
    """Go's ``time.Unix(t, 0).UTC().Format(time.RFC3339)``: ``2026-11-27T21:12:15Z`` (history CreatedAt)."""
    import datetime as _dt

    ts = math.floor(_timestamp(t))
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
