"""``dockyard report``: one report of an image (lint, sizes, vulnerabilities) as HTML, JSON or SARIF."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("report")
@click.argument("image")
@click.option("-f", "--file", "dockerfile", default=None, metavar="DOCKERFILE",
              help="The Dockerfile the image was built from (lint findings; lines for everything else).")
@click.option("--target", default=None, metavar="STAGE",
              help="The stage the image was built from (default: the Dockerfile's last).")
@click.option("--format", "fmt", type=click.Choice(["html", "json", "sarif"]), default="html",
              show_default=True, help="Output format.")
@click.option("-o", "--output", default=None, metavar="FILE",
              help="Write the report to FILE (default: stdout).")
@click.option("--db", "db", envvar="DOCKYARD_VULN_DB", metavar="PATH", default=None,
              help="Vulnerability database (default: <store>/scan/vulndb.sqlite, used when it exists).")
@click.pass_context
def report_cmd(ctx: click.Context, image: str, dockerfile: str | None, target: str | None, fmt: str,
               output: str | None, db: str | None) -> None:
    """Report on an image: lint, size and vulnerability findings joined on the Dockerfile line of each."""
    from dockyard.cli.image_cmds import make_client
    from dockyard.cli.scan_cmd import _db_path
    from dockyard.tools.report import build_report, render_html, to_json, to_sarif
    from dockyard.tools.scan import VulnDB

    text = None
    if dockerfile is not None:
        try:
            text = Path(dockerfile).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read {dockerfile}: {exc.strerror}") from None
    path = _db_path(ctx, db)
    vdb = VulnDB(path) if path.exists() else None
    try:
        with make_client(ctx) as client:
            report = build_report(client, image, text, Path(dockerfile or "Dockerfile").name,
                                  Path(dockerfile).parent if dockerfile else None, vdb, target)
    finally:
        if vdb is not None:
            vdb.close()
    if fmt == "html":
        body = render_html(report)
    elif fmt == "json":
        body = json.dumps(to_json(report), indent=2) + "\n"
    else:
        body = json.dumps(to_sarif(report, dockerfile or "Dockerfile"), indent=2) + "\n"
    if output:
        Path(output).write_text(body, encoding="utf-8")
    else:
        click.echo(body, nl=False)
