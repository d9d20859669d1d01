"""``dockyard build --check``: BuildKit's build checks, printed and exited on as buildx does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from dockyard.client import Client
from dockyard.errors import DockyardError
from dockyard.tools.lint import CHECKS, build_checks


def _snippet(lines: list[str], line: int) -> list[str]:
    """The Dockerfile around ``line`` as buildx shows it: two lines of context, ``>>>`` on the line."""
    out = ["--------------------"]
    for n in range(max(1, line - 2), min(len(lines), line + 1) + 1):
        mark = ">>>" if n == line else "   "
        out.append(f"{n:>4} | {mark} {lines[n - 1]}".rstrip())
    out.append("--------------------")
    return out


def run_checks(
    client: Client, text: str, dockerfile: str, context: str, build_args: Mapping[str, str]
) -> int:
    """Print the check results; the exit status: 1 when a check warned (or ``error=true`` and one did)."""

    def base_env(image: str) -> list[str] | None:
        try:
            env = client.image_config(image).config.get("Env")
        except DockyardError:
            return None  # not in the local store: its environment is unknown
        return [str(e) for e in env] if isinstance(env, list) else []

    name = Path(dockerfile).name
    settings = build_args.get("BUILDKIT_DOCKERFILE_CHECK", "")
    result = build_checks(text, name, Path(context), base_env, settings)
    found = result.findings
    if not found:
        click.echo("Check complete, no warnings found.")
        return 0
    many = len(found) > 1
    count = f"{len(found)} warning{'s' if many else ''} ha{'ve' if many else 's'} been found"
    click.echo(f"Check complete, {count}!")
    lines = text.splitlines()
    for f in found:
        check = CHECKS[f.code]
        # buildx's form: the rule, its page and description, then where (the snippet shows what)
        click.echo(f"\n{f.code} - {check.url}\n{check.description}\n{name}:{f.line}")
        click.echo("\n".join(_snippet(lines, f.line)))
    if result.config.error:
        rules = ", ".join(dict.fromkeys(f.code for f in found))
        click.echo(f"ERROR: lint violation found for rules: {rules}", err=True)
    return 1
