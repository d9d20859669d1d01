"""Docker's config.json: auths entries, credsStore/credHelpers through a real helper program."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import AuthenticationError
from dockyard.registry.auth import Credentials
from dockyard.registry.auth.dockerconfig import HUB_KEY, DockerConfig, server_key

# A credential helper speaking docker-credential-helpers' protocol, keeping secrets in a JSON file.
HELPER = r'''#!/usr/bin/env python3
import json, os, sys
path = os.environ["DYTEST_HELPER_STORE"]
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {}
action = sys.argv[1]
data = sys.stdin.read()
if action == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    user, secret = db[data.strip()]
    print(json.dumps({"ServerURL": data.strip(), "Username": user, "Secret": secret}))
elif action == "store":
    doc = json.loads(data); db[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
    json.dump(db, open(path, "w"))
elif action == "erase":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data.strip()]; json.dump(db, open(path, "w"))
'''


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "docker-credential-dytest"
    program.write_text(HELPER)
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("DYTEST_HELPER_STORE", str(store))
    return store


def test_reads_docker_written_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    (tmp_path / "config.json").write_text(json.dumps({
        "auths": {"127.0.0.1:5001": {"auth": b64(b"peer:pee:rpass")}, HUB_KEY: {"auth": b64(b"hubuser:x")},
                  "https://ghcr.io": {"identitytoken": "refresh-123", "auth": b64(b"me:")}},
        "psFormat": "table {{.ID}}"}))
    config = DockerConfig.load()
    assert config.get("127.0.0.1:5001") == Credentials("peer", "pee:rpass")
    assert config.get("docker.io") == Credentials("hubuser", "x")
    assert config.get("registry-1.docker.io") == Credentials("hubuser", "x")
    assert config.get("ghcr.io") == Credentials("me", "", "refresh-123")
    assert config.get("other.example") is None


def test_store_and_erase_keep_other_keys_and_are_private(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    config = DockerConfig.load()
    config.doc["psFormat"] = "x"
    config.store("docker.io", Credentials("u", "p"))
    path = tmp_path / "d" / "config.json"
    doc = json.loads(path.read_text())
    assert doc["auths"] == {HUB_KEY: {"auth": base64.b64encode(b"u:p").decode()}}
    assert doc["psFormat"] == "x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DockerConfig.load().erase("index.docker.io")
    assert json.loads(path.read_text())["auths"] == {}
    assert not DockerConfig.load().erase("docker.io")


def test_creds_store_and_cred_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "dytest"}))
    config = DockerConfig.load()
    config.store("127.0.0.1:5001", Credentials("peer", "peerpass"))
    assert json.loads(helper.read_text()) == {"127.0.0.1:5001": ["peer", "peerpass"]}
    assert json.loads((tmp_path / "config.json").read_text())["auths"] == {"127.0.0.1:5001": {}}
    assert DockerConfig.load().get("127.0.0.1:5001") == Credentials("peer", "peerpass")
    config.store("ghcr.io", Credentials("me", "", "tok"))  # identity tokens go as user <token>
    assert json.loads(helper.read_text())["ghcr.io"] == ["<token>", "tok"]
    assert DockerConfig.load().get("ghcr.io") == Credentials("", "", "tok")
    assert DockerConfig.load().erase("127.0.0.1:5001")
    assert DockerConfig.load().get("127.0.0.1:5001") is None
    # credHelpers picks a helper per registry; a missing helper program is a clear error
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"quay.io": "nosuchhelper"}}))
    with pytest.raises(AuthenticationError, match="docker-credential-nosuchhelper"):
        DockerConfig.load().get("quay.io")
    assert DockerConfig.load().get("ghcr.io") is None


def test_server_keys() -> None:
    assert server_key("docker.io") == HUB_KEY
    assert server_key("https://index.docker.io/v1/") == HUB_KEY
    assert server_key("127.0.0.1:5001") == "127.0.0.1:5001"
    assert repr(Credentials("u", "secret")).count("secret") == 0
