"""``sign``, ``verify``, ``generate-key-pair`` (cosign's key-based commands) and ``image attestations``."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import click

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    from dockyard.client import Client


def _client(ctx: click.Context) -> Client:
    from dockyard.client import Client

    return Client(getattr(ctx.find_root().obj, "root", None))


def _password(confirm: bool) -> bytes:
    """COSIGN_PASSWORD when set (empty allowed), else asked on the terminal, as cosign does."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if not sys.stdin.isatty():
        raise InvalidArgument("no password: set COSIGN_PASSWORD (an empty value is allowed)")
    text = click.prompt("Enter password for private key", hide_input=True, default="", show_default=False,
                        confirmation_prompt="Enter password for private key again" if confirm else False)
    return str(text).encode()


@click.command("generate-key-pair")
@click.option("--output-key-prefix", default="cosign", show_default=True,
              help="Name of the key files (PREFIX.key and PREFIX.pub) in the current directory.")
def generate_key_pair_cmd(output_key_prefix: str) -> None:
    """Generate a key pair for signing images (cosign's format: cosign.key, cosign.pub)."""
    from dockyard.supplychain.cosign import generate_key_pair

    private_path, public_path = f"{output_key_prefix}.key", f"{output_key_prefix}.pub"
    for path in (private_path, public_path):
        if os.path.exists(path):
            raise InvalidArgument(f"{path} already exists: remove it first")
    private_pem, public_pem = generate_key_pair(_password(confirm=True))
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    with open(public_path, "wb") as f:
        f.write(public_pem)
    click.echo(f"Private key written to {private_path}", err=True)
    click.echo(f"Public key written to {public_path}", err=True)


@click.command("sign")
@click.argument("image")
@click.option("--key", required=True, help="Path to the private key file (cosign.key).")
@click.option("--referrer/--no-referrer", default=True, show_default=True,
              help="Also store the signature as an OCI 1.1 referrer of the image.")
@click.option("-a", "--annotations", "annotations", multiple=True, help="Extra key=value annotations.")
@click.pass_context
def sign_cmd(ctx: click.Context, image: str, key: str, referrer: bool, annotations: tuple[str, ...]) -> None:
    """Sign an image in a registry with a cosign key (a .sig tag and an OCI 1.1 referrer)."""
    from dockyard.oci.reference import parse_normalized
    from dockyard.supplychain.signing import load_key_file, sign_image

    extra = {}
    for item in annotations:
        k, eq, v = item.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid annotation {item!r}: expected key=value")
        extra[k] = v
    private = load_key_file(key, _password(confirm=False))
    ref = parse_normalized(image)
    with _client(ctx).registry_client() as registry:
        click.echo(f"Pushing signature to: {ref.name}", err=True)
        result = sign_image(registry, ref, private, referrer=referrer, annotations=extra)
    click.echo(f"Signed {ref.name}@{result.digest}: {result.tag}"
               + (f", referrer {result.referrer}" if result.referrer else ""), err=True)


@click.command("verify")
@click.argument("image")
@click.option("--key", required=True, help="Path to the public key file (cosign.pub).")
@click.pass_context
def verify_cmd(ctx: click.Context, image: str, key: str) -> None:
    """Verify an image's cosign signatures against a public key."""
    from dockyard.oci.reference import parse_normalized
    from dockyard.supplychain.signing import VerificationFailed, load_public_file, verify_image

    public = load_public_file(key)
    ref = parse_normalized(image)
    with _client(ctx).registry_client() as registry:
        try:
            payloads = verify_image(registry, ref, public)
        except VerificationFailed as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
    click.echo(f"\nVerification for {ref.familiar()} --", err=True)
    click.echo("The following checks were performed on each of these signatures:", err=True)
    click.echo("  - The cosign claims were validated", err=True)
    click.echo("  - The signatures were verified against the specified public key", err=True)
    click.echo(json.dumps(payloads, separators=(",", ":")))


@click.command("attestations")
@click.argument("image")
@click.option("--remote", is_flag=True, help="Ask the registry even when the image is in the local store.")
@click.option("--type", "wanted", default="",
              help="Print the statements of this predicate type (sbom, provenance, or a URI) as JSON.")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json"]),
              help="table: one line per statement; json: every statement in full.")
@click.pass_context
def attestations_cmd(ctx: click.Context, image: str, remote: bool, wanted: str, fmt: str) -> None:
    """List the attestations (SBOM, provenance) of an image, local or in a registry."""
    from dockyard.imageops.images import normalize_tag
    from dockyard.oci.reference import parse_normalized
    from dockyard.supplychain.listing import local_attestations, matches, remote_attestations

    client = _client(ctx)
    ref = parse_normalized(image)
    local = not remote and ref.digest is None and client.store.meta.get_tag(normalize_tag(image)) is not None
    if local:
        found = local_attestations(client.store, normalize_tag(image))
    else:
        with client.registry_client() as registry:
            found = remote_attestations(registry, ref)
    if wanted:
        found = [f for f in found if matches(f, wanted)]
        if not found:
            raise InvalidArgument(f"{image} has no {wanted} attestation")
    if wanted or fmt == "json":
        docs = [f.statement.document() for f in found] if wanted else [f.to_dict() for f in found]
        click.echo(json.dumps(docs[0] if wanted and len(docs) == 1 else docs, indent=2))
        return
    if not found:
        click.echo(f"{image}: no attestations ({'local store' if local else 'registry'})", err=True)
        return
    click.echo(f"{'PLATFORM':<16} {'SUBJECT':<19} {'STORED':<9} {'PREDICATE TYPE':<36} MANIFEST")
    for f in found:
        click.echo(f"{f.platform or '-':<16} {f.subject[:19]:<19} {f.stored:<9} "
                   f"{f.statement.predicate_type:<36} {f.manifest[:19]}")
