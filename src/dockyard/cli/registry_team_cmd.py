"""``dockyard registry project|user|robot|retention|webhook|audit``: manage a team registry's storage.

They work on the storage directly (a directory or ``s3://`` bucket), while the registry serves or not:
the server reads accounts and policies from the store on every decision.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dockyard.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])


def storage_options(fn: F) -> F:
    fn = click.option("--s3-config", type=click.Path(dir_okay=False), default=None,
                      help="S3 settings file, as for serve (else the AWS_* variables).")(fn)
    fn = click.option("--storage", "storage_dir", default=None, metavar="DIR|s3://BUCKET/PREFIX",
                      help="Registry storage (default $DOCKYARD_REGISTRY_STORAGE or "
                           "/var/lib/dockyard-registry).")(fn)
    return fn


def open_team(storage_dir: str | None, s3_config: str | None) -> Any:
    from dockyard.registry.server.server import default_storage, open_storage
    from dockyard.registry.server.team.service import Team

    return Team(open_storage(storage_dir or default_storage(), s3_config=s3_config))


def read_password(name: str, stdin: bool) -> str:
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidArgument("empty password")
    return str(password)


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) if stamp else "never"


# -- users -----------------------------------------------------------------------------------------

@click.group("user")
def user() -> None:
    """Registry users (log in with docker login / dockyard login)."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="A registry administrator: every project, the catalog.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@storage_options
def user_add(name: str, admin: bool, password_stdin: bool, storage_dir: str | None,
             s3_config: str | None) -> None:
    """Add a user."""
    team = open_team(storage_dir, s3_config)
    team.directory.user_add(name, read_password(name, password_stdin), admin=admin)
    click.echo(f"user {name} added" + (" (administrator)" if admin else ""))


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@storage_options
def user_passwd(name: str, password_stdin: bool, storage_dir: str | None, s3_config: str | None) -> None:
    """Set a user's password."""
    team = open_team(storage_dir, s3_config)
    team.directory.user_passwd(name, read_password(name, password_stdin))
    click.echo(f"password of {name} changed")


@user.command("ls")
@storage_options
def user_ls(storage_dir: str | None, s3_config: str | None) -> None:
    """List users."""
    team = open_team(storage_dir, s3_config)
    click.echo(f"{'NAME':<24} {'ADMIN':<6} CREATED")
    for name, rec in team.directory.users().items():
        click.echo(f"{name:<24} {'yes' if rec.get('admin') else 'no':<6} {when(rec.get('created'))}")


@user.command("rm")
@click.argument("name")
@storage_options
def user_rm(name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a user (and their memberships)."""
    open_team(storage_dir, s3_config).directory.user_rm(name)
    click.echo(f"user {name} removed")


# -- projects --------------------------------------------------------------------------------------

@click.group("project")
def project() -> None:
    """Projects: the first path component of repository names, with members and policies."""


@project.command("create")
@click.argument("name")
@click.option("--public", is_flag=True, help="Anyone may pull, without logging in.")
@storage_options
def project_create(name: str, public: bool, storage_dir: str | None, s3_config: str | None) -> None:
    """Create a project."""
    open_team(storage_dir, s3_config).directory.project_create(name, public=public)
    click.echo(f"project {name} created ({'public' if public else 'private'})")


@project.command("ls")
@storage_options
def project_ls(storage_dir: str | None, s3_config: str | None) -> None:
    """List projects with their members, quota and usage."""
    from dockyard.registry.server.team.usage import project_usage

    team = open_team(storage_dir, s3_config)
    click.echo(f"{'NAME':<20} {'ACCESS':<8} {'USAGE':>12} {'QUOTA':>12} MEMBERS")
    for p in team.directory.projects():
        members = ", ".join(f"{u}={r}" for u, r in sorted(p.members.items())) or "-"
        quota = str(p.quota) if p.quota is not None else "-"
        click.echo(f"{p.name:<20} {'public' if p.public else 'private':<8} "
                   f"{project_usage(team.storage, p.name):>12} {quota:>12} {members}")


@project.command("rm")
@click.argument("name")
@storage_options
def project_rm(name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a project's record and robots (its repositories stay until deleted)."""
    open_team(storage_dir, s3_config).directory.project_rm(name)
    click.echo(f"project {name} removed")


@project.command("show")
@click.argument("name")
@storage_options
def project_show(name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Print a project's record as JSON (webhook secrets left out)."""
    p = open_team(storage_dir, s3_config).directory.need_project(name)
    record = p.record()
    record["webhooks"] = [{k: v for k, v in h.items() if k != "secret"} for h in p.webhooks]
    click.echo(json.dumps({"name": name, **record}, indent=2, sort_keys=True))


@project.command("set")
@click.argument("name")
@click.option("--public/--private", default=None, help="Whether anyone may pull.")
@click.option("--quota", default=None, metavar="SIZE|none",
              help="Storage quota, e.g. 500MB, 2GiB; none: no quota.")
@click.option("--immutable", multiple=True, metavar="GLOB",
              help="Tags matching GLOB may not be overwritten or deleted (repeatable; '' clears).")
@click.option("--keep-last", type=int, default=None, metavar="N",
              help="Retention: keep the N most recently pushed tags per repository (-1: rule off).")
@click.option("--keep-tag", multiple=True, metavar="GLOB",
              help="Retention: keep tags matching GLOB (repeatable; '' clears).")
@click.option("--untagged-older-than", default=None, metavar="DURATION",
              help="Retention: delete untagged manifests older than this (e.g. 7d, 12h; 'off').")
@storage_options
def project_set(name: str, public: bool | None, quota: str | None, immutable: tuple[str, ...],
                keep_last: int | None, keep_tag: tuple[str, ...], untagged_older_than: str | None,
                storage_dir: str | None, s3_config: str | None) -> None:
    """Change a project's visibility and policies (options not given stay as they are)."""
    from dockyard.registry.server.team.retention import check_rules, parse_duration
    from dockyard.registry.server.team.usage import parse_size

    team = open_team(storage_dir, s3_config)
    p = team.directory.need_project(name)
    if public is not None:
        p.public = public
    if quota is not None:
        p.quota = None if quota.lower() == "none" else parse_size(quota)
    if immutable:
        p.immutable = [g for g in immutable if g]
    rules = dict(p.retention)
    if keep_last is not None:
        rules["keep_last"] = None if keep_last < 0 else keep_last
    if keep_tag:
        rules["keep_tags"] = [g for g in keep_tag if g]
    if untagged_older_than is not None:
        rules["untagged_older_than"] = None if untagged_older_than == "off" else \
            parse_duration(untagged_older_than)
    p.retention = check_rules(rules)
    team.directory.save(p)
    click.echo(f"project {name} updated")


@project.group("member")
def member() -> None:
    """Project members and their roles: guest (pull), developer (push), maintainer (delete), admin."""


@member.command("add")
@click.argument("project_name", metavar="PROJECT")
@click.argument("user_name", metavar="USER")
@click.argument("role", type=click.Choice(["guest", "developer", "maintainer", "admin"]))
@storage_options
def member_add(project_name: str, user_name: str, role: str, storage_dir: str | None,
               s3_config: str | None) -> None:
    """Add a member to a project, or change their role."""
    open_team(storage_dir, s3_config).directory.member_add(project_name, user_name, role)
    click.echo(f"{user_name} is {role} of {project_name}")


@member.command("rm")
@click.argument("project_name", metavar="PROJECT")
@click.argument("user_name", metavar="USER")
@storage_options
def member_rm(project_name: str, user_name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a member from a project."""
    open_team(storage_dir, s3_config).directory.member_rm(project_name, user_name)
    click.echo(f"{user_name} removed from {project_name}")


# -- robots ----------------------------------------------------------------------------------------

@click.group("robot")
def robot() -> None:
    """Robot accounts for CI: robot$PROJECT+NAME, scoped actions, optional expiry."""


@robot.command("create")
@click.argument("project_name", metavar="PROJECT")
@click.argument("name")
@click.option("--actions", default="pull,push", show_default=True,
              help="Comma-separated: pull, push, delete.")
@click.option("--expires", default=None, metavar="DURATION",
              help="Expire after e.g. 30d, 12h (default: never).")
@click.option("--description", default="", help="What the robot is for.")
@storage_options
def robot_create(project_name: str, name: str, actions: str, expires: str | None, description: str,
                 storage_dir: str | None, s3_config: str | None) -> None:
    """Create a robot account; its secret is printed once and cannot be shown again."""
    from dockyard.registry.server.team.retention import parse_duration

    team = open_team(storage_dir, s3_config)
    seconds = parse_duration(expires) if expires else None
    bot, secret = team.directory.robot_create(project_name, name, [a.strip() for a in actions.split(",")],
                                              seconds, description)
    click.echo(f"name:    {bot.name}")
    click.echo(f"secret:  {secret}")
    click.echo(f"actions: {','.join(sorted(bot.actions))}")
    click.echo(f"expires: {when(bot.expires)}")


@robot.command("ls")
@click.argument("project_name", metavar="[PROJECT]", required=False)
@storage_options
def robot_ls(project_name: str | None, storage_dir: str | None, s3_config: str | None) -> None:
    """List robot accounts (of one project)."""
    team = open_team(storage_dir, s3_config)
    click.echo(f"{'NAME':<36} {'ACTIONS':<18} EXPIRES")
    for bot in team.directory.robots(project_name):
        state = when(bot.expires) + (" (expired)" if bot.expires and bot.expires <= time.time() else "")
        click.echo(f"{bot.name:<36} {','.join(sorted(bot.actions)):<18} {state}")


@robot.command("rm")
@click.argument("name", metavar="robot$PROJECT+NAME")
@storage_options
def robot_rm(name: str, storage_dir: str | None, s3_config: str | None) -> None:
    """Remove a robot account (its tokens end with their short lifetime)."""
    open_team(storage_dir, s3_config).directory.robot_rm(name)
    click.echo(f"robot {name} removed")
