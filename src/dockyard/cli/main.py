"""The ``dockyard`` command: a lazily loaded click group, and the one place errors become exit codes.

Command modules are imported only when their command runs, so ``dockyard images`` does not pay for
httpx, rich or the build engine at start-up.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from dockyard import __version__
from dockyard.errors import DockyardError

# name -> "module:attribute" of a click.Command; one line per command, sorted by name.
COMMANDS: dict[str, str] = {
    "analyze": "dockyard.cli.analyze_cmd:analyze_cmd",
    "bootstrap": "dockyard.cli.archive_cmds:bootstrap_cmd",
    "build": "dockyard.cli.build_cmd:build_cmd",
    "builder": "dockyard.cli.builder_cmd:builder_group",
    "container": "dockyard.cli.container_cmds:container_group",
    "create": "dockyard.cli.container_cmds:create_cmd",
    "dockerfile": "dockyard.cli.dockerfile_cmd:dockerfile",
    "exec": "dockyard.cli.container_cmds:exec_cmd",
    "history": "dockyard.cli.image_cmds:history_cmd",
    "image": "dockyard.cli.image_cmds:image_group",
    "images": "dockyard.cli.image_cmds:images_cmd",
    "import": "dockyard.cli.archive_cmds:import_cmd",
    "inspect": "dockyard.cli.container_cmds:inspect_cmd",
    "kill": "dockyard.cli.container_cmds:kill_cmd",
    "lint": "dockyard.cli.lint_cmd:lint_cmd",
    "load": "dockyard.cli.archive_cmds:load_cmd",
    "login": "dockyard.cli.registry_client_cmds:login_cmd",
    "logout": "dockyard.cli.registry_client_cmds:logout_cmd",
    "logs": "dockyard.cli.container_cmds:logs_cmd",
    "outdated": "dockyard.cli.watch_cmd:outdated_cmd",
    "pause": "dockyard.cli.container_cmds:pause_cmd",
    "port": "dockyard.cli.container_cmds:port_cmd",
    "ps": "dockyard.cli.container_cmds:ps_cmd",
    "pull": "dockyard.cli.registry_client_cmds:pull_cmd",
    "push": "dockyard.cli.registry_client_cmds:push_cmd",
    "registry": "dockyard.cli.registry_cmd:registry",
    "rename": "dockyard.cli.container_cmds:rename_cmd",
    "restart": "dockyard.cli.container_cmds:restart_cmd",
    "rm": "dockyard.cli.container_cmds:rm_cmd",
    "rmi": "dockyard.cli.image_cmds:rmi_cmd",
    "run": "dockyard.cli.run_cmd:run_cmd",
    "save": "dockyard.cli.archive_cmds:save_cmd",
    "scan": "dockyard.cli.scan_cmd:scan_cmd",
    "start": "dockyard.cli.container_cmds:start_cmd",
    "stats": "dockyard.cli.container_cmds:stats_cmd",
    "stop": "dockyard.cli.container_cmds:stop_cmd",
    "system": "dockyard.cli.system_cmds:system_group",
    "tag": "dockyard.cli.image_cmds:tag_cmd",
    "top": "dockyard.cli.container_cmds:top_cmd",
    "unpause": "dockyard.cli.container_cmds:unpause_cmd",
    "wait": "dockyard.cli.container_cmds:wait_cmd",
    "watch": "dockyard.cli.watch_cmd:watch_cmd",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


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


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI and turn library errors into one line and an exit code."""
    debug = os.environ.get("DOCKYARD_DEBUG", "") not in ("", "0")
    try:
        rv = cli.main(args=argv, prog_name="dockyard", standalone_mode=False)
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
