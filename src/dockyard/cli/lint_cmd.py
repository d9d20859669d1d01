"""``dockyard lint``: hadolint-compatible Dockerfile linting with cache and size advice."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dockyard.errors import InvalidArgument
from dockyard.tools.lint import (
    FORMATS,
    SEVERITIES,
    LintConfig,
    failed,
    find_config,
    lint,
    load_config,
    render,
)


@click.command("lint")
@click.argument("path", required=False, metavar="[PATH | -]")
@click.option("-f", "--file", "file_", metavar="DOCKERFILE", help="The Dockerfile to lint ('-' for stdin).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="tty", show_default=True, help="Output format."
)
@click.option("--ignore", "ignores", multiple=True, metavar="CODE", help="A rule to ignore (repeatable).")
@click.option(
    "-t",
    "--failure-threshold",
    type=click.Choice([*SEVERITIES, "none"]),
    default=None,
    help="Exit 1 only for findings at or above this severity (default: info).",
)
@click.option("--no-fail", is_flag=True, help="Always exit 0 when linting succeeded.")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (JSON, TOML; YAML with PyYAML). Default: .hadolint.{yaml,yml,json,toml} "
    "next to the Dockerfile.",
)
@click.option(
    "--trusted-registry",
    "trusted",
    multiple=True,
    metavar="REGISTRY",
    help="A registry allowed in FROM (enables DL3026; repeatable).",
)
@click.option(
    "--context",
    "context_opt",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The build context, for the .dockerignore advice (default: PATH's directory; none for stdin).",
)
@click.option("--no-advice", is_flag=True, help="Only hadolint's DL rules, no DY cache/size advice.")
@click.option("--no-color", is_flag=True, help="Do not colour tty output.")
def lint_cmd(
    path: str | None,
    file_: str | None,
    fmt: str,
    ignores: tuple[str, ...],
    failure_threshold: str | None,
    no_fail: bool,
    config_path: Path | None,
    trusted: tuple[str, ...],
    context_opt: Path | None,
    no_advice: bool,
    no_color: bool,
) -> None:
    """Lint a Dockerfile (PATH is a Dockerfile or a directory holding one; '-' reads stdin)."""
    if path and file_:
        raise InvalidArgument("give either PATH or -f/--file, not both")
    target = file_ or path or "Dockerfile"
    context_dir: Path | None
    if target == "-":
        text = sys.stdin.read()
        name, context_dir = "-", None
        base = Path.cwd()
    else:
        dockerfile = Path(target)
        if dockerfile.is_dir():
            context_dir = dockerfile
            dockerfile = dockerfile / "Dockerfile"
        else:
            context_dir = dockerfile.parent
        try:
            text = dockerfile.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidArgument(f"Dockerfile not found: {dockerfile}") from None
        except OSError as exc:
            raise InvalidArgument(f"cannot read {dockerfile}: {exc.strerror}") from None
        name, base = str(target if not Path(target).is_dir() else dockerfile), context_dir
    if context_opt is not None:
        context_dir = context_opt
    cfg_file = config_path or find_config(base)
    config = load_config(cfg_file) if cfg_file else LintConfig()
    if ignores:
        # As hadolint: --ignore on the command line replaces the config file's list.
        config.ignored = {c.strip().upper() for c in ignores}
    if trusted:
        config.trusted_registries = [*config.trusted_registries, *trusted]
    if failure_threshold:
        config.failure_threshold = failure_threshold
    findings = lint(text, config, filename=name, context_dir=context_dir, advice=not no_advice)
    color = fmt == "tty" and not no_color and sys.stdout.isatty()
    click.echo(render(findings, fmt, color=color), nl=False)
    if not (no_fail or config.no_fail) and failed(findings, config.failure_threshold):
        sys.exit(1)
