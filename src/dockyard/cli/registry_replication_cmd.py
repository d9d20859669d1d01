"""``dockyard registry replication add|ls|rm|run|log``: push-based replication rules to other registries."""

from __future__ import annotations

import json
import sys
import time

import click

from dockyard.cli.registry_team_cmd import open_team, storage_options


@click.group("replication")
def replication() -> None:
    """Copy pushed tags to another registry (on push, or on a schedule)."""


@replication.command("add")
@click.argument("target", metavar="HOST[:PORT][/NAMESPACE]")
@click.option("--repo", "repositories", default="*", show_default=True, metavar="GLOB",
              help="Repositories to copy (e.g. 'team/*').")
@click.option("--tag", "tags", default="*", show_default=True, metavar="GLOB",
              help="Tags to copy (e.g. 'v*').")
@click.option("--trigger", type=click.Choice(["push", "schedule"]), default="push", show_default=True)
@click.option("--interval", default="1h", show_default=True, metavar="DURATION",
              help="With --trigger schedule: how often (e.g. 30m, 1d).")
@click.option("--username", default="", help="User name at the target.")
@click.option("--password-stdin", is_flag=True, help="Read the target password from stdin.")
@click.option("--insecure", is_flag=True, help="The target speaks plain HTTP (loopback always may).")
@storage_options
def replication_add(target: str, repositories: str, tags: str, trigger: str, interval: str, username: str,
                    password_stdin: bool, insecure: bool, storage_dir: str | None,
                    s3_config: str | None) -> None:
    """Add a replication rule."""
    from dockyard.registry.server.team.retention import parse_duration

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    team = open_team(storage_dir, s3_config)
    rule = team.replication.add(target, repositories, tags, trigger, parse_duration(interval), username,
                                password, insecure)
    click.echo(f"rule {rule.id}: {rule.repositories}:{rule.tags} -> {rule.target} ({rule.trigger})")


@replication.command("ls")
@storage_options
def replication_ls(storage_dir: str | None, s3_config: str | None) -> None:
    """List rules with their last run."""
    team = open_team(storage_dir, s3_config)
    click.echo(f"{'ID':<12} {'TRIGGER':<9} {'FILTER':<28} {'TARGET':<30} LAST RUN")
    for rule in team.replication.rules():
        status = team.replication.status(rule.id)
        last = "never" if status is None else (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(status["run_at"])))
            + f" {status['copied']} copied, {status['failed']} failed"
            + (f" ({status['last_error']})" if status.get("last_error") else ""))
        click.echo(f"{rule.id:<12} {rule.trigger:<9} {rule.repositories + ':' + rule.tags:<28} "
                   f"{rule.target:<30} {last}")


@replication.command("rm")
@click.argument("rule_id", metavar="ID")
@storage_options
def replication_rm(rule_id: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a rule."""
    open_team(storage_dir, s3_config).replication.remove(rule_id)
    click.echo(f"rule {rule_id} removed")


@replication.command("run")
@click.argument("rule_id", metavar="ID")
@storage_options
def replication_run(rule_id: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Copy every tag the rule matches now; exits 1 if any copy failed."""
    team = open_team(storage_dir, s3_config)
    outcomes = team.replication.run(team.replication.rule(rule_id))
    for o in outcomes:
        state = "copied" if o.ok else f"FAILED after {o.attempts} tries: {o.error}"
        click.echo(f"{o.repository}:{o.tag} -> {o.target}:{o.tag} {state}")
    failed = sum(not o.ok for o in outcomes)
    click.echo(f"{len(outcomes) - failed} copied, {failed} failed")
    if failed:
        sys.exit(1)


@replication.command("log")
@storage_options
def replication_log(storage_dir: str | None, s3_config: str | None) -> None:
    """Every copy, as JSON lines."""
    from dockyard.registry.server.team.replication import LOG

    for entry in open_team(storage_dir, s3_config).kv.entries(LOG):
        click.echo(json.dumps(entry, sort_keys=True))
