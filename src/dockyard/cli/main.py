"""The ``dockyard`` entry point: the command table, and the one place errors become exit codes.

Nothing heavy is imported here: ``dockyard --version`` answers without click, and each command's
module is imported only when that command runs (``dockyard.cli.group`` holds the click group), so
``dockyard images`` does not pay for the registry client, rich or the build engine at start-up.
"""

from __future__ import annotations

import os
import sys

from dockyard import __version__

# Not ``typing.TYPE_CHECKING``: ``--version`` imports neither typing nor re.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# name -> ("module:attribute" of a click.Command, its one-line summary for ``--help``); sorted by
# name. The summary is the command's short help (tests/cli/test_main.py holds them equal), so that
# ``dockyard --help`` lists the commands without importing their modules.
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("dockyard.cli.analyze_cmd:analyze_cmd",
                "Show each layer's size and command, and the bytes an image wastes on overwritten or "
                "deleted files."),
    "attach": ("dockyard.cli.attach_cmd:attach_cmd",
               "Attach local standard input, output, and error streams to a running container."),
    "bootstrap": ("dockyard.cli.archive_cmds:bootstrap_cmd",
                  "Make an offline base image from Debian packages: busybox (busybox-static) or "
                  "debian:SUITE."),
    "build": ("dockyard.cli.build_cmd:build_cmd",
              'Build an image from a Dockerfile (PATH "-": a tar context or a Dockerfile on standard '
              "input)."),
    "builder": ("dockyard.cli.builder_cmd:builder_group", "Manage builds."),
    "buildx": ("dockyard.cli.buildx_cmd:buildx_group",
               "Docker Buildx's commands (builds run in dockyard itself)."),
    "commit": ("dockyard.cli.file_cmds:commit_cmd", "Create a new image from a container's changes."),
    "container": ("dockyard.cli.container_cmds:container_group", 'Manage containers.'),
    "cp": ("dockyard.cli.file_cmds:cp_cmd",
           "Copy files/folders between a container and the local filesystem."),
    "create": ("dockyard.cli.container_cmds:create_cmd", 'Create a new container.'),
    "diff": ("dockyard.cli.file_cmds:diff_cmd",
             "Inspect changes to files or directories on a container's filesystem."),
    "dockerfile": ("dockyard.cli.dockerfile_cmd:dockerfile",
                   "Inspect Dockerfiles (parse them exactly as the builder does)."),
    "exec": ("dockyard.cli.container_cmds:exec_cmd", 'Run a command in a running container.'),
    "generate-key-pair": ("dockyard.cli.supplychain_cmds:generate_key_pair_cmd",
                          "Generate a key pair for signing images (cosign's format: cosign.key, "
                          "cosign.pub)."),
    "export": ("dockyard.cli.file_cmds:export_cmd", "Export a container's filesystem as a tar archive."),
    "history": ("dockyard.cli.image_cmds:history_cmd", "Show the history of an image."),
    "image": ("dockyard.cli.image_cmds:image_group", "Manage images."),
    "images": ("dockyard.cli.image_cmds:images_cmd", "List images."),
    "import": ("dockyard.cli.archive_cmds:import_cmd",
               "Import the contents from a tarball to create a filesystem image (SOURCE: a file, or - "
               "for STDIN)."),
    "inspect": ("dockyard.cli.container_cmds:inspect_cmd",
                'Return low-level information on containers or images.'),
    "kill": ("dockyard.cli.container_cmds:kill_cmd", 'Kill one or more running containers.'),
    "lint": ("dockyard.cli.lint_cmd:lint_cmd",
             "Lint Dockerfiles: each PATH is a Dockerfile, a directory (every Dockerfile under it) or '-' "
             "(stdin)."),
    "load": ("dockyard.cli.archive_cmds:load_cmd",
             "Load images from a tar archive (docker save or OCI layout, gzip'd or not) or STDIN."),
    "login": ("dockyard.cli.registry_client_cmds:login_cmd",
              "Log in to a registry (Docker Hub if no server is given); saved in Docker's config.json."),
    "logout": ("dockyard.cli.registry_client_cmds:logout_cmd",
               "Log out from a registry (Docker Hub if no server is given)."),
    "logs": ("dockyard.cli.container_cmds:logs_cmd", 'Fetch the logs of a container.'),
    "manifest": ("dockyard.cli.manifest_cmd:manifest_group",
                 "Manage Docker image manifests and manifest lists."),
    "outdated": ("dockyard.cli.watch_cmd:outdated_cmd",
                 "Compare the base images of a Dockerfile with their registries' current tags."),
    "pause": ("dockyard.cli.container_cmds:pause_cmd", 'Pause all processes within one or more containers.'),
    "port": ("dockyard.cli.container_cmds:port_cmd",
             'List port mappings or a specific mapping for the container.'),
    "ps": ("dockyard.cli.container_cmds:ps_cmd", 'List containers.'),
    "pull": ("dockyard.cli.registry_client_cmds:pull_cmd", "Download an image from a registry."),
    "push": ("dockyard.cli.registry_client_cmds:push_cmd", "Upload an image to a registry."),
    "registry": ("dockyard.cli.registry_cmd:registry",
                 "Run an OCI distribution registry (spec 1.1) on a local directory or an S3 "
                 "bucket."),
    "report": ("dockyard.cli.report_cmd:report_cmd",
               "Report on an image: lint, size and vulnerability findings joined on the Dockerfile line of "
               "each."),
    "rename": ("dockyard.cli.container_cmds:rename_cmd", 'Rename a container.'),
    "restart": ("dockyard.cli.container_cmds:restart_cmd", 'Restart one or more containers.'),
    "rm": ("dockyard.cli.container_cmds:rm_cmd", 'Remove one or more containers.'),
    "rmi": ("dockyard.cli.image_cmds:rmi_cmd", "Remove one or more images."),
    "run": ("dockyard.cli.run_cmd:run_cmd", "Run a command in a new container."),
    "save": ("dockyard.cli.archive_cmds:save_cmd",
             "Save one or more images to a tar archive (streamed to STDOUT by default)."),
    "scan": ("dockyard.cli.scan_cmd:scan_cmd",
             "Scan an image: its packages (SBOM) and their known vulnerabilities from an offline "
             "database."),
    "sign": ("dockyard.cli.supplychain_cmds:sign_cmd",
             "Sign an image in a registry with a cosign key (a .sig tag and an OCI 1.1 referrer)."),
    "start": ("dockyard.cli.container_cmds:start_cmd", 'Start one or more stopped containers.'),
    "stats": ("dockyard.cli.container_cmds:stats_cmd",
              'Display a live stream of container(s) resource usage statistics.'),
    "stop": ("dockyard.cli.container_cmds:stop_cmd", 'Stop one or more running containers.'),
    "system": ("dockyard.cli.system_cmds:system_group", "Manage dockyard."),
    "tag": ("dockyard.cli.image_cmds:tag_cmd", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."),
    "top": ("dockyard.cli.container_cmds:top_cmd", 'Display the running processes of a container.'),
    "unpause": ("dockyard.cli.container_cmds:unpause_cmd",
                'Unpause all processes within one or more containers.'),
    "verify": ("dockyard.cli.supplychain_cmds:verify_cmd",
               "Verify an image's cosign signatures against a public key."),
    "volume": ("dockyard.cli.volume_cmds:volume_group", "Manage volumes."),
    "wait": ("dockyard.cli.container_cmds:wait_cmd",
             'Block until one or more containers stop, then print their exit codes.'),
    "watch": ("dockyard.cli.watch_cmd:watch_cmd",
              "Rebuild when a base image's tag moves or a file of the build context changes."),
}

VERSION_FLAGS = ("-v", "--version")


def __getattr__(name: str) -> Any:
    # ``from dockyard.cli.main import cli`` (tests, the ``image`` group) loads click on first use.
    if name in ("cli", "LazyGroup", "CliState"):
        from dockyard.cli import group

        return getattr(group, name)
    raise AttributeError(f"module 'dockyard.cli.main' has no attribute {name!r}")


def _version_only(args: list[str]) -> bool:
    """True for ``[global options] --version``: the global options do not change the answer."""
    i = 0
    while i < len(args) - 1:
        if args[i] in ("-D", "--debug") or args[i].startswith("--root="):
            i += 1
        elif args[i] == "--root":
            i += 2
        else:
            break
    return i == len(args) - 1 and args[i] in VERSION_FLAGS


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI and turn library errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    if _version_only(args):
        # The answer click would give, without importing click (about half of the start-up).
        sys.stdout.write(f"dockyard version {__version__}\n")
        sys.exit(0)
    from dockyard.cli.fast import answer

    code = answer(args)  # a plain ``images``, without click
    if code is not None:
        sys.exit(code)
    from dockyard.cli.group import run

    if argv is not None:  # called in a caller's process: exit as Python does
        run(args, debug=os.environ.get("DOCKYARD_DEBUG", "") not in ("", "0"))
    try:
        run(args, debug=os.environ.get("DOCKYARD_DEBUG", "") not in ("", "0"))
    except SystemExit as done:
        _leave(done.code)


def _leave(code: object) -> NoReturn:
    """End the process as interpreter shutdown would, less its teardown of every module and object
    (~7 % of a cached build's instructions). What shutdown does that counts still happens: the wait
    for non-daemon threads, ``atexit`` and ``weakref.finalize`` callbacks, closing the stores' SQLite
    connections (which checkpoints and syncs them), the flush of stdout and stderr."""
    import atexit

    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # what Py_FinalizeEx calls first (when threading was imported)
    atexit._run_exitfuncs()
    metadata = sys.modules.get("dockyard.metadata")
    if metadata is not None:
        metadata.close_all()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (BrokenPipeError), or closed on purpose
            pass
    os._exit(status & 0xFF)
