"""Image management commands: ``images``, ``image ls|inspect|history|tag|rm|prune``, ``history``,
``tag``, ``rmi``, with docker's flags, columns and exit codes.

Kept light: this module imports neither httpx, rich nor aiohttp, so ``dockyard images`` starts fast.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from dockyard.errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    from dockyard.client import Client
    from dockyard.imageops.images import DeleteItem, ImageSummary


def make_client(ctx: click.Context) -> Client:
    from dockyard.client import Client

    root = getattr(ctx.find_root().obj, "root", None)
    return Client(root)


# -- rendering (docker's units and Go-template subset) ------------------------------------------------

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def _go_g(value: float, precision: int) -> str:
    text = f"{value:.{precision}g}"
    if "e" in text:  # Go prints 1e+03 too, but docker never shows it for sizes under 1000 units
        text = f"{value:.0f}"
    return text


def human_size(size: float, precision: int = 4) -> str:
    """Docker's ``units.HumanSizeWithPrecision``: decimal units, ``precision`` significant digits."""
    i = 0
    while size >= 1000.0 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{_go_g(size, precision)}{_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``."""
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
    hours = int(seconds / 3600 + 0.5)
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


def since(created: float, now: float | None = None) -> str:
    if created <= 0:
        return "N/A"
    return human_duration((now or time.time()) - created) + " ago"


def go_time(created: float) -> str:
    """Go's default ``time.Time`` string, as ``CreatedAt`` shows it."""
    if created <= 0:
        return "0001-01-01 00:00:00 +0000 UTC"
    return datetime.fromtimestamp(int(created), UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def go_value(value: Any) -> str:
    """How Go's text/template prints a value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_MISSING = object()


def _lookup(obj: Any, path: str) -> Any:
    if path == ".":
        return obj
    for part in path.lstrip(".").split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        else:
            return _MISSING
    return obj


def _arg(obj: Any, token: str) -> Any:
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if token.startswith("."):
        return _lookup(obj, token)
    raise InvalidArgument(f'template parsing error: function "{token}" not defined')


def _tokens(action: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|\S+', action)


def _compile_action(text: str) -> Callable[[Any], str]:
    tokens = _tokens(text)
    if not tokens:
        raise InvalidArgument("template parsing error: missing value for command")
    head, rest = tokens[0], tokens[1:]
    if head.startswith("."):
        parts = [p for p in head.split(".") if p]
        if len(parts) == 1:  # the common case, {{.Field}}: one dict lookup
            key = parts[0]

            def field(obj: Any) -> str:
                value = obj.get(key, _MISSING) if isinstance(obj, dict | Mapping) else _MISSING
                if type(value) is str:
                    return value
                return "<no value>" if value is _MISSING else go_value(value)
            return field
        return lambda obj: (lambda v: "<no value>" if v is _MISSING else go_value(v))(_lookup(obj, head))
    if head not in ("json", "index", "join", "upper", "lower", "title", "len", "println"):
        raise InvalidArgument(f'template parsing error: function "{head}" not defined')

    def call(obj: Any) -> str:
        args = [None if a is _MISSING else a for a in (_arg(obj, t) for t in rest)]
        if head == "json":
            return json.dumps(args[0] if args else obj, separators=(",", ":"))
        if head == "index" and len(args) >= 2:
            value = args[0]
            try:
                for key in args[1:]:
                    value = value[key]  # type: ignore[index]
            except (IndexError, KeyError, TypeError):
                raise InvalidArgument("template: error calling index: index out of range") from None
            return go_value(value)
        if head == "join" and len(args) == 2:
            return str(args[1]).join(go_value(v) for v in (args[0] or []))
        if head in ("upper", "lower", "title") and len(args) == 1:
            return getattr(go_value(args[0]), head)()  # type: ignore[no-any-return]
        if head == "len" and len(args) == 1:
            return str(len(args[0] or []))
        if head == "println":
            return " ".join(go_value(a) for a in args) + "\n"
        raise InvalidArgument(f"template: wrong number of args for {head}")
    return call


@functools.lru_cache(maxsize=32)
def compile_template(template: str) -> Callable[[Any], str]:
    """Compile a Go-template subset once: ``{{.A.B}}``, ``{{json .A}}``, ``{{index .A 0}}``,
    ``{{join .A ","}}``, ``{{upper .A}}``, ``{{lower .A}}``, ``{{len .A}}``, ``{{println .A}}``."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    pieces: list[str | Callable[[Any], str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        if m.start() > pos:
            pieces.append(template[pos:m.start()])
        pieces.append(_compile_action(m.group(1)))
        pos = m.end()
    if pos < len(template):
        pieces.append(template[pos:])

    def run(obj: Any) -> str:
        return "".join(p if isinstance(p, str) else p(obj) for p in pieces)
    return run


def render(template: str, obj: Any) -> str:
    """Render ``obj`` through a Go-template subset (see ``compile_template``)."""
    return compile_template(template)(obj)


def tabulate(rows: Sequence[Sequence[str]], *, minwidth: int = 10, padding: int = 3) -> str:
    """Go's tabwriter as docker configures it (minwidth 10, padding 3, last column unpadded)."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    out = []
    for r in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        out.append(("".join(cells) + (r[-1] if r else "")).rstrip())
    return "\n".join(out) + "\n"


def write_formatted(records: Sequence[Mapping[str, Any]], fmt: str, headers: Mapping[str, str]) -> None:
    """Print records by a ``--format`` value: ``table [TEMPLATE]``, ``json`` or a raw template."""
    if fmt == "json":
        for rec in records:
            click.echo(json.dumps(rec, separators=(",", ":"), sort_keys=True))
        return
    if fmt.startswith("table"):
        template = fmt[len("table"):].strip()
        header = _ACTION.sub(lambda m: headers.get(m.group(1).strip().lstrip("."),
                                                   m.group(1).strip().lstrip(".").upper()),
                             template.replace("\\t", "\t"))
        run = compile_template(template)
        lines = [header.split("\t")] + [run(r).split("\t") for r in records]
        sys.stdout.write(tabulate(lines))
        return
    run = compile_template(fmt)
    sys.stdout.write("".join(run(rec) + "\n" for rec in records))


def parse_filters(values: Sequence[str], allowed: Sequence[str]) -> dict[str, list[str]]:
    """``key=value`` filter flags into a dict; docker's errors for bad ones."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, arg = value.partition("=")
        if not sep:
            raise InvalidArgument("bad format of filter (expected name=value)")
        key = key.strip().lower()
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(arg)
    return out


def short_id(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


# -- images --------------------------------------------------------------------------------------------

IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}


def image_rows(images: Sequence[ImageSummary], *, digests: bool, no_trunc: bool,
               now: float | None = None, fields: str | None = None) -> list[dict[str, str]]:
    """One row per (repository, tag[, digest]) as ``docker images`` shows them.

    ``fields`` (a template) limits the costlier columns to those it names.
    """
    from dockyard.imageops.images import split_stored

    now = now or time.time()
    want_at = fields is None or "CreatedAt" in fields or "json" in fields
    want_virtual = fields is None or "VirtualSize" in fields or "json" in fields
    rows: list[dict[str, str]] = []
    for img in images:
        base = {
            "ID": short_id(img.id, no_trunc), "CreatedSince": since(img.created, now),
            "Size": human_size(img.size, 3), "Containers": "N/A", "SharedSize": "N/A",
            "UniqueSize": "N/A",
        }
        if want_at:
            base["CreatedAt"] = go_time(img.created)
        if want_virtual:
            base["VirtualSize"] = human_size(img.size)
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


def filter_images(client: Client, images: list[ImageSummary], filters: Mapping[str, Sequence[str]]
                  ) -> list[ImageSummary]:
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
        want = value.lower() in ("true", "1")
        images = [i for i in images if (not i.repo_tags) == want]
    for spec in filters.get("label", []):
        key, sep, val = spec.partition("=")
        images = [i for i in images if key in i.labels and (not sep or i.labels[key] == val)]
    for ref in filters.get("before", []):
        limit = client.store.meta.get_image(client.resolve(ref))
        assert limit is not None
        from dockyard.imageops.images import parse_created

        images = [i for i in images if i.created < parse_created(limit.created)]
    for ref in filters.get("since", []):
        limit = client.store.meta.get_image(client.resolve(ref))
        assert limit is not None
        from dockyard.imageops.images import parse_created

        images = [i for i in images if i.created > parse_created(limit.created)]
    patterns = filters.get("reference", [])
    if patterns:
        from dockyard.oci.reference import familiar_match, parse_normalized

        kept = []
        for img in images:
            tags = [t for t in img.repo_tags if any(familiar_match(p, parse_normalized(t)) for p in patterns)]
            if tags:
                img.repo_tags = tags
                img.repo_digests = [d for d in img.repo_digests if any(
                    familiar_match(p, parse_normalized(d)) for p in patterns)]
                kept.append(img)
        images = kept
    return images


def _images(ctx: click.Context, all_: bool, quiet: bool, digests: bool, no_trunc: bool,
            filters: tuple[str, ...], fmt: str | None, repository: str | None) -> None:
    client = make_client(ctx)
    parsed = parse_filters(filters, ("dangling", "label", "before", "since", "reference"))
    if repository:
        parsed.setdefault("reference", []).append(repository)
    images = client.images(all=all_ or bool(parsed.get("dangling")))
    images = filter_images(client, images, parsed)
    if quiet:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        cols = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
        fmt = "table " + "\t".join("{{." + c + "}}" for c in cols)
    rows = image_rows(images, digests=digests, no_trunc=no_trunc, fields=fmt)
    write_formatted(rows, fmt, IMAGE_HEADERS)


_images_options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("-a", "--all", "all_", is_flag=True,
                 help="Show all images (default hides intermediate images)"),
    click.option("-q", "--quiet", is_flag=True, help="Only show image IDs"),
    click.option("--digests", is_flag=True, help="Show digests"),
    click.option("--no-trunc", is_flag=True, help="Don't truncate output"),
    click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
                 help="Filter output based on conditions provided"),
    click.option("--format", "fmt", default=None, metavar="STRING",
                 help="Format output using a custom template: 'table', 'table TEMPLATE', 'json', "
                      "or TEMPLATE"),
    click.argument("repository", required=False),
]


def _with_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_images_options):
        f = option(f)
    return f


@click.command("images")
@_with_options
@click.pass_context
def images_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """List images."""
    _images(ctx, **kw)


@click.command("ls")
@_with_options
@click.pass_context
def ls_cmd(ctx: click.Context, /, **kw: Any) -> None:
    """List images."""
    _images(ctx, **kw)


# -- inspect ------------------------------------------------------------------------------------------

@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, metavar="STRING",
              help="Format output using a custom template")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, images: tuple[str, ...]) -> None:
    """Display detailed information on one or more images."""
    client = make_client(ctx)
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in images:
        try:
            found.append(client.inspect(name))
        except DockyardError as exc:
            errors.append(str(exc))
    if fmt and fmt != "json":
        for obj in found:
            click.echo(render(fmt, obj))
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False) if found else "[]")
    if errors:
        for e in errors:
            click.echo(f"Error: {e}", err=True)
        sys.exit(1)  # not ctx.exit: main() drops the code click returns in non-standalone mode


# -- history ------------------------------------------------------------------------------------------

HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("history")
@click.option("-H", "--human", type=click.BOOL, default=True, show_default=True,
              help="Print sizes and dates in human readable format")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", default=None, metavar="STRING", help="Format output using a custom template")
@click.argument("image")
@click.pass_context
def history_cmd(ctx: click.Context, human: bool, no_trunc: bool, quiet: bool, fmt: str | None,
                image: str) -> None:
    """Show the history of an image."""
    client = make_client(ctx)
    now = time.time()
    rows = []
    for h in client.history(image):
        created_by = h.created_by.replace("\t", " ")
        rows.append({
            "ID": h.id if h.id == "<missing>" else short_id(h.id, no_trunc),
            "CreatedSince": since(h.created, now) if human else (
                datetime.fromtimestamp(h.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if h.created > 0
                else "0001-01-01T00:00:00Z"),
            "CreatedAt": datetime.fromtimestamp(h.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if h.created > 0 else "0001-01-01T00:00:00Z",
            "CreatedBy": created_by if no_trunc else ellipsis(created_by, 45),
            "Size": human_size(h.size, 3) if human else str(h.size),
            "Comment": h.comment,
        })
    if quiet:
        fmt = "{{.ID}}"
    if not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    write_formatted(rows, fmt, HISTORY_HEADERS)


# -- tag, rmi, prune -------------------------------------------------------------------------------------

@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    make_client(ctx).tag(source, target)


def _print_deleted(items: Sequence[DeleteItem], *, prefix_case: str = "title") -> None:
    for item in items:
        if item.untagged:
            click.echo(f"{'Untagged' if prefix_case == 'title' else 'untagged'}: {item.untagged}")
        else:
            click.echo(f"{'Deleted' if prefix_case == 'title' else 'deleted'}: {item.deleted}")


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rmi_cmd(ctx: click.Context, force: bool, no_prune: bool, images: tuple[str, ...]) -> None:
    """Remove one or more images."""
    client = make_client(ctx)
    failed = False
    for name in images:
        try:
            _print_deleted(client.remove(name, force=force, no_prune=no_prune))
        except DockyardError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
    if failed:
        sys.exit(1)  # not ctx.exit: main() drops the code click returns in non-standalone mode


def confirm(message: str, force: bool) -> bool:
    """Docker's prompt: anything but y/Y (or -f) declines."""
    if force:
        return True
    click.echo(f"{message}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "until=<timestamp>")')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused images."""
    parsed = parse_filters(filters, ("until", "label", "label!", "dangling"))
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not confirm(warning, force):
        return
    report = make_client(ctx).prune(all=all_, filters=parsed)
    if report.deleted:
        click.echo("Deleted Images:")
        _print_deleted(report.deleted, prefix_case="lower")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report.space_reclaimed)}")


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, no_prune: bool, images: tuple[str, ...]) -> None:
    """Remove one or more images."""
    ctx.invoke(rmi_cmd, force=force, no_prune=no_prune, images=images)


# ``image build|import|load|pull|push|save`` are the top-level commands of other modules.
_BORROWED = ("build", "import", "load", "pull", "push", "save")


class _ImageGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from dockyard.cli.main import COMMANDS

        return sorted(set(self.commands) | {n for n in _BORROWED if n in COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in _BORROWED:
            from dockyard.cli.main import cli

            return cli.get_command(ctx, cmd_name)
        return None


@click.group("image", cls=_ImageGroup)
def image_group() -> None:
    """Manage images."""


image_group.add_command(ls_cmd)
image_group.add_command(ls_cmd, "list")
image_group.add_command(inspect_cmd)
image_group.add_command(history_cmd)
image_group.add_command(tag_cmd)
image_group.add_command(rm_cmd)
image_group.add_command(rm_cmd, "remove")
image_group.add_command(prune_cmd)
