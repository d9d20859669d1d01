"""Access control: htpasswd Basic auth, the token issuer with a policy, and TLS."""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import InvalidArgument
from dockyard.registry.server import RegistryServer
from dockyard.registry.server.auth import Access, TokenIssuer
from tests.registry.tlskit import self_signed

sys.path.insert(0, str(Path(__file__).parent))
from regkit import error_code, sha


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    # "$2y$" is what `htpasswd -B` writes; low cost keeps the test fast.
    lines = [f"{u}:" + bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
             for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def basic_server(tmp_path: Path) -> Iterator[RegistryServer]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    with RegistryServer(storage=tmp_path / "s", htpasswd=str(htpasswd)) as srv:
        yield srv


def test_basic_auth(basic_server: RegistryServer) -> None:
    url = basic_server.url
    r = httpx.get(f"{url}/v2/")
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert httpx.get(f"{url}/v2/", auth=("alice", "wrong")).status_code == 401
    assert httpx.get(f"{url}/v2/", auth=("bob", "wonderland")).status_code == 401
    assert httpx.get(f"{url}/v2/", auth=("alice", "wonderland")).status_code == 200
    data = b"authenticated blob"
    r = httpx.post(f"{url}/v2/a/r/blobs/uploads/", params={"digest": sha(data)}, content=data,
                   auth=("alice", "wonderland"))
    assert r.status_code == 201
    assert httpx.get(f"{url}/v2/a/r/blobs/{sha(data)}").status_code == 401
    # The health endpoint stays open for load balancers.
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_bad_htpasswd_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with pytest.raises(InvalidArgument, match="line 1: not a bcrypt entry"):
        RegistryServer(storage=tmp_path / "s", htpasswd=str(tmp_path / "h")).start()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[RegistryServer]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "a-pass", "bob": "b-pass"})
    policy = {"anonymous_pull": ["public/*"], "rules": [
        {"account": "alice", "repository": "alice/*", "actions": ["pull", "push", "delete"]},
        {"account": "*", "repository": "shared/*", "actions": ["pull"]},
        {"account": "alice", "repository": "*", "actions": ["pull"]},
    ]}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    with RegistryServer(storage=tmp_path / "s", htpasswd=str(htpasswd),
                        token_policy=str(tmp_path / "policy.json")) as srv:
        yield srv


def _token(url: str, scope: str, auth: tuple[str, str] | None = None) -> str:
    r = httpx.get(f"{url}/token", params={"service": "dockyard-registry", "scope": scope}, auth=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_token_flow_and_scopes(token_server: RegistryServer) -> None:
    url = token_server.url
    r = httpx.post(f"{url}/v2/alice/app/blobs/uploads/")
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{url}/token"')
    assert 'service="dockyard-registry"' in challenge and 'scope="repository:alice/app:push"' in challenge

    push = _token(url, "repository:alice/app:pull,push", ("alice", "a-pass"))
    data = b"alice's layer"
    r = httpx.post(f"{url}/v2/alice/app/blobs/uploads/", params={"digest": sha(data)}, content=data,
                   headers={"Authorization": f"Bearer {push}"})
    assert r.status_code == 201

    # Bob asks for push on alice's repository; the issuer grants nothing, the registry refuses: 403.
    bob = _token(url, "repository:alice/app:pull,push", ("bob", "b-pass"))
    r = httpx.get(f"{url}/v2/alice/app/blobs/{sha(data)}", headers={"Authorization": f"Bearer {bob}"})
    assert r.status_code == 403 and error_code(r) == "DENIED"
    # Alice's push token does not cover delete, which the policy would grant: 401, ask for more.
    r = httpx.delete(f"{url}/v2/alice/app/blobs/{sha(data)}", headers={"Authorization": f"Bearer {push}"})
    assert r.status_code == 401
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="repository:alice/app:delete"' in r.headers["WWW-Authenticate"]
    delete = _token(url, "repository:alice/app:delete", ("alice", "a-pass"))
    r = httpx.delete(f"{url}/v2/alice/app/blobs/{sha(data)}", headers={"Authorization": f"Bearer {delete}"})
    assert r.status_code == 202

    # Anonymous pull only where the policy allows it.
    anon = _token(url, "repository:public/x:pull repository:alice/app:pull")
    assert httpx.get(f"{url}/v2/public/x/tags/list",
                     headers={"Authorization": f"Bearer {anon}"}).status_code == 404  # allowed; absent
    assert httpx.get(f"{url}/v2/alice/app/tags/list",
                     headers={"Authorization": f"Bearer {anon}"}).status_code == 401

    # Wrong password: the token endpoint itself refuses.
    r = httpx.get(f"{url}/token", params={"scope": "repository:alice/app:pull"}, auth=("alice", "nope"))
    assert r.status_code == 401
    # Forged or tampered tokens are refused.
    head, body, sig = push.split(".")
    assert httpx.get(f"{url}/v2/", headers={"Authorization": f"Bearer {head}.{body}.{sig[::-1]}"}
                     ).status_code == 401
    # The catalog needs registry:catalog:*, which alice (a rule on "*") gets.
    cat = _token(url, "registry:catalog:*", ("alice", "a-pass"))
    assert httpx.get(f"{url}/v2/_catalog", headers={"Authorization": f"Bearer {cat}"}).json() == {
        "repositories": ["alice/app"]}


def test_oauth_post_token_endpoint(token_server: RegistryServer) -> None:
    r = httpx.post(f"{token_server.url}/token", data={
        "grant_type": "password", "username": "alice", "password": "a-pass", "service": "dockyard-registry",
        "scope": "repository:alice/app:pull", "client_id": "test"})
    assert r.status_code == 200 and r.json()["access_token"]


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with RegistryServer(storage=tmp_path / "s", tls_cert=str(cert), tls_key=str(key)) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(f"{srv.url}/v2/", verify=trusted).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{srv.url}/v2/")  # not trusted by default
    with pytest.raises(InvalidArgument, match="together"):
        RegistryServer(storage=tmp_path / "s", tls_cert=str(cert))


def _issuer(server: RegistryServer) -> TokenIssuer:
    assert server.registry is not None and server.registry.auth.issuer is not None
    return server.registry.auth.issuer


@pytest.mark.parametrize("skew", [-3600, +3600], ids=["expired", "not-yet-valid"])
def test_tokens_outside_their_validity_are_refused(token_server: RegistryServer, skew: int) -> None:
    url, issuer = token_server.url, _issuer(token_server)

    def pull_tags(token: str) -> int:
        return httpx.get(f"{url}/v2/alice/app/tags/list", headers={"Authorization": f"Bearer {token}"}
                         ).status_code

    assert pull_tags(_token(url, "repository:alice/app:pull", ("alice", "a-pass"))) == 404  # allowed
    issuer.clock = lambda: time.time() + skew  # tokens minted an hour ago (exp passed) or ahead (nbf)
    stale = _token(url, "repository:alice/app:pull", ("alice", "a-pass"))
    issuer.clock = time.time
    r = httpx.get(f"{url}/v2/alice/app/tags/list", headers={"Authorization": f"Bearer {stale}"})
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"


def test_tokens_for_another_service_or_issuer_or_without_expiry_are_refused(
        token_server: RegistryServer) -> None:
    url, ours = token_server.url, _issuer(token_server)
    grant = [Access("repository", "alice/app", frozenset({"pull"}))]
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    now = int(time.time())
    tokens = {
        "ours": TokenIssuer(ours.service, ours.issuer, key=ours.key).issue("alice", grant),
        "aud": TokenIssuer("elsewhere", ours.issuer, key=ours.key).issue("alice", grant),
        "iss": TokenIssuer(ours.service, "someone-else", key=ours.key).issue("alice", grant),
        "no exp": jwt.encode({"iss": ours.issuer, "aud": ours.service, "nbf": now - 1,
                              "sub": "alice", "access": access}, ours.key, algorithm="ES256"),
        # Issued now, valid only from an hour on: the nbf check alone refuses it.
        "nbf ahead": jwt.encode({"iss": ours.issuer, "aud": ours.service, "iat": now, "nbf": now + 3600,
                                 "exp": now + 7200, "sub": "alice", "access": access}, ours.key,
                                algorithm="ES256"),
        "other key": TokenIssuer(ours.service, ours.issuer).issue("alice", grant),
    }
    status = {what: httpx.get(f"{url}/v2/alice/app/tags/list", headers={"Authorization": f"Bearer {token}"}
                              ).status_code for what, token in tokens.items()}
    assert status == {"ours": 404, "aud": 401, "iss": 401, "no exp": 401, "nbf ahead": 401,
                      "other key": 401}


def test_replicas_with_one_token_key_accept_each_others_tokens(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "a-pass"})
    (tmp_path / "policy.json").write_text(json.dumps({"rules": [
        {"account": "alice", "repository": "*", "actions": ["*"]}]}))
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    common = {"storage": tmp_path / "s", "htpasswd": str(htpasswd),
              "token_policy": str(tmp_path / "policy.json")}
    with RegistryServer(**common, token_key=str(tmp_path / "key.pem")) as a, \
            RegistryServer(**common, token_key=str(tmp_path / "key.pem")) as b, \
            RegistryServer(**common) as other:
        token = _token(a.url, "repository:team/app:pull", ("alice", "a-pass"))
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{b.url}/v2/team/app/tags/list", headers=bearer).status_code == 404  # accepted
        assert httpx.get(f"{other.url}/v2/team/app/tags/list", headers=bearer).status_code == 401


@pytest.mark.parametrize(("content", "message"), [
    (b"not a key", "not an unencrypted PEM private key"),
    (None, "EC P-256"),
])
def test_a_bad_token_key_is_a_clear_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    if content is None:
        content = ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "key.pem").write_bytes(content)
    (tmp_path / "policy.json").write_text("{}")
    with pytest.raises(InvalidArgument, match=message):
        RegistryServer(storage=tmp_path / "s", token_policy=str(tmp_path / "policy.json"),
                       token_key=str(tmp_path / "key.pem"))
