"""Test kit for the registry client: the peer registries, and a token-auth registry of our own.

``token_registry`` runs Debian's distribution registry with ``auth: token`` behind an aiohttp token
server that follows Docker's token specification (JWT signed ES256 with an ``x5c`` certificate the
registry trusts; GET with Basic credentials or anonymously, POST with a refresh token).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.conftest import PEERS
from tests.peers import require

PLAIN = "127.0.0.1:5000"
BASIC = "127.0.0.1:5001"
USER, PASSWORD = "peer", "peerpass"


def start_peer_registries() -> None:
    """Make sure both peer registries answer (``make peers`` starts them; else they are started here)."""
    require("registry")
    require("registry_auth")


@pytest.fixture(scope="session")
def peer_registries() -> None:
    start_peer_registries()


def delete_blob(repo: str, digest: str) -> None:
    """Remove blob ``digest`` from repository ``repo`` (a path) of the plain peer registry, where
    delete is enabled."""
    response = httpx.delete(f"http://{PLAIN}/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202, response.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues tokens; ``users`` may log in; repositories under ``public/`` are pullable anonymously."""

    port: int
    service: str = "dytest-registry"
    issuer: str = "dytest-issuer"
    users: dict[str, str] = field(default_factory=lambda: {"alice": "wonderland"})
    lifetime: int = 300
    issued: list[dict[str, object]] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dytest token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _grant(self, user: str, scopes: list[str]) -> list[dict[str, object]]:
        access = []
        for scope in scopes:
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or not name:
                    continue
                wanted = actions.split(",")
                if user:
                    allowed = wanted
                elif name.startswith("public/"):
                    allowed = [a for a in wanted if a == "pull"]
                else:
                    allowed = []
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def sign(self, user: str, scopes: list[str]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": self._grant(user, scopes)}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        self.issued.append({"user": user, "scopes": scopes})
        return f"{signing_input}.{_b64(sig)}"

    def _answer(self, user: str, scopes: list[str], offline: bool) -> web.Response:
        token = self.sign(user, scopes)
        body: dict[str, object] = {"token": token, "access_token": token, "expires_in": self.lifetime,
                                   "issued_at": dt.datetime.now(dt.UTC).isoformat()}
        if offline and user:
            refresh = uuid.uuid4().hex
            self.refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        return web.json_response(body)

    async def get_token(self, request: web.Request) -> web.Response:
        user = ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                return web.json_response({"details": "incorrect username or password"}, status=401)
            user = name
        if request.query.get("service") != self.service:
            return web.json_response({"details": "unknown service"}, status=400)
        offline = request.query.get("offline_token") == "true"
        return self._answer(user, request.query.getall("scope", []), offline)

    async def post_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") == "refresh_token":
            user = self.refresh_tokens.get(str(form.get("refresh_token", "")), "")
            if not user:
                return web.json_response({"error": "invalid_grant"}, status=401)
        elif form.get("grant_type") == "password":
            user = str(form.get("username", ""))
            if self.users.get(user) != form.get("password"):
                return web.json_response({"error": "invalid_grant"}, status=401)
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        scopes = [s for s in str(form.get("scope", "")).split(" ") if s]
        return self._answer(user, scopes, form.get("access_type") == "offline")


class _AiohttpThread:
    """Runs an aiohttp application on a loopback port in a daemon thread."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.port = port
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", port).start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class TokenRegistry:
    host: str
    tokens: TokenServer


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """distribution 2.8 with token auth on a free port, and its token server."""
    base = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(free_port())
    app = web.Application()
    app.router.add_get("/token", tokens.get_token)
    app.router.add_post("/token", tokens.post_token)
    server = _AiohttpThread(app, tokens.port)
    (base / "cert.pem").write_bytes(tokens.cert_pem())
    port = free_port()
    (base / "config.yml").write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: "{base}/data"
  delete:
    enabled: true
http:
  addr: "127.0.0.1:{port}"
  secret: "dytest"
auth:
  token:
    realm: "{tokens.realm}"
    service: "{tokens.service}"
    issuer: "{tokens.issuer}"
    rootcertbundle: "{base}/cert.pem"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with open(base / "registry.log", "wb") as log:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(base / "config.yml")],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        for _ in range(80):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 401:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"token registry did not start: {(base / 'registry.log').read_text()[-2000:]}")
        yield TokenRegistry(f"127.0.0.1:{port}", tokens)
    finally:
        proc.terminate()
        proc.wait(10)
        server.stop()


# -- small test images, uploaded with the protocol layer only (independent of imageops.push) ------

@dataclass
class SampleImage:
    config: bytes
    layers: list[tuple[bytes, bytes]]  # (gzip blob, uncompressed tar)
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        import hashlib

        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @property
    def image_id(self) -> str:
        import hashlib

        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def make_tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(layer_files: list[dict[str, bytes]], *, arch: str = "amd64", variant: str = "",
               oci: bool = False) -> SampleImage:
    """An image with one gzip layer per dict of files."""
    import gzip

    layers = []
    for files in layer_files:
        tar = make_tar(files)
        layers.append((gzip.compress(tar, compresslevel=1, mtime=0), tar))
    return build_image(layers, arch=arch, variant=variant, oci=oci)


def build_image(layers: list[tuple[bytes, bytes]], *, arch: str = "amd64", variant: str = "",
                oci: bool = False, diff_ids: list[str] | None = None) -> SampleImage:
    """Config and manifest over given (gzip blob, tar) layers; ``diff_ids`` may be forced (to lie)."""
    import hashlib

    from dockyard.oci import mediatypes as mt
    from dockyard.oci.descriptor import Descriptor
    from dockyard.oci.digest import Digest
    from dockyard.oci.manifest import Manifest

    config_doc: dict[str, object] = {
        "architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids if diff_ids is not None else [
            "sha256:" + hashlib.sha256(t).hexdigest() for _, t in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config_doc["variant"] = variant
    config = json.dumps(config_doc).encode()
    layer_type = mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP
    media_type = mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST
    manifest = Manifest(
        Descriptor(mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, Digest.from_bytes(config), len(config)),
        tuple(Descriptor(layer_type, Digest.from_bytes(b), len(b)) for b, _ in layers),
        media_type=media_type).to_json()
    return SampleImage(config, layers, manifest, media_type)


def upload_image(host: str, repo: str, tag: str, image: SampleImage) -> None:
    import io

    from dockyard.oci import mediatypes as mt
    from dockyard.oci.manifest import describe
    from dockyard.registry.client import RegistryClient

    with RegistryClient() as client:
        r = client.repository(host, repo)
        for blob in [image.config, *(b for b, _ in image.layers)]:
            r.upload_blob(describe(blob, mt.OCI_LAYER_GZIP), lambda b=blob: io.BytesIO(b))
        r.put_manifest(tag, image.manifest, image.media_type)


def upload_index(host: str, repo: str, tag: str, images: list[tuple[SampleImage, str]]) -> bytes:
    """Push images and an OCI index over them; ``images`` pairs each with ``os/arch[/variant]``."""
    from dockyard.oci import mediatypes as mt
    from dockyard.oci.descriptor import Descriptor
    from dockyard.oci.digest import Digest
    from dockyard.oci.manifest import Index
    from dockyard.oci.platform import Platform
    from dockyard.registry.client import RegistryClient

    descs = []
    for image, spec in images:
        upload_image(host, repo, f"tmp-{spec.replace('/', '-')}", image)
        parts = spec.split("/")
        descs.append(Descriptor(image.media_type, Digest.from_bytes(image.manifest), len(image.manifest),
                                platform=Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else "")))
    index = Index(tuple(descs)).to_json()
    with RegistryClient() as client:
        client.repository(host, repo).put_manifest(tag, index, mt.OCI_INDEX)
    return index


def peer(command: str, *, check: bool = True) -> str:
    """Run a shell command with the peers' environment (env.sh: $DOCKER, DOCKER_HOST, containers confs)."""
    proc = subprocess.run(["bash", "-c", f'. "{PEERS}/env.sh" && {command}'], capture_output=True,
                          text=True, timeout=300)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{command}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


