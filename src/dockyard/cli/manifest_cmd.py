"""``dockyard manifest create|inspect|annotate|push|rm`` (docker manifest) and ``buildx imagetools``."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import click

from dockyard.errors import NotFound

if TYPE_CHECKING:
    from dockyard.client import Client
    from dockyard.imageops.manifests import ManifestLists
    from dockyard.oci.reference import Reference


def _client(ctx: click.Context) -> Client:
    from dockyard.client import Client

    return Client(getattr(ctx.find_root().obj, "root", None))


def _lists(client: Client) -> ManifestLists:
    from dockyard.imageops.manifests import ManifestLists

    return ManifestLists(client.store.root / "manifests")


def _ref(value: str) -> Reference:
    from dockyard.oci.reference import parse_normalized

    ref = parse_normalized(value)
    return ref if ref.digest else ref.tag_or_latest()


def _pretty(data: bytes) -> str:
    return json.dumps(json.loads(data), indent=3)  # docker manifest inspect indents by three


@click.group("manifest", context_settings={"help_option_names": ["-h", "--help"]})
def manifest_group() -> None:
    """Manage Docker image manifests and manifest lists."""


@manifest_group.command("create")
@click.argument("manifest_list")
@click.argument("manifests", nargs=-1, required=True)
@click.option("-a", "--amend", is_flag=True, help="Amend an existing manifest list")
@click.option("--insecure", is_flag=True, help="Allow communication with an insecure registry")
@click.pass_context
def create_cmd(ctx: click.Context, manifest_list: str, manifests: tuple[str, ...], amend: bool,
               insecure: bool) -> None:
    """Create a local manifest list for annotating and pushing to a registry."""
    with _client(ctx) as client, client.registry_client() as registry:
        _lists(client).create(registry, _ref(manifest_list), [_ref(m) for m in manifests], amend=amend)
    click.echo(f"Created manifest list {_ref(manifest_list)}")


@manifest_group.command("inspect")
@click.argument("refs", nargs=-1, required=True, metavar="[MANIFEST_LIST] MANIFEST")
@click.option("--insecure", is_flag=True, help="Allow communication with an insecure registry")
@click.option("-v", "--verbose", is_flag=True, help="Output additional info including layers and platform")
@click.pass_context
def inspect_cmd(ctx: click.Context, refs: tuple[str, ...], insecure: bool, verbose: bool) -> None:
    """Display an image manifest, or manifest list."""
    from dockyard.imageops.manifests import index_bytes

    if len(refs) > 2:
        raise click.UsageError('"manifest inspect" requires at least 1 and at most 2 arguments.')
    with _client(ctx) as client:
        lists = _lists(client)
        if len(refs) == 2:
            mlist = lists.get(_ref(refs[0]))
            if mlist is None:
                raise NotFound(f"No such manifest: {_ref(refs[0])}")
            entry = next((e for e in mlist.entries if _ref(e.ref) == _ref(refs[1])), None)
            if entry is None:
                raise NotFound(f"manifest for image {refs[1]} does not exist in {refs[0]}")
            click.echo(json.dumps(entry.descriptor.to_dict(), indent=3))
            return
        local = lists.get(_ref(refs[0]))
        if local is not None:
            click.echo(_pretty(index_bytes([e.descriptor for e in local.entries])[0]))
            return
        with client.registry_client() as registry:
            ref = _ref(refs[0])
            repo = registry.repository(ref.domain, ref.path)
            fetched = repo.get_manifest(ref.digest or ref.tag or "latest")
        if not verbose:
            click.echo(_pretty(fetched.data))
            return
        out: dict[str, Any] = {"Ref": str(ref), "Descriptor": fetched.descriptor.to_dict(),
                               "Raw": base64.b64encode(fetched.data).decode()}
        key = "Index" if fetched.media_type in _indexes() else "SchemaV2Manifest"
        out[key] = json.loads(fetched.data)
        click.echo(json.dumps(out, indent=3))


def _indexes() -> tuple[str, ...]:
    from dockyard.oci import mediatypes as mt

    return tuple(mt.INDEXES)


@manifest_group.command("annotate")
@click.argument("manifest_list")
@click.argument("manifest")
@click.option("--arch", default="", help="Set architecture")
@click.option("--os", "os_", default="", help="Set operating system")
@click.option("--os-features", default="", help="Set operating system feature")
@click.option("--os-version", default="", help="Set operating system version")
@click.option("--variant", default="", help="Set architecture variant")
@click.pass_context
def annotate_cmd(ctx: click.Context, manifest_list: str, manifest: str, arch: str, os_: str, os_features: str,
                 os_version: str, variant: str) -> None:
    """Add additional information to a local image manifest."""
    from dockyard.oci.platform import Platform
    from dockyard.record import replace

    with _client(ctx) as client:
        lists = _lists(client)
        mlist = lists.get(_ref(manifest_list))
        if mlist is None:
            raise NotFound(f"No such manifest: {_ref(manifest_list)}")
        for entry in mlist.entries:
            if _ref(entry.ref) != _ref(manifest):
                continue
            old = entry.descriptor.platform or Platform("", "")
            new = Platform(os_ or old.os, arch or old.architecture, variant or old.variant,
                           os_version or old.os_version,
                           tuple(f for f in os_features.split(",") if f) or old.os_features)
            entry.descriptor = replace(entry.descriptor, platform=new)
            lists.put(mlist)
            return
    raise NotFound(f"manifest for image {manifest} does not exist in {manifest_list}")


@manifest_group.command("push")
@click.argument("manifest_list")
@click.option("--insecure", is_flag=True, help="Allow push to an insecure registry")
@click.option("-p", "--purge", is_flag=True, help="Remove the local manifest list after push")
@click.pass_context
def push_cmd(ctx: click.Context, manifest_list: str, insecure: bool, purge: bool) -> None:
    """Push a manifest list to a repository."""
    from dockyard.imageops.manifests import index_bytes, put_index

    target = _ref(manifest_list)
    with _client(ctx) as client:
        lists = _lists(client)
        mlist = lists.get(target)
        if mlist is None:
            raise NotFound(f"No such manifest: {target}")
        descs = [e.descriptor for e in mlist.entries]
        data, media_type = index_bytes(descs)
        with client.registry_client() as registry:
            digest = put_index(registry, target, [(_ref(e.ref), e.descriptor) for e in mlist.entries], data,
                               media_type)
        if purge:
            lists.remove(target)
    click.echo(f"Pushed ref {target}@{digest} with digest: {digest}")
    click.echo(digest)


@manifest_group.command("rm")
@click.argument("manifest_lists", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, manifest_lists: tuple[str, ...]) -> None:
    """Delete one or more manifest lists from local storage."""
    missing = []
    with _client(ctx) as client:
        lists = _lists(client)
        for name in manifest_lists:
            if not lists.remove(_ref(name)):
                missing.append(name)
    if missing:
        raise NotFound("\n".join(f"No such manifest: {_ref(m)}" for m in missing))


# -- buildx imagetools ------------------------------------------------------------------------------

@click.group("imagetools", context_settings={"help_option_names": ["-h", "--help"]})
def imagetools_group() -> None:
    """Commands to work on images in registry."""


@imagetools_group.command("inspect")
@click.argument("name")
@click.option("--raw", is_flag=True, help="Show original, unformatted JSON manifest")
@click.option("--format", "fmt", default="",
              help='Format the output using the given Go template (e.g. "{{json .Manifest}}")')
@click.pass_context
def imagetools_inspect(ctx: click.Context, name: str, raw: bool, fmt: str) -> None:
    """Show details of an image in the registry."""
    from dockyard.imageops.manifests import platform_configs, platform_manifests

    if raw and fmt:
        raise click.UsageError("format and raw cannot be used together")
    ref = _ref(name)
    with _client(ctx) as client, client.registry_client() as registry:
        top, members = platform_manifests(registry, ref)
        # As buildx: a template starting with {{.Manifest prints the default listing instead.
        configs = (platform_configs(registry, ref, top, members)
                   if fmt and not fmt.startswith("{{.Manifest") else {})
    if raw:
        click.echo(top.data.decode(), nl=False)  # byte for byte, so the digest holds
        return
    if configs:
        from dockyard.cli.imagetools_format import image_value, manifest_value, render

        manifest = manifest_value(top.data, top.media_type, str(top.digest), _indexes())
        click.echo(render(fmt, name, manifest, {p: image_value(c) for p, c in configs.items()}), nl=False)
        return
    lines = [f"Name:      {ref}", f"MediaType: {top.media_type}", f"Digest:    {top.digest}"]
    if top.media_type in _indexes():
        lines += ["", "Manifests:"]
        for i, m in enumerate(members):
            if i:
                lines.append("")
            lines += [f"  Name:      {ref.name_only()}@{m.digest}", f"  MediaType: {m.media_type}",
                      f"  Platform:  {m.platform}"]
    click.echo("\n".join(lines))


@imagetools_group.command("create")
@click.argument("sources", nargs=-1, required=True)
@click.option("-t", "--tag", "tags", multiple=True, required=True, help="Set reference for new image")
@click.option("--dry-run", is_flag=True, help="Show final image instead of pushing")
@click.option("--append", is_flag=True, help="Append to existing manifest")
@click.pass_context
def imagetools_create(ctx: click.Context, sources: tuple[str, ...], tags: tuple[str, ...], dry_run: bool,
                      append: bool) -> None:
    """Create a new image based on source images."""
    from dockyard.imageops.manifests import combine, index_bytes, put_index

    refs = ([_ref(tags[0])] if append else []) + [_ref(s) for s in sources]
    with _client(ctx) as client, client.registry_client() as registry:
        members = combine(registry, refs)
        data, media_type = index_bytes([d for _, d in members])
        if dry_run:
            click.echo(_pretty(data))
            return
        for tag in tags:
            digest = put_index(registry, _ref(tag), members, data, media_type)
            click.echo(f"pushed {_ref(tag)}@{digest}", err=True)
