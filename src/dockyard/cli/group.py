"""The click group behind ``dockyard``: global options, lazily imported subcommands, exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from dockyard import __version__
from dockyard.cli.main import COMMANDS
from dockyard.errors import DockyardError


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; ``--help`` lists them from the table."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                # click's own shortening of a help text, on the summary: the same listing as
                # the loaded command would give.
                summary = click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)
            else:
                summary = self.commands[name].get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# Commands that never touch the store or run a container: a non-root user needs no user namespace.
NO_STORE_COMMANDS = frozenset({"dockerfile", "lint", "login", "logout", None})
# Commands that join a running container: rootless, they stay in the host's user namespace, from where
# the container's own one can be joined (see executor.enter); a fresh one could not enter it.
JOINING_COMMANDS = frozenset({"exec"})


def enter_rootless(command: str | None) -> None:
    """Rootless: move into a user namespace of its own before ``command`` runs, unless it needs none."""
    if os.geteuid() != 0 and command not in NO_STORE_COMMANDS | JOINING_COMMANDS:
        from dockyard.executor.rootless import enter_user_namespace

        enter_user_namespace()


class CliState:
    """Global options, handed to every command through ``ctx.obj``."""

    def __init__(self, root: str | None, debug: bool) -> None:
        self.root = root
        self.debug = debug


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="DOCKYARD_ROOT", default=None, metavar="DIR",
              help="Store directory (default /var/lib/dockyard as root, else the XDG data directory).")
@click.option("--debug", "-D", is_flag=True, envvar="DOCKYARD_DEBUG", help="Show tracebacks on errors.")
@click.version_option(__version__, "-v", "--version", prog_name="dockyard",
                      message="dockyard version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, debug: bool) -> None:
    """A daemonless, Docker-compatible image builder and manager."""
    ctx.obj = CliState(root, debug)
    if ctx.invoked_subcommand != "container":  # that group decides for its subcommand
        enter_rootless(ctx.invoked_subcommand)


def run(args: list[str], debug: bool) -> NoReturn:
    """Run the group on ``args``; library errors become one line on stderr and an exit code."""
    try:
        rv = cli.main(args=args, prog_name="dockyard", standalone_mode=False)
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting.
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(125 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except DockyardError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `dockyard images | head`); that is not an error.
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc} (set DOCKYARD_DEBUG=1 for details)",
                   err=True)
        sys.exit(1)
