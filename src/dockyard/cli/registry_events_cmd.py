"""``dockyard registry retention|webhook|audit``: run retention, manage webhooks, export the audit log."""

from __future__ import annotations

import json
from typing import TextIO

import click

from dockyard.cli.registry_team_cmd import open_team, storage_options


@click.group("retention")
def retention() -> None:
    """Tag retention rules (set them with: registry project set)."""


@retention.command("run")
@click.argument("projects", nargs=-1, metavar="[PROJECT]...")
@click.option("--dry-run", "-n", is_flag=True, help="Only list what would be deleted.")
@storage_options
def retention_run(projects: tuple[str, ...], dry_run: bool, storage_dir: str | None,
                  s3_config: str | None) -> None:
    """Apply the retention rules of the projects (default: all); blobs go at the next gc."""
    team = open_team(storage_dir, s3_config)
    names = list(projects) or [p.name for p in team.directory.projects()]
    verb = "would delete" if dry_run else "deleted"
    tags = manifests = 0
    for name in names:
        plan = team.retention_plan(name) if dry_run else team.retention_run(name)
        for repo, tag, digest in plan.tags:
            click.echo(f"{verb} tag {repo}:{tag} ({digest})")
        for repo, digest, why in plan.manifests:
            click.echo(f"{verb} manifest {repo}@{digest} ({why})")
        tags += len(plan.tags)
        manifests += len(plan.manifests)
    click.echo(f"{verb}: {tags} tags, {manifests} manifests" + (" (blobs go at the next gc)" if tags and
                                                                   not dry_run else ""))


@click.group("webhook")
def webhook() -> None:
    """HTTP callbacks on push, delete and quota refusals, signed with X-Dockyard-Signature."""


@webhook.command("add")
@click.argument("project_name", metavar="PROJECT")
@click.argument("url")
@click.option("--event", "events", multiple=True, type=click.Choice(["push", "delete", "quota_exceeded",
                                                                      "scan_completed"]),
              help="Events to send (repeatable; default all).")
@click.option("--secret", default=None, envvar="DOCKYARD_WEBHOOK_SECRET",
              help="HMAC key (or $DOCKYARD_WEBHOOK_SECRET; default: a new one, printed once).")
@storage_options
def webhook_add(project_name: str, url: str, events: tuple[str, ...], secret: str | None,
                storage_dir: str | None, s3_config: str | None) -> None:
    """Add a webhook to a project."""
    from dockyard.registry.server.team.webhooks import add_hook

    hook = add_hook(open_team(storage_dir, s3_config).directory, project_name, url, list(events), secret)
    click.echo(f"id:     {hook['id']}")
    click.echo(f"events: {','.join(hook['events'])}")
    if secret is None:
        click.echo(f"secret: {hook['secret']}")


@webhook.command("ls")
@click.argument("project_name", metavar="PROJECT")
@storage_options
def webhook_ls(project_name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """List a project's webhooks."""
    p = open_team(storage_dir, s3_config).directory.need_project(project_name)
    click.echo(f"{'ID':<14} {'EVENTS':<28} URL")
    for hook in p.webhooks:
        click.echo(f"{hook['id']:<14} {','.join(hook['events']):<28} {hook['url']}")


@webhook.command("rm")
@click.argument("project_name", metavar="PROJECT")
@click.argument("hook_id", metavar="ID")
@storage_options
def webhook_rm(project_name: str, hook_id: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a webhook."""
    from dockyard.registry.server.team.webhooks import remove_hook

    remove_hook(open_team(storage_dir, s3_config).directory, project_name, hook_id)
    click.echo(f"webhook {hook_id} removed")


@webhook.command("log")
@storage_options
def webhook_log(storage_dir: str | None, s3_config: str | None) -> None:
    """Every delivery attempt, as JSON lines."""
    from dockyard.registry.server.team.webhooks import LOG

    for entry in open_team(storage_dir, s3_config).kv.entries(LOG):
        click.echo(json.dumps(entry, sort_keys=True))


@click.group("audit")
def audit() -> None:
    """The append-only audit log: who pushed, deleted or was refused what, when, from where."""


@audit.command("export")
@click.option("--project", "project_name", default=None, help="Only this project's repositories.")
@click.option("--since", default=None, metavar="TIME",
              help="From this UTC time on (ISO, e.g. 2026-01-31T12:00).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Write to a file (default stdout).")
@storage_options
def audit_export(project_name: str | None, since: str | None, output: TextIO,
                 storage_dir: str | None, s3_config: str | None) -> None:
    """Export the audit log as JSON lines."""
    from dockyard.registry.server.team.audit import entries

    for entry in entries(open_team(storage_dir, s3_config).kv, project_name, since):
        output.write(json.dumps(entry, sort_keys=True) + "\n")
