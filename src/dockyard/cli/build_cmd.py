"""``dockyard build``: docker build's flags and BuildKit's output, with no daemon."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from dockyard.errors import DockyardError, Interrupted


def _parse_kv(values: tuple[str, ...], flag: str, *, env_fallback: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not eq:
            if env_fallback:
                if key in os.environ:
                    out[key] = os.environ[key]
                continue
            raise click.UsageError(f"invalid argument {value!r} for \"{flag}\" flag: expected key=value")
        out[key] = val
    return out


def _csv(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        key, _, val = part.partition("=")
        out[key.strip()] = val.strip()
    return out


def _secrets(values: tuple[str, ...]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for value in values:
        fields = _csv(value)
        sid = fields.get("id", "")
        if not sid:
            raise click.UsageError(f"invalid secret {value!r}: id= is required")
        if "env" in fields:
            if fields["env"] not in os.environ:
                raise click.UsageError(f"secret {sid}: environment variable {fields['env']} is not set")
            out[sid] = os.environ[fields["env"]].encode()
            continue
        src = fields.get("src") or fields.get("source") or ""
        if not src:
            if sid in os.environ:
                out[sid] = os.environ[sid].encode()
                continue
            raise click.UsageError(f"invalid secret {value!r}: src= or env= is required")
        try:
            with open(os.path.expanduser(src), "rb") as f:
                out[sid] = f.read()
        except OSError as exc:
            raise click.UsageError(f"failed to read secret {sid} from {src}: {exc.strerror}") from None
    return out


def _ssh(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        sid, _, path = value.partition("=")
        sock = path or os.environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise click.UsageError(f"invalid ssh {value!r}: no agent socket given and SSH_AUTH_SOCK is unset")
        out[sid or "default"] = sock
    return out


def _outputs(values: tuple[str, ...]) -> list[object]:
    from dockyard.builder.options import Output

    out: list[object] = []
    for value in values:
        if "=" not in value:
            out.append(Output("local", value))
            continue
        fields = _csv(value)
        kind = fields.pop("type", "local")
        out.append(Output(kind, fields.pop("dest", ""), fields))
    return out


def _cache_specs(values: tuple[str, ...], flag: str) -> list[Any]:
    from dockyard.builder.remotecache.spec import parse_cache_spec

    try:
        return [parse_cache_spec(v, flag) for v in values]
    except DockyardError as exc:
        raise click.UsageError(str(exc)) from None


def _print_explanations(rows: list[tuple[str, str, str]]) -> None:
    """``--explain-cache``: one row per step: its title, CACHED or RAN, and why it missed."""
    width = min(70, max([len("STEP"), *(len(r[0]) for r in rows)]))
    click.echo(f"{'STEP':<{width}}  {'CACHE':<6}  REASON")
    for label, outcome, reason in rows:
        shown = label if len(label) <= width else label[:width - 3] + "..."
        click.echo(f"{shown:<{width}}  {'CACHED' if outcome == 'cached' else 'RAN':<6}  {reason}")


def _read_dockerfile(context: str, dockerfile: str) -> str:
    where = dockerfile or os.path.join(context, "Dockerfile")
    try:
        with open(where, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise click.ClickException(f"failed to read dockerfile: open {where}: {exc.strerror}") from None


class AttestFlagsCommand(click.Command):
    """``--sbom`` / ``--provenance`` with no ``=value`` mean ``=true`` and never take the next word (as
    buildx's flags: ``build --sbom .`` builds ``.``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        bare = ("--sbom", "--provenance")
        return super().parse_args(ctx, [f"{a}=true" if a in bare else a for a in args])


def _build_attested(client: Any, options: Any, specs: list[Any], as_referrers: bool, renderer: Any) -> Any:
    """Build, attach the attestations to the tags, then push them if asked."""
    import time

    from dockyard.progress import VertexCompleted, VertexStarted
    from dockyard.record import replace
    from dockyard.supplychain.intoto import attach_build

    started = time.time()
    result = client.build(replace(options, push=False))
    renderer(VertexStarted("attest", "attaching attestations"))
    attach_build(client, options, result, specs, started, time.time())
    renderer(VertexCompleted("attest", "attaching attestations", "done"))
    if options.push:
        client.progress = renderer
        for tag in options.tags:
            pushed = client.push(tag, attest_as_referrers=as_referrers)
            if getattr(result, "index_digest", ""):
                result.index_digest = str(pushed.digest)
    return result


@click.command("build", cls=AttestFlagsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", default=".")
@click.option("-t", "--tag", "tags", multiple=True, help='Name and optionally a tag ("name:tag").')
@click.option("-f", "--file", "dockerfile", default="",
              help="Name of the Dockerfile (default: PATH/Dockerfile).",
              )
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", default="", help="Set the target build stage to build.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("--platform", default="", help="Set the target platform for the build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", default="", help="Write the image ID to the file.")
@click.option("--progress", default="auto", type=click.Choice(["auto", "tty", "plain", "quiet"]),
              help="Set type of progress output.")
@click.option("-o", "--output", "outputs", multiple=True, help="Output destination (type=local,dest=path).")
@click.option("--secret", "secrets", multiple=True,
              help="Secret to expose to the build (id=x,src=FILE|env=VAR).")
@click.option("--ssh", "ssh", multiple=True, help="SSH agent socket to expose (default|<id>[=<socket>]).")
@click.option("--network", default="default", type=click.Choice(["default", "host", "none"]),
              help="Networking mode for the RUN instructions: default (a private network with outbound"
                   " access), host or none.")
@click.option("--build-context", "build_contexts", multiple=True,
              help="Additional build contexts (name=path or name=docker-image://ref).")
@click.option("--push", is_flag=True,
              help="Push the tags when the build is done (all platforms as one index).")
@click.option("--runtime", default="builtin", type=click.Choice(["builtin", "runc"]),
              help="How RUN steps run: the built-in executor or runc.")
@click.option("--cache-from", "cache_from", multiple=True,
              help='External cache sources (e.g. "type=registry,ref=REG/REPO:TAG", "type=local,src=DIR").')
@click.option("--cache-to", "cache_to", multiple=True,
              help='Cache export destinations (e.g. "type=registry,ref=REG/REPO:TAG,mode=max", '
                   '"type=local,dest=DIR", "type=inline").')
@click.option("--explain-cache", is_flag=True, help="Print, per step, whether it hit the cache and why not.")
@click.option("--check", is_flag=True,
              help="Run the build checks (StageNameCasing, JSONArgsRecommended...) instead of building.")
@click.option("--allow", "allow", multiple=True, type=click.Choice(["security.insecure", "network.host"]),
              help="Allow extra privileged entitlement (e.g., network.host, security.insecure).")
@click.option("--sbom", default=None, is_flag=False, flag_value="true",
              help='Shorthand for "--attest=type=sbom" (an SPDX SBOM attestation).')
@click.option("--provenance", default=None, is_flag=False, flag_value="true",
              help='Shorthand for "--attest=type=provenance" (mode=min|max, version=v0.2|v1).')
@click.option("--attest", "attest", multiple=True,
              help='Attestation parameters (format: "type=sbom", "type=provenance,mode=max").')
@click.option("--attest-as-referrers", is_flag=True,
              help="Push attestations as OCI 1.1 referrers of the image instead of in its index.")
@click.option("--isolation", default="namespaces", envvar="DOCKYARD_ISOLATION",
              type=click.Choice(["auto", "namespaces", "chroot"]),
              help="namespaces (overlayfs), chroot (no namespaces or mounts: inside an unprivileged "
                   "container), or auto (the strongest that works here, named in the build log).")
@click.pass_context
def build_cmd(ctx: click.Context, path: str, tags: tuple[str, ...], dockerfile: str,
              build_args: tuple[str, ...], target: str, labels: tuple[str, ...], platform: str,
              no_cache: bool, pull: bool, quiet: bool, iidfile: str, progress: str, outputs: tuple[str, ...],
              secrets: tuple[str, ...], ssh: tuple[str, ...], network: str, build_contexts: tuple[str, ...],
              push: bool, runtime: str, allow: tuple[str, ...], isolation: str,
              cache_from: tuple[str, ...], cache_to: tuple[str, ...], explain_cache: bool,
              check: bool, sbom: str | None, provenance: str | None, attest: tuple[str, ...],
              attest_as_referrers: bool) -> None:
    """Build an image from a Dockerfile (PATH "-": a tar context or a Dockerfile on standard input)."""
    from dockyard.builder.options import BuildOptions
    from dockyard.cli.progress_render import make_renderer
    from dockyard.client import Client

    client = Client(getattr(ctx.find_root().obj, "root", None))
    if path == "-":
        # As docker: a tar context or a lone Dockerfile on standard input (unpacked until the command ends).
        if dockerfile == "-":
            raise click.ClickException(
                "invalid argument: can't use stdin for both build context and dockerfile")
        from dockyard.builder.stdin_context import stream_context

        try:
            path, dockerfile = ctx.with_resource(stream_context(sys.stdin.buffer, dockerfile))
        except DockyardError as exc:
            click.echo(f"ERROR: failed to solve: {exc}", err=True)
            sys.exit(1)
    dockerfile_text = None
    if dockerfile == "-":
        dockerfile_text = sys.stdin.read()
    elif dockerfile and not os.path.isabs(dockerfile) and not os.path.exists(dockerfile):
        dockerfile = os.path.join(path, dockerfile)
    if check:
        from dockyard.cli.build_check import run_checks

        text = dockerfile_text if dockerfile_text is not None else _read_dockerfile(path, dockerfile)
        sys.exit(run_checks(client, text, dockerfile or "Dockerfile", path,
                            _parse_kv(build_args, "--build-arg", env_fallback=True)))
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "")
    epoch = int(epoch_text) if epoch_text.isdigit() else None
    for tag in tags:
        from dockyard.oci.reference import parse_normalized

        try:
            parse_normalized(tag)
        except DockyardError as exc:
            raise click.UsageError(f'invalid argument "{tag}" for "-t, --tag" flag: {exc}') from None
    from dockyard.supplychain.spec import parse_attest

    try:
        specs = parse_attest(sbom, provenance, attest)
    except DockyardError as exc:
        raise click.UsageError(str(exc)) from None
    if specs and not tags:
        raise click.UsageError("attestations (--sbom, --provenance, --attest) need a tag (-t) to be kept")
    renderer = make_renderer("quiet" if quiet else progress, sys.stderr)

    options = BuildOptions(
        context_dir=path, dockerfile="" if dockerfile == "-" else dockerfile, dockerfile_text=dockerfile_text,
        tags=list(tags), build_args=_parse_kv(build_args, "--build-arg", env_fallback=True), target=target,
        labels=_parse_kv(labels, "--label"), platform=platform, no_cache=no_cache, pull=pull,
        secrets=_secrets(secrets), ssh=_ssh(ssh), network=network, outputs=_outputs(outputs),  # type: ignore[arg-type]
        source_date_epoch=epoch, progress=renderer, runtime=runtime, push=push,
        isolation=isolation, allow=frozenset(allow),
        build_contexts=_parse_kv(build_contexts, "--build-context"),
        cache_from=_cache_specs(cache_from, "--cache-from"), cache_to=_cache_specs(cache_to, "--cache-to"),
        explain_cache=explain_cache,
    )
    try:
        if specs:
            result = _build_attested(client, options, specs, attest_as_referrers, renderer)
        else:
            result = client.build(options)
    except DockyardError as exc:
        renderer.close()
        click.echo(f"ERROR: failed to solve: {exc}", err=True)
        sys.exit(exc.exit_code if isinstance(exc, Interrupted) else 1)  # Ctrl-C: 130, as docker
    renderer.close()
    if explain_cache:
        _print_explanations(result.explanations)
    for warning in result.warnings:
        click.echo(warning, err=True)
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(result.image_id)
    index = getattr(result, "index_digest", "")
    if quiet:
        click.echo(index or result.image_id)
    elif index and push:  # the export step named the local index; a push makes another, named here
        click.echo(f"exporting manifest list {index} done", err=True)
