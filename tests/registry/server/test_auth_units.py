"""The access-control pieces on their own: scope parsing, htpasswd, policy grants, token claims and
expiry, Basic credentials and the challenges the Authorizer answers with."""

from __future__ import annotations

import base64
import calendar
import json
import time
from pathlib import Path

import bcrypt
import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.server.apierrors import ApiError
from dockyard.registry.server.auth import (
    Access,
    Authorizer,
    Htpasswd,
    Policy,
    TokenIssuer,
    basic_credentials,
    parse_scopes,
)

PULL = frozenset({"pull"})


def _b64(data: bytes) -> str:
    """JWT's base64url without padding (the server signs through PyJWT; tests forge tokens by hand)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _htpasswd(path: Path, users: dict[str, str], prefix: str = "$2y$") -> Htpasswd:
    lines = ["# comment", ""] + [
        f"{u}:" + bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", prefix, 1)
        for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return Htpasswd(path)


def _policy(tmp_path: Path, data: object) -> Policy:
    (tmp_path / "policy.json").write_text(json.dumps(data))
    return Policy.load(tmp_path / "policy.json")


def _claims(token: str) -> dict[str, object]:
    return dict(json.loads(_unb64(token.split(".")[1])))


def test_parse_scopes() -> None:
    assert parse_scopes(["repository:a/b:pull,push registry:catalog:*", "repository:host:5000/x:pull",
                         "junk", "repository::pull", "repository:a:"]) == [
        Access("repository", "a/b", frozenset({"pull", "push"})),
        Access("registry", "catalog", frozenset({"*"})),
        Access("repository", "host:5000/x", PULL),
    ]
    both = frozenset({"pull", "push"})
    assert parse_scopes(["repository:a:pull,,push"]) == [Access("repository", "a", both)]
    assert Access("repository", "a", frozenset({"push", "pull"})).scope() == "repository:a:pull,push"


@pytest.mark.parametrize("prefix", ["$2y$", "$2b$", "$2a$"])
def test_htpasswd_accepts_bcrypt_variants_and_checks(tmp_path: Path, prefix: str) -> None:
    users = _htpasswd(tmp_path / "h", {"alice": "secret"}, prefix)
    assert users.check("alice", "secret")
    assert users.check("alice", "secret")  # remembered
    assert not users.check("alice", "wrong")
    assert not users.check("bob", "secret")


def test_a_good_password_costs_one_bcrypt_check_per_process(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # bcrypt is slow on purpose and docker sends Basic credentials with every request of a push:
    # a good (user, password) pair is checked once, a wrong one every time.
    users = _htpasswd(tmp_path / "h", {"alice": "secret", "bob": "secret"})
    real = bcrypt.checkpw
    calls: list[bytes] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    for _ in range(3):
        assert users.check("alice", "secret")
    assert calls == [b"secret"]
    assert users.check("bob", "secret") and len(calls) == 2  # another user's hash: checked on its own
    for _ in range(2):
        assert not users.check("alice", "wrong")
    assert calls[2:] == [b"wrong", b"wrong"]
    assert _htpasswd(tmp_path / "h2", {"alice": "secret"}).check("alice", "secret") and len(calls) == 5


def test_htpasswd_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("# users\n\nalice\n")
    with pytest.raises(InvalidArgument) as caught:
        Htpasswd(path)
    assert str(caught.value) == f"htpasswd file {path}, line 3: not a bcrypt entry"
    with pytest.raises(InvalidArgument) as missing:
        Htpasswd(tmp_path / "absent")
    assert str(missing.value) == f"htpasswd file {tmp_path / 'absent'}: No such file or directory"


def test_htpasswd_with_a_garbled_hash_refuses(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("alice:$2y$garbage\n")
    assert not Htpasswd(tmp_path / "h").check("alice", "x")


def test_policy_load_and_errors(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"anonymous_pull": True, "rules": [
        {"account": "admin", "repository": "*", "actions": ["*"]}]})
    assert policy.anonymous == ["*"]
    assert policy.rules == [("admin", "*", frozenset({"pull", "push", "delete"}))]
    assert _policy(tmp_path, {}).anonymous == [] and _policy(tmp_path, {}).rules == []
    for bad, message in [([], "expected a JSON object"),
                         ({"rules": [{"account": "a"}]}, "rule 0: needs account, repository and actions")]:
        with pytest.raises(InvalidArgument) as caught:
            _policy(tmp_path, bad)
        assert str(caught.value) == f"token policy {tmp_path / 'policy.json'}: {message}"
    (tmp_path / "policy.json").write_text("{")
    with pytest.raises(InvalidArgument, match=r"^token policy .*: invalid JSON: "):
        Policy.load(tmp_path / "policy.json")
    with pytest.raises(InvalidArgument) as missing:
        Policy.load(tmp_path / "absent.json")
    assert str(missing.value) == f"token policy {tmp_path / 'absent.json'}: No such file or directory"


def test_policy_grants(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"anonymous_pull": ["public/*"], "rules": [
        {"account": "alice", "repository": "alice/*", "actions": ["pull", "push"]},
        {"account": "*", "repository": "shared/*", "actions": ["pull"]},
        {"account": "root", "repository": "*", "actions": ["*"]}]})
    both = frozenset({"pull", "push"})
    assert policy.grant(None, Access("repository", "public/x", both)) == PULL
    assert policy.grant(None, Access("repository", "alice/x", both)) == frozenset()
    assert policy.grant("alice", Access("repository", "alice/x", both)) == both
    assert policy.grant("alice", Access("repository", "Alice/x", both)) == frozenset()  # case matters
    assert policy.grant("bob", Access("repository", "shared/x", both)) == PULL
    assert policy.grant("bob", Access("repository", "alice/x", both)) == frozenset()
    catalog = Access("registry", "catalog", frozenset({"*"}))
    assert policy.grant("root", catalog) == frozenset({"*"})
    assert policy.grant("alice", catalog) == frozenset()
    assert policy.grant(None, catalog) == frozenset()
    assert policy.grant("root", Access("registry", "other", frozenset({"*"}))) == frozenset()
    assert policy.grant("root", Access("plugin", "x", PULL)) == frozenset()


def test_anyone_with_a_star_rule_on_every_repository_gets_the_catalog(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"rules": [{"account": "*", "repository": "*", "actions": ["pull"]}]})
    assert policy.grant("anyone", Access("registry", "catalog", frozenset({"*"}))) == frozenset({"*"})


def test_issued_token_claims(tmp_path: Path) -> None:
    issuer = TokenIssuer("svc", issuer="me", ttl=120)
    before = int(time.time())
    token = issuer.issue("alice", [Access("repository", "a/b", frozenset({"push", "pull"}))])
    header = json.loads(_unb64(token.split(".")[0]))
    assert header == {"alg": "ES256", "typ": "JWT"}
    claims = _claims(token)
    after = int(time.time())
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("me", "alice", "svc")
    assert before <= int(claims["iat"]) <= after  # type: ignore[call-overload]
    assert claims["nbf"] == int(claims["iat"]) - 1  # type: ignore[call-overload]
    assert claims["exp"] == int(claims["iat"]) + 120  # type: ignore[call-overload]
    assert len(str(claims["jti"])) == 32
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]
    assert issuer.verify(token) == claims
    assert len(_unb64(token.split(".")[2])) == 64
    assert TokenIssuer("svc").ttl == 300 and TokenIssuer("svc").issuer == "dockyard-registry"


def _signed(issuer: TokenIssuer, claims: dict[str, object]) -> str:
    """A token with exactly these claims, signed by ``issuer``'s key (as a clock skew would make)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(issuer.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_verify_refuses_expired_early_foreign_and_malformed_tokens() -> None:
    issuer = TokenIssuer("svc")
    now = int(time.time())
    good = {"iss": "dockyard-registry", "aud": "svc", "nbf": now - 5, "exp": now + 60}
    assert issuer.verify(_signed(issuer, good)) == good
    assert issuer.verify(_signed(issuer, {**good, "exp": now - 1})) is None     # expired
    assert issuer.verify(_signed(issuer, {**good, "exp": now})) is None         # expires now
    assert issuer.verify(_signed(issuer, {**good, "nbf": now + 30})) is None    # not yet valid
    assert issuer.verify(_signed(issuer, {k: v for k, v in good.items() if k != "exp"})) is None  # no exp
    assert issuer.verify(_signed(issuer, {k: v for k, v in good.items() if k != "nbf"})) is None  # no nbf
    assert issuer.verify(_signed(issuer, {**good, "iss": "someone"})) is None
    assert issuer.verify(_signed(issuer, {**good, "aud": "other"})) is None
    assert issuer.verify(_signed(issuer, [1, 2])) is None  # type: ignore[arg-type]
    other = TokenIssuer("svc")
    assert other.verify(_signed(issuer, good)) is None  # someone else's key
    head, body, sig = _signed(issuer, good).split(".")
    assert issuer.verify(f"{head}.{body}") is None
    assert issuer.verify(f"{head}.{body}.{sig[:-4]}") is None  # short signature
    assert issuer.verify(f"{head}.{body}.***") is None
    assert issuer.verify(f"{head}.{_b64(b'not json')}.{sig}") is None


def test_basic_credentials() -> None:
    def enc(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    assert basic_credentials(f"Basic {enc('alice:pa:ss')}") == ("alice", "pa:ss")
    assert basic_credentials(f"basic  {enc('alice:')} ") == ("alice", "")
    assert basic_credentials(f"Bearer {enc('alice:x')}") is None
    assert basic_credentials(f"Basic {enc('alice')}") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"\xff:\xfe").decode()) is None


def _raises(call: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def test_authorizer_off_and_basic_mode(tmp_path: Path) -> None:
    assert not Authorizer().enabled
    assert Authorizer().check("", [Access("repository", "a", PULL)]) is None
    basic = Authorizer(htpasswd=_htpasswd(tmp_path / "h", {"alice": "pw"}))
    assert basic.enabled and not basic.token_mode
    creds = base64.b64encode(b"alice:pw").decode()
    assert basic.check(f"Basic {creds}", []) == "alice"
    err = _raises(basic.check, "Basic " + base64.b64encode(b"alice:no").decode(), [])
    assert (err.status, err.code) == (401, "UNAUTHORIZED")
    assert err.headers == {"WWW-Authenticate": 'Basic realm="dockyard-registry"'}
    assert _raises(basic.check, "", []).status == 401


@pytest.fixture
def token_auth(tmp_path: Path) -> Authorizer:
    policy = _policy(tmp_path, {"anonymous_pull": ["public/*"], "rules": [
        {"account": "alice", "repository": "alice/*", "actions": ["pull", "push", "delete"]}]})
    return Authorizer(htpasswd=_htpasswd(tmp_path / "h", {"alice": "pw", "bob": "pw"}), policy=policy,
                      issuer=TokenIssuer("svc"))


def _basic(user: str, password: str = "pw") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_challenges_name_realm_service_scope_and_error(token_auth: Authorizer) -> None:
    want = [Access("repository", "alice/app", frozenset({"push"}))]
    err = _raises(token_auth.check, "", want, "http://reg:5000")
    assert err.headers["WWW-Authenticate"] == (
        'Bearer realm="http://reg:5000/token",service="svc",scope="repository:alice/app:push"')
    assert _raises(token_auth.check, "", [], "http://reg").headers["WWW-Authenticate"] == (
        'Bearer realm="http://reg/token",service="svc"')
    no_base = _raises(token_auth.check, "", [])  # no base URL known: a relative realm
    assert no_base.headers["WWW-Authenticate"] == 'Bearer realm="/token",service="svc"'
    token_auth.realm = "https://auth.example/token"
    assert _raises(token_auth.check, "", [], "http://reg").headers["WWW-Authenticate"].startswith(
        'Bearer realm="https://auth.example/token",')
    pull_token = token_auth.token(_basic("alice"), ["repository:alice/app:pull"], "svc")["token"]
    short = _raises(token_auth.check, f"Bearer {pull_token}", want, "http://reg")
    assert (short.status, short.message) == (401, "insufficient scope for repository:alice/app:push")
    assert short.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth.example/token",service="svc",scope="repository:alice/app:push",'
        'error="insufficient_scope"')


def test_token_check_flow(token_auth: Authorizer) -> None:
    app = Access("repository", "alice/app", frozenset({"pull", "push"}))
    full = token_auth.token(_basic("alice"), ["repository:alice/app:pull,push"], "")
    assert full["expires_in"] == 300 and full["access_token"] == full["token"]
    assert time.strptime(str(full["issued_at"]), "%Y-%m-%dT%H:%M:%SZ")
    assert token_auth.check(f"Bearer {full['token']}", [app]) == "alice"
    assert token_auth.check(f"bearer  {full['token']} ", [app]) == "alice"
    assert _raises(token_auth.check, f"Basic {full['token']}", [app]).status == 401
    bob = token_auth.token(_basic("bob"), ["repository:alice/app:pull,push"], "svc")
    assert _claims(str(bob["token"]))["access"] == []
    denied = _raises(token_auth.check, f"Bearer {bob['token']}", [app])
    assert (denied.status, denied.code) == (403, "DENIED")
    assert denied.message == "bob may not pull,push repository alice/app"
    anon = token_auth.token("", ["repository:public/x:pull,push", "repository:alice/app:pull"], "svc")
    assert _claims(str(anon["token"]))["sub"] == ""
    assert _claims(str(anon["token"]))["access"] == [
        {"type": "repository", "name": "public/x", "actions": ["pull"]}]
    assert token_auth.check(f"Bearer {anon['token']}", [Access("repository", "public/x", PULL)]) is None
    # anonymous and short of scope: a login may help, so 401 rather than 403
    assert _raises(token_auth.check, f"Bearer {anon['token']}", [app]).status == 401


def test_token_endpoint_credentials(token_auth: Authorizer) -> None:
    assert _claims(str(token_auth.token("", [], "svc", "alice", "pw")["token"]))["sub"] == "alice"
    bad = _raises(token_auth.token, _basic("alice", "nope"), [], "svc")
    assert (bad.status, bad.message) == (401, "invalid username or password")
    assert bad.headers == {"WWW-Authenticate": 'Basic realm="dockyard-registry"'}
    assert _raises(token_auth.token, "", [], "svc", "alice").status == 401  # form user, no password
    wrong = _raises(token_auth.token, "", [], "elsewhere")
    assert (wrong.status, wrong.code, wrong.message) == (400, "UNSUPPORTED", "unknown service 'elsewhere'")
    no_users = Authorizer(policy=token_auth.policy, issuer=token_auth.issuer)
    assert _raises(no_users.token, _basic("alice"), [], "svc").status == 401


def test_basic_credentials_refuse_characters_outside_base64() -> None:
    assert basic_credentials("Basic YWxpY2U6cHc=") == ("alice", "pw")
    assert basic_credentials("Basic YWxp*Y2U6cHc=") is None


def test_every_needed_scope_must_be_covered(token_auth: Authorizer) -> None:
    token = token_auth.token(_basic("alice"), ["repository:alice/a:pull"], "svc")["token"]
    a = Access("repository", "alice/a", PULL)
    b = Access("repository", "alice/b", PULL)
    assert token_auth.check(f"Bearer {token}", [a]) == "alice"
    err = _raises(token_auth.check, f"Bearer {token}", [a, b], "http://reg")
    assert (err.status, err.code) == (401, "UNAUTHORIZED")
    assert err.headers["WWW-Authenticate"] == (
        'Bearer realm="http://reg/token",service="svc",'
        'scope="repository:alice/a:pull repository:alice/b:pull",error="insufficient_scope"')


def test_refusals_carry_the_unauthorized_code(token_auth: Authorizer) -> None:
    bad_token = _raises(token_auth.check, "Bearer not.a.token", [])
    assert (bad_token.status, bad_token.code) == (401, "UNAUTHORIZED")
    bad_login = _raises(token_auth.token, _basic("alice", "nope"), [], "svc")
    assert (bad_login.status, bad_login.code) == (401, "UNAUTHORIZED")


def test_anonymous_is_not_any_account(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"rules": [{"account": "*", "repository": "shared/*", "actions": ["pull"]}]})
    users = _htpasswd(tmp_path / "h", {"alice": "pw", "nopass": ""})
    auth = Authorizer(htpasswd=users, policy=policy, issuer=TokenIssuer("svc"))
    anon = auth.token("", ["repository:shared/x:pull"], "svc")
    assert _claims(str(anon["token"]))["access"] == []
    member = auth.token(_basic("alice"), ["repository:shared/x:pull"], "svc")
    assert _claims(str(member["token"]))["access"] == [{"type": "repository", "name": "shared/x",
                                                        "actions": ["pull"]}]
    # a form login without a password field is an empty password
    assert _claims(str(auth.token("", [], "svc", "nopass")["token"]))["sub"] == "nopass"


def test_issued_at_is_utc_whatever_the_local_zone(token_auth: Authorizer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no daylight saving
    time.tzset()
    try:
        issued = token_auth.token("", [], "svc")["issued_at"]
        claims = _claims(str(token_auth.token("", [], "svc")["token"]))
    finally:
        monkeypatch.undo()
        time.tzset()
    stamp = calendar.timegm(time.strptime(str(issued), "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(stamp - int(claims["iat"])) < 3600  # type: ignore[call-overload]
