"""``dockyard outdated`` and ``dockyard watch``: keep the base images of a build current."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from dockyard import goformat

if TYPE_CHECKING:
    from dockyard.builder.options import BuildOptions
    from dockyard.tools.watch import BaseStatus, WatchEvent

_CTX = {"help_option_names": ["-h", "--help"]}


def _kv(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq:  # docker: a bare name takes its value from the environment, if set
            if key in os.environ:
                out[key] = os.environ[key]
            continue
        if not key:
            raise click.UsageError(f'invalid argument "{value}" for "{flag}" flag: expected key=value')
        out[key] = val
    return out


def _options(path: str, dockerfile: str, build_args: tuple[str, ...], platform: str, target: str,
             build_contexts: tuple[str, ...], tags: tuple[str, ...] = (), push: bool = False) -> BuildOptions:
    from dockyard.builder.options import BuildOptions
    from dockyard.errors import DockyardError
    from dockyard.oci.reference import parse_normalized

    if dockerfile and not os.path.isabs(dockerfile) and not os.path.exists(dockerfile):
        dockerfile = os.path.join(path, dockerfile)
    for tag in tags:
        try:
            parse_normalized(tag)
        except DockyardError as exc:
            raise click.UsageError(f'invalid argument "{tag}" for "-t, --tag" flag: {exc}') from None
    if push and not tags:
        raise click.UsageError("--push needs at least one -t/--tag to push")
    return BuildOptions(context_dir=path, dockerfile=dockerfile, tags=list(tags),
                        build_args=_kv(build_args, "--build-arg"), target=target, platform=platform,
                        build_contexts=_kv(build_contexts, "--build-context"), push=push)


def _short(digest: str, trunc: bool) -> str:
    if not digest or not trunc:
        return digest
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


def _status_text(st: BaseStatus) -> str:
    return f"{st.status} ({st.reason})" if st.reason else st.status


def render_table(statuses: list[BaseStatus], *, trunc: bool = True) -> str:
    """The ``outdated`` table: one row per (image, platform)."""
    from dockyard.cli.format import tabwrite

    lines = ["REFERENCE\tPLATFORM\tLOCAL\tREMOTE\tSTATUS"]
    for st in statuses:
        local = _short(st.local_digest, trunc) or (_short(st.local_image_id, trunc) if st.local_image_id
                                                    else "not pulled")
        remote = _short(st.remote_digest, trunc) or "-"
        if st.remote_manifest_digest and st.remote_manifest_digest != st.remote_digest:
            remote += f" ({_short(st.remote_manifest_digest, trunc)} for {st.base.platform})"
        lines.append(f"{st.ref}\t{st.base.platform}\t{local}\t{remote}\t{_status_text(st)}")
    return tabwrite("\n".join(lines)).rstrip("\n")


@click.command("outdated", context_settings=_CTX)
@click.argument("path", default=".")
@click.option("-f", "--file", "dockerfile", default="",
              help="Name of the Dockerfile (default: PATH/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--platform", default="", help="Target platform(s) of the build.")
@click.option("--target", default="", help="Only the images this build stage needs.")
@click.option("--build-context", "build_contexts", multiple=True,
              help="Additional build contexts (name=path or name=docker-image://ref).")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json"]),
              help="Output format.")
@click.option("--no-trunc", is_flag=True, help="Show full digests.")
@click.option("--exit-code", is_flag=True, help="Exit with 1 when a base image is outdated (for CI).")
@click.pass_context
def outdated_cmd(ctx: click.Context, path: str, dockerfile: str, build_args: tuple[str, ...], platform: str,
                 target: str, build_contexts: tuple[str, ...], fmt: str, no_trunc: bool,
                 exit_code: bool) -> None:
    """Compare the base images of a Dockerfile with their registries' current tags."""
    from dockyard.client import Client
    from dockyard.tools.watch import check_bases

    options = _options(path, dockerfile, build_args, platform, target, build_contexts)
    with Client(getattr(ctx.find_root().obj, "root", None)) as client:
        statuses = check_bases(client, options)
    if fmt == "json":
        click.echo(json.dumps([st.to_json() for st in statuses], indent=2))
    elif statuses:
        click.echo(render_table(statuses, trunc=not no_trunc))
    else:
        click.echo("no base images to check (only stages and scratch)", err=True)
    if exit_code and any(st.status == "outdated" for st in statuses):
        sys.exit(1)


@click.command("watch", context_settings=_CTX)
@click.argument("path", default=".")
@click.option("-t", "--tag", "tags", multiple=True, help='Name and optionally a tag ("name:tag").')
@click.option("-f", "--file", "dockerfile", default="",
              help="Name of the Dockerfile (default: PATH/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--platform", default="", help="Set the target platform for the build.")
@click.option("--build-context", "build_contexts", multiple=True,
              help="Additional build contexts (name=path or name=docker-image://ref).")
@click.option("--push", is_flag=True, help="Push the tags after each successful build.")
@click.option("--interval", default="300s", metavar="DURATION",
              help="How often to ask the registries about the base images (300s, 5m, 1h).")
@click.option("--debounce", default="1s", metavar="DURATION",
              help="Wait until the context has been quiet this long before building.")
@click.option("--once", is_flag=True,
              help="Check once, rebuild if needed, and exit (1 if a pull, build or push failed).")
@click.option("--progress", default="auto", type=click.Choice(["auto", "tty", "plain", "quiet"]),
              help="Set type of progress output for the builds.")
@click.pass_context
def watch_cmd(ctx: click.Context, path: str, tags: tuple[str, ...], dockerfile: str,
              build_args: tuple[str, ...], target: str, platform: str, build_contexts: tuple[str, ...],
              push: bool, interval: str, debounce: str, once: bool, progress: str) -> None:
    """Rebuild when a base image's tag moves or a file of the build context changes."""
    from dockyard.cli.progress_render import make_renderer
    from dockyard.client import Client
    from dockyard.tools.watch import Watcher

    def duration(value: str, flag: str) -> float:
        try:
            if value.replace(".", "", 1).isdigit():
                seconds = float(value)
            else:
                seconds = goformat.parse_duration(value) / goformat.SECOND
        except ValueError as exc:
            raise click.UsageError(f'invalid argument "{value}" for "{flag}" flag: {exc}') from None
        if seconds < 0:
            raise click.UsageError(f'invalid argument "{value}" for "{flag}" flag: must not be negative')
        return seconds

    every = duration(interval, "--interval")
    if every <= 0:
        raise click.UsageError(f'invalid argument "{interval}" for "--interval" flag: must be positive')
    quiet_for = duration(debounce, "--debounce")
    options = _options(path, dockerfile, build_args, platform, target, build_contexts, tags, push)
    if not os.path.isdir(path):
        from dockyard.errors import InvalidArgument

        raise InvalidArgument(f'unable to prepare context: path "{path}" not found')

    def on_event(event: WatchEvent) -> None:
        failure = event.kind in ("build-failed", "push-failed", "pull-failed")
        click.echo(event.message + ("; still watching" if failure and not once else ""))

    failed = threading.Event()

    def note(event: WatchEvent) -> None:
        if event.kind in ("build-failed", "push-failed", "pull-failed"):
            failed.set()
        on_event(event)

    def sink() -> Any:
        return make_renderer(progress, sys.stderr)

    with Client(getattr(ctx.find_root().obj, "root", None)) as client:
        watcher = Watcher(client, options, every, note, debounce=quiet_for, progress=sink)
        if once:
            watcher.step()
            sys.exit(1 if failed.is_set() else 0)
        stop = threading.Event()

        def handle(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():  # a second Ctrl-C: stop now, even in the middle of a build
                raise KeyboardInterrupt
            stop.set()
            click.echo(f"{signal.Signals(signum).name}: stopping after the current step", err=True)

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            click.echo(f"watching {path}: bases every {every:g}s, the context every second; Ctrl-C to stop")
            watcher.run(stop)
        finally:
            for s, old in previous.items():
                signal.signal(s, old)
