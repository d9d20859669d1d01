"""``dockyard lint``: hadolint-compatible Dockerfile linting with cache and size advice."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import click

from dockyard.errors import InvalidArgument
from dockyard.tools.lint import (
    FORMATS,
    SEVERITIES,
    LintConfig,
    LintInput,
    failed,
    find_config,
    lint_many,
    load_config,
    render,
)
from dockyard.tools.lint.fix import fix

_DOCKERFILE_NAMES = ("Dockerfile", "Containerfile", "dockerfile")
_SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__"})


def _is_dockerfile(name: str) -> bool:
    return (
        name in _DOCKERFILE_NAMES
        or name.lower().endswith((".dockerfile", ".containerfile"))
        or name.startswith(("Dockerfile.", "Containerfile."))
    )


def _dockerfiles_under(directory: Path) -> list[Path]:
    """The Dockerfiles in a directory tree (Dockerfile, Containerfile, *.Dockerfile, Dockerfile.*)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        found.extend(Path(root) / f for f in sorted(files) if _is_dockerfile(f))
    if not found:
        raise InvalidArgument(f"no Dockerfile under {directory}")
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"Dockerfile not found: {path}") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None


def _apply_fixes(
    found: list[tuple[str, str, Path | None]], diff: bool
) -> tuple[list[tuple[str, str, Path | None]], bool]:
    """Fix each file (or print the diff); the texts to lint afterwards and whether anything changed."""
    out = []
    changed = False
    for text, name, directory in found:
        result = fix(text, Path(name).name)
        if result.text != text:
            changed = True
            if diff:
                old, new = text.splitlines(keepends=True), result.text.splitlines(keepends=True)
                click.echo("".join(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}")), nl=False)
            elif name == "-":
                raise InvalidArgument("--fix rewrites files; for standard input use --fix --diff")
            else:
                Path(name).write_text(result.text, encoding="utf-8")
                count = len(result.fixed)
                click.echo(f"fixed {count} finding{'s' if count != 1 else ''} in {name}", err=True)
        out.append((result.text if not diff else text, name, directory))
    return out, changed


@click.command("lint")
@click.argument("paths", nargs=-1, metavar="[PATH | -]...")
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
    help="Config file (YAML as hadolint's, JSON or TOML). Default: .hadolint.{yaml,yml,json,toml} "
    "next to each Dockerfile, else in the current directory.",
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
    help="The build context, for the .dockerignore advice (default: each Dockerfile's directory).",
)
@click.option("--no-advice", is_flag=True, help="Only hadolint's DL (and SC) rules, no DY cache/size advice.")
@click.option("--no-shellcheck", is_flag=True, help="Do not run ShellCheck over the RUN instructions.")
@click.option(
    "--no-build-checks", is_flag=True, help="Leave out BuildKit's build checks (docker build --check)."
)
@click.option("--fix", "fix_", is_flag=True,
              help="Rewrite the Dockerfiles in place where a finding has a safe fix, then lint them.")
@click.option("--diff", is_flag=True, help="With --fix: print the changes as a diff instead of writing them.")
@click.option("--no-color", is_flag=True, help="Do not colour tty output.")
def lint_cmd(
    paths: tuple[str, ...],
    file_: str | None,
    fmt: str,
    ignores: tuple[str, ...],
    failure_threshold: str | None,
    no_fail: bool,
    config_path: Path | None,
    trusted: tuple[str, ...],
    context_opt: Path | None,
    no_advice: bool,
    no_shellcheck: bool,
    no_build_checks: bool,
    fix_: bool,
    diff: bool,
    no_color: bool,
) -> None:
    """Lint Dockerfiles: each PATH is a Dockerfile, a directory (every Dockerfile under it) or '-' (stdin).

    Runs hadolint's DL rules, ShellCheck over every RUN (SC codes), BuildKit's build checks (by name,
    e.g. JSONArgsRecommended; ``# check=skip=`` honoured) and dockyard's DY advice.
    """
    if paths and file_:
        raise InvalidArgument("give either PATH or -f/--file, not both")
    targets = [file_] if file_ else list(paths) or ["Dockerfile"]
    found: list[tuple[str, str, Path | None]] = []  # (text, name, directory)
    for target in targets:
        if target == "-":
            found.append((sys.stdin.read(), "-", None))
        elif Path(target).is_dir():
            found.extend((_read(p), str(p), p.parent) for p in _dockerfiles_under(Path(target)))
        else:
            found.append((_read(Path(target)), target, Path(target).parent))
    if diff and not fix_:
        raise InvalidArgument("--diff goes with --fix")
    if fix_:
        found, changed = _apply_fixes(found, diff)
        if diff:
            sys.exit(1 if changed else 0)
    configs: dict[Path | None, LintConfig] = {}

    def config_for(directory: Path | None) -> LintConfig:
        if directory not in configs:
            cfg_file = config_path or (directory and find_config(directory)) or find_config(Path.cwd())
            config = load_config(cfg_file) if cfg_file else LintConfig()
            if ignores:
                # As hadolint: --ignore on the command line replaces the config file's list.
                config.ignored = {c.strip().upper() for c in ignores}
            if trusted:
                config.trusted_registries = [*config.trusted_registries, *trusted]
            if failure_threshold:
                config.failure_threshold = failure_threshold
            configs[directory] = config
        return configs[directory]

    inputs = [
        LintInput(text, name, context_opt or directory, config_for(directory))
        for text, name, directory in found
    ]
    results, note = lint_many(
        inputs, advice=not no_advice, shellcheck=not no_shellcheck, buildkit=not no_build_checks
    )
    if note:
        click.echo(f"note: {note}", err=True)
    findings = [f for per_file in results for f in per_file]
    color = fmt == "tty" and not no_color and sys.stdout.isatty()
    click.echo(render(findings, fmt, color=color), nl=False)
    failing = any(
        not (no_fail or item.config.no_fail) and failed(per_file, item.config.failure_threshold)
        for item, per_file in zip(inputs, results, strict=True)
        if item.config is not None
    )
    if failing:
        sys.exit(1)
