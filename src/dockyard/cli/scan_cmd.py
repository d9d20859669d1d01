"""``dockyard scan``: SBOM and vulnerabilities of an image (like trivy), and ``scan db import|info``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from dockyard.errors import DockyardError

_FORMATS = ("table", "json", "cyclonedx", "spdx-json")


class _ScanGroup(click.Group):
    """``scan IMAGE`` runs the image scan; ``scan db ...`` the database commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["image", *args]
        return super().parse_args(ctx, args)


def _db_path(ctx: click.Context, db: str | None) -> Path:
    if db:
        return Path(db)
    from dockyard.config import resolve_root

    return Path(resolve_root(getattr(ctx.find_root().obj, "root", None))) / "scan" / "vulndb.sqlite"


_DB_OPTION = click.option("--db", "db", envvar="DOCKYARD_VULN_DB", metavar="PATH", default=None,
                          help="Vulnerability database (default: <store>/scan/vulndb.sqlite).")


@click.group("scan", cls=_ScanGroup, context_settings={"help_option_names": ["-h", "--help"]})
def scan_cmd() -> None:
    """Scan an image: its packages (SBOM) and their known vulnerabilities from an offline database.

    \b
    dockyard scan IMAGE [--format table|json|cyclonedx|spdx-json] [--severity CRITICAL,HIGH]
    dockyard scan db import FILE   (OSV JSON records: a .json file, a directory or a .zip)
    dockyard scan db info
    """


@scan_cmd.command("image", hidden=True)
@click.argument("image")
@click.option("--format", "-f", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True,
              help="Output format (cyclonedx and spdx-json are SBOMs).")
@click.option("--severity", "-s", default="UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL", show_default=True,
              help="Severities to report, comma separated.")
@click.option("--exit-code", default=0, show_default=True, type=int,
              help="Exit code when vulnerabilities were found.")
@click.option("--list-all-pkgs", is_flag=True, help="Table format: also list every package found.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the report to a file instead of stdout.")
@_DB_OPTION
@click.pass_context
def scan_image_cmd(ctx: click.Context, image: str, fmt: str, severity: str, exit_code: int,
                   list_all_pkgs: bool, output: str | None, db: str | None) -> None:
    """Scan IMAGE for vulnerable packages."""
    from dockyard.cli.image_cmds import make_client
    from dockyard.tools.scan import VulnDB, parse_severities, scan_image, to_cyclonedx, to_json, to_spdx

    severities = parse_severities(severity)
    path = _db_path(ctx, db)
    # An SBOM needs no database; a vulnerability report does (a missing one is an error then).
    vdb = VulnDB(path) if (fmt in ("table", "json") or path.exists()) else None
    try:
        with make_client(ctx) as client:
            result = scan_image(client, image, vdb, severities)
    finally:
        if vdb is not None:
            vdb.close()
    if fmt == "json":
        text = json.dumps(to_json(result), indent=2)
    elif fmt == "cyclonedx":
        text = json.dumps(to_cyclonedx(result), indent=2)
    elif fmt == "spdx-json":
        text = json.dumps(to_spdx(result), indent=2)
    else:
        text = render_table(result, severities, list_all_pkgs)
    if output:
        Path(output).write_text(text + "\n")
    else:
        click.echo(text)
    if exit_code and result.findings:
        sys.stdout.flush()
        raise _VulnerabilitiesFound(exit_code, len(result.findings))


class _VulnerabilitiesFound(DockyardError):
    def __init__(self, code: int, count: int) -> None:
        super().__init__(f"{count} vulnerabilit{'y' if count == 1 else 'ies'} found")
        self.exit_code = code


def _box(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(cells: list[str]) -> str:
        return "│" + "│".join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + "│"

    out = [line("┌", "┬", "┐"), row(headers), line("├", "┼", "┤")]
    out += [row(r) for r in rows]
    out.append(line("└", "┴", "┘"))
    return out


def render_table(result: Any, severities: list[str], list_all_pkgs: bool = False) -> str:
    """trivy's table: one section per package type with a Total line and the findings."""
    from dockyard.tools.scan import target_of

    order = [s for s in ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL") if s in severities]
    kinds = sorted({p.type for p in result.sbom.packages})
    out: list[str] = []
    if not kinds:
        out.append(f"{result.sbom.image}: no packages found")
    for kind in kinds:
        findings = [f for f in result.findings if f.package.type == kind]
        title = target_of(result, kind)
        counts = {s: sum(1 for f in findings if f.severity == s) for s in order}
        out += ["", title, "=" * len(title),
                f"Total: {len(findings)} (" + ", ".join(f"{s}: {counts[s]}" for s in order) + ")", ""]
        if findings:
            rows = [[f.package.name, f.vuln.id, f.severity, "fixed" if f.fixed else "affected",
                     f.package.version, f.fixed,
                     f.vuln.title[:60] + ("..." if len(f.vuln.title) > 60 else "")] for f in findings]
            headers = ["Library", "Vulnerability", "Severity", "Status", "Installed Version", "Fixed Version",
                       "Title"]
            out += _box(headers, rows)
        if list_all_pkgs:
            pkgs = [p for p in result.sbom.packages if p.type == kind]
            out += ["", f"Packages ({len(pkgs)}):"]
            out += _box(["Name", "Version", "Path"], [[p.name, p.version, p.path] for p in pkgs])
    return "\n".join(out).lstrip("\n")


@scan_cmd.group("db")
def db_group() -> None:
    """Manage the offline vulnerability database."""


@db_group.command("import")
@click.argument("source", type=click.Path(exists=True))
@_DB_OPTION
@click.pass_context
def db_import_cmd(ctx: click.Context, source: str, db: str | None) -> None:
    """Import OSV records from SOURCE (a .json file, a directory of them or a .zip)."""
    from dockyard.tools.scan import VulnDB

    path = _db_path(ctx, db)
    start = time.monotonic()
    with VulnDB(path) as vdb:
        count = vdb.import_path(source)
    click.echo(f"Imported {count} records into {path} in {time.monotonic() - start:.2f}s")


@db_group.command("info")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_DB_OPTION
@click.pass_context
def db_info_cmd(ctx: click.Context, fmt: str, db: str | None) -> None:
    """Show what the vulnerability database holds."""
    from dockyard.tools.scan import VulnDB

    with VulnDB(_db_path(ctx, db)) as vdb:
        info = vdb.info()
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["updated"])) if info["updated"] else "-"
    lines = [f"Path: {info['path']}", f"Updated: {updated}", f"Source: {info['source'] or '-'}",
             f"Vulnerabilities: {info['vulnerabilities']}", f"Affected packages: {info['affected']}",
             "Ecosystems:"]
    lines += [f"  {eco}: {n}" for eco, n in info["ecosystems"].items()] or ["  (none)"]
    click.echo("\n".join(lines))
