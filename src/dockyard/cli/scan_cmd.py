"""``dockyard scan``: SBOM and vulnerabilities of an image (like trivy), and ``scan db import|info``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from dockyard.errors import DockyardError

_FORMATS = ("table", "json", "sarif", "cyclonedx", "spdx-json")
_REPORTS = ("table", "json", "sarif")  # the formats that report vulnerabilities


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
    dockyard scan IMAGE [--format table|json|sarif|cyclonedx|spdx-json] [--severity CRITICAL,HIGH]
                        [--ignore-unfixed] [--vex OPENVEX.json] [--exit-code N]
    dockyard scan db update [--source [KIND=]URL|DIR]
    dockyard scan db export FILE / scan db import FILE   (a bundle, or OSV records)
    dockyard scan db info
    """


@scan_cmd.command("image", hidden=True)
@click.argument("image")
@click.option("--format", "-f", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True,
              help="Output format (cyclonedx and spdx-json are SBOMs).")
@click.option("--severity", "-s", default="UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL", show_default=True,
              help="Severities to report, comma separated.")
@click.option("--exit-code", default=0, show_default=True, type=int,
              help="Exit code when vulnerabilities were found (or when there is no database to tell).")
@click.option("--ignore-unfixed", is_flag=True, help="Report only vulnerabilities that have a fix.")
@click.option("--vex", "vex_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="OpenVEX document: its not_affected/fixed statements suppress findings (repeatable).")
@click.option("--list-all-pkgs", is_flag=True, help="Table format: also list every package found.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the report to a file instead of stdout.")
@click.option("--max-db-age", "max_age", default=None, metavar="AGE",
              help="Warn when the vulnerability data is older than AGE (7d, 36h; 0: never). "
                   "Default: config.toml [scan] max-db-age, else 7d.")
@_DB_OPTION
@click.pass_context
def scan_image_cmd(ctx: click.Context, image: str, fmt: str, severity: str, exit_code: int,
                   ignore_unfixed: bool, vex_files: tuple[str, ...], list_all_pkgs: bool, output: str | None,
                   max_age: str | None, db: str | None) -> None:
    """Scan IMAGE for vulnerable packages."""
    from dockyard.cli.image_cmds import make_client
    from dockyard.tools.scan import VulnDB, parse_severities, scan_image, to_cyclonedx, to_json, to_spdx
    from dockyard.tools.scan.sarif import to_sarif
    from dockyard.tools.scan.vex import load_vex

    severities = parse_severities(severity)
    limit = _max_age(max_age)
    vex = [load_vex(f) for f in vex_files]
    path = _db_path(ctx, db)
    vdb = VulnDB(path) if path.exists() else None
    try:
        if vdb is not None and fmt in _REPORTS:
            _warn_if_old(vdb, limit)
        with make_client(ctx) as client:
            result = scan_image(client, image, vdb, severities, ignore_unfixed=ignore_unfixed, vex=vex)
    finally:
        if vdb is not None:
            vdb.close()
    if vdb is None and fmt in _REPORTS:
        click.echo(f"WARNING: no vulnerability database at {path}: packages only. Get data with "
                   "'dockyard scan db update' (or 'dockyard scan db import BUNDLE' offline).", err=True)
    if fmt == "json":
        text = json.dumps(to_json(result), indent=2)
    elif fmt == "sarif":
        text = json.dumps(to_sarif(result), indent=2)
    elif fmt == "cyclonedx":
        text = json.dumps(to_cyclonedx(result), indent=2)
    elif fmt == "spdx-json":
        text = json.dumps(to_spdx(result), indent=2)
    elif vdb is None:
        text = render_summary(result)
    else:
        text = render_table(result, severities, list_all_pkgs)
    if output:
        Path(output).write_text(text + "\n")
    else:
        click.echo(text)
    if exit_code and vdb is None and fmt in _REPORTS:
        sys.stdout.flush()
        raise _NoDatabase(exit_code)
    if exit_code and result.findings:
        sys.stdout.flush()
        raise _VulnerabilitiesFound(exit_code, len(result.findings))


def _max_age(flag: str | None) -> float:
    from dockyard.config import config_table
    from dockyard.tools.scan.update import DEFAULT_MAX_AGE, parse_age

    if flag is not None:
        return parse_age(flag)
    value = config_table("scan").get("max-db-age")
    if value is None:
        return DEFAULT_MAX_AGE
    return parse_age(str(value), "config.toml [scan] max-db-age")


def _warn_if_old(vdb: Any, limit: float) -> None:
    from dockyard.tools.scan.update import data_age, describe_age

    info = vdb.info()
    age = data_age(info)
    if limit and age > limit:
        date = time.strftime("%Y-%m-%d", time.gmtime(info["data_date"]))
        click.echo(f"WARNING: the vulnerability data is {describe_age(age)} old (of {date}; limit "
                   f"{describe_age(limit)}): run 'dockyard scan db update'", err=True)


class _NoDatabase(DockyardError):
    def __init__(self, code: int) -> None:
        super().__init__("no vulnerability database: cannot tell whether the image is vulnerable")
        self.exit_code = code


def render_summary(result: Any) -> str:
    """Without vulnerability data: the image, its OS and how many packages of each type it has."""
    from dockyard.tools.scan import target_of

    sbom = result.sbom
    kinds = sorted({p.type for p in sbom.packages})
    if not kinds:
        return f"{sbom.image}: no packages found"
    out = [f"{sbom.image}: {len(sbom.packages)} packages (no vulnerability data)"]
    out += [f"  {target_of(result, kind)}: {sum(1 for p in sbom.packages if p.type == kind)} {kind}"
            for kind in kinds]
    return "\n".join(out)


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
    if result.suppressed:
        out += ["", f"Suppressed by VEX: {len(result.suppressed)} ("
                + ", ".join(f"{s.finding.vuln.id} in {s.finding.package.name}: {s.status}"
                            for s in result.suppressed) + ")"]
    return "\n".join(out).lstrip("\n")


@scan_cmd.group("db")
def db_group() -> None:
    """Manage the offline vulnerability database."""


@db_group.command("update")
@click.option("--source", "sources", multiple=True, metavar="[KIND=]URL|PATH",
              help="Where to update from (repeatable). KIND: osv (default; a base with OSV's "
                   "<Ecosystem>/all.zip layout, HTTP or a directory), debian (the security tracker JSON), "
                   "alpine (a secdb base); a bare KIND is its public source. Default: OSV's public bucket.")
@click.option("--ecosystem", "ecosystems", multiple=True, metavar="NAME",
              help="OSV ecosystems to fetch (repeatable; default: all the source has).")
@_DB_OPTION
@click.pass_context
def db_update_cmd(ctx: click.Context, sources: tuple[str, ...], ecosystems: tuple[str, ...],
                  db: str | None) -> None:
    """Fetch vulnerability data (incrementally; the database is replaced only when all of it is good)."""
    from dockyard.tools.scan.update import OSV_BUCKET, Source, parse_source, update_db

    srcs = [parse_source(s) for s in sources] or [Source("osv", OSV_BUCKET)]
    path = _db_path(ctx, db)
    start = time.monotonic()
    report = update_db(path, srcs, list(ecosystems) or None)
    for step in report.steps:
        detail = {"updated": f"{step.records} records", "incremental": f"{step.records} changed records",
                  "unchanged": "not modified", "absent": "not offered by this source"}[step.status]
        if step.removed:
            detail += f", {step.removed} removed"
        if step.checked:
            detail += f", {step.checked} verified"
        click.echo(f"{step.source} {step.part}: {detail}")
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.data_date))
    click.echo(f"{'Updated' if report.changed else 'Up to date:'} {path} (data of {date}) "
               f"in {time.monotonic() - start:.2f}s")


@db_group.command("import")
@click.argument("source", type=click.Path(exists=True))
@_DB_OPTION
@click.pass_context
def db_import_cmd(ctx: click.Context, source: str, db: str | None) -> None:
    """Import SOURCE: a bundle from 'scan db export', or OSV records (a .json file, a directory, a .zip)."""
    from dockyard.tools.scan.update import import_bundle, import_records, is_bundle

    path = _db_path(ctx, db)
    start = time.monotonic()
    if is_bundle(Path(source)):
        manifest = import_bundle(path, Path(source))
        date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(manifest.get("data_date") or 0)))
        click.echo(f"Imported bundle {source} ({manifest.get('vulnerabilities')} records, data of {date}) "
                   f"into {path}")
        return
    count = import_records(path, Path(source))
    click.echo(f"Imported {count} records into {path} in {time.monotonic() - start:.2f}s")


@db_group.command("export")
@click.argument("dest", type=click.Path(dir_okay=False))
@_DB_OPTION
@click.pass_context
def db_export_cmd(ctx: click.Context, dest: str, db: str | None) -> None:
    """Write the whole database to one bundle file DEST (for 'scan db import' on an air-gapped site)."""
    from dockyard.tools.scan.update import export_bundle

    manifest = export_bundle(_db_path(ctx, db), Path(dest))
    click.echo(f"Exported {manifest['vulnerabilities']} records to {dest} (sha256 {manifest['sha256']})")


@db_group.command("info")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_DB_OPTION
@click.pass_context
def db_info_cmd(ctx: click.Context, fmt: str, db: str | None) -> None:
    """Show what the vulnerability database holds and how old its data is."""
    from dockyard.tools.scan import VulnDB
    from dockyard.tools.scan.update import data_age, describe_age

    with VulnDB(_db_path(ctx, db)) as vdb:
        info = vdb.info()
    info["age_seconds"] = round(data_age(info))
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return

    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "-"

    lines = [f"Path: {info['path']}", f"Schema: {info['schema']}", f"Updated: {when(info['updated'])}",
             f"Data date: {when(info['data_date'])} ({describe_age(info['age_seconds'])} old)",
             f"Newest record: {info['newest_record'] or '-'}", f"Source: {info['source'] or '-'}",
             f"Vulnerabilities: {info['vulnerabilities']}", f"Affected packages: {info['affected']}",
             "Ecosystems:"]
    lines += [f"  {eco}: {n}" for eco, n in info["ecosystems"].items()] or ["  (none)"]
    click.echo("\n".join(lines))
